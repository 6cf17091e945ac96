// `ambit install`'s manifests against the local cluster's Kubernetes API with the real kubectl:
// `ambit install --dry-run -o yaml` prints YAML that parses into the objects install makes, and
// `kubectl apply --dry-run=server -f` of it succeeds (every object admitted, nothing stored). Running
// the DaemonSet's agents is not this test's (the local cluster still runs its own).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ambit, ambitOk, leftovers } from './helpers.js';

let tmp = '';
let kubeconfig = '';
let rendered = '';

function kubectl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(tmp, 'cache'), ...args], { timeout: 60_000 }, (err, stdout, stderr) => done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-install-'));
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('ambit install --dry-run -o yaml needs no cluster and prints the objects install makes', async () => {
  rendered = await ambitOk(['install', '--dry-run', '-o', 'yaml']);
  const docs = parseAllDocuments(rendered);
  assert.equal(docs.flatMap((d) => d.errors), []);
  const kinds = docs.map((d) => (d.toJS() as { kind: string }).kind);
  for (const kind of ['Namespace', 'CustomResourceDefinition', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding', 'Deployment', 'PodDisruptionBudget', 'Service', 'ValidatingWebhookConfiguration', 'DaemonSet']) {
    assert.ok(kinds.includes(kind), `${kind} rendered`);
  }
  const json = JSON.parse(await ambitOk(['install', '--dry-run', '-o', 'json', '--set', 'agent.redirect=ebpf'])) as { items: { kind: string; spec?: { template?: { spec?: { containers: { args: string[] }[] } } } }[] };
  assert.ok(json.items.find((r) => r.kind === 'DaemonSet')!.spec!.template!.spec!.containers[0]!.args.includes('--redirect=ebpf'));
});

test('kubectl apply --dry-run=server -f of the rendered manifests succeeds against the local cluster and stores nothing', async () => {
  await ambitOk(['up', '--no-samples'], 180_000);
  kubeconfig = (await ambitOk(['kubeconfig'])).trim();
  // The local cluster installed the namespace, ServiceAccounts, RBAC and agent DaemonSet from the same
  // rendering (ambit up): the dry run finds those as they are, and the controller's Deployment new.
  // The local cluster's controller registered ambit-validation by URL (its API server cannot call a
  // Service); kubectl's merge of the installed one (by Service) into it would carry both, which is
  // invalid. Until the local cluster runs what install makes, the installed one is checked by another name.
  const file = join(tmp, 'ambit.yaml');
  writeFileSync(file, rendered.replace('name: ambit-validation\n', 'name: ambit-validation-as-installed\n'));
  const r = await kubectl(['apply', '--dry-run=server', '-f', file]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /daemonset\.apps\/ambit-agent (unchanged|configured) \(server dry run\)/);
  assert.match(r.stdout, /clusterrole\.rbac\.authorization\.k8s\.io\/ambit-controller (unchanged|configured) \(server dry run\)/);
  assert.match(r.stdout, /deployment\.apps\/ambit-controller created \(server dry run\)/);
  assert.match(r.stdout, /poddisruptionbudget\.policy\/ambit-controller created \(server dry run\)/);
  // Nothing was stored.
  const after = await kubectl(['get', 'deployment', '-n', 'ambit-system', 'ambit-controller']);
  assert.match(after.stderr, /NotFound/);
  assert.is((await kubectl(['get', 'poddisruptionbudget', '-n', 'ambit-system', 'ambit-controller'])).code, 1, 'nothing stored by the dry run');
});

test.run();
