// The real kubectl (1.32, /usr/bin/kubectl) against the local cluster's Kubernetes API: what a
// user types every day works, and changes made with it are the cluster's (a namespace labelled
// with kubectl is enrolled; a Deployment scaled with kubectl gets its pods).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, eventually, leftovers, root, status } from './helpers.js';

let tmp = '';
let kubeconfig = '';

function kubectl(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(tmp, 'cache'), ...args], { timeout: 60_000 }, (err, stdout, stderr) => done({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}
async function kubectlOk(args: string[], input?: string): Promise<string> {
  const r = await kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-kubectl-'));
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('ambit up writes a kubeconfig; kubectl get nodes and get pods -A -o wide print the cluster', async () => {
  await ambitOk(['up', '--no-samples']);
  kubeconfig = (await ambitOk(['kubeconfig'])).trim();
  const nodes = await kubectlOk(['get', 'nodes']);
  assert.match(nodes, /NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION/);
  assert.match(nodes, /node-1\s+Ready/);
  assert.match(nodes, /node-2\s+Ready/);
  await kubectlOk(['apply', '-f', join(root, 'samples', 'manifests')]);
  await eventually('the samples running', async () => (await status()).pods.filter((p) => p.phase === 'Running').length === 4, 30_000);
  const pods = await kubectlOk(['get', 'pods', '-A', '-o', 'wide']);
  assert.match(pods, /NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE/);
  assert.match(pods, /shop\s+web-v1-\S+\s+1\/1\s+Running\s+0\s+\S+\s+10\.244\.\d+\.\d+\s+node-\d/);
});

test('kubectl apply again changes nothing; --server-side applies too', async () => {
  const again = await kubectlOk(['apply', '-f', join(root, 'samples', 'manifests')]);
  assert.match(again, 'deployment.apps/web-v1 unchanged');
  const ssa = await kubectlOk(['apply', '--server-side', '-f', join(root, 'samples', 'manifests', '10-web.yaml')]);
  assert.match(ssa, 'deployment.apps/web-v1 serverside-applied');
});

test('kubectl label ns enrolls a namespace: its pods become captured', async () => {
  await kubectlOk(['label', 'ns', 'shop', 'istio.io/dataplane-mode=ambient']);
  await eventually('shop\'s pods captured', async () => (await status()).pods.filter((p) => p.namespace === 'shop').every((p) => p.capture === 'captured'), 30_000);
});

test('an AuthorizationPolicy copied from Istio\'s documentation applies unchanged; an invalid one fails naming the field and stores nothing', async () => {
  // istio.io/latest/docs/reference/config/security/authorization-policy/ (the first example, in namespace shop).
  const istioExample = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: httpbin
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/sleep"]
    - source:
        namespaces: ["client"]
`;
  const ok = await kubectl(['apply', '-f', '-'], istioExample);
  assert.is(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, 'authorizationpolicy.security.istio.io/httpbin created');
  const bad = await kubectl(['apply', '-f', '-'], istioExample.replace('httpbin', 'broken').replace('action: ALLOW', 'action: PERMIT'));
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, 'spec.action');
  const list = await kubectlOk(['get', 'authorizationpolicies', '-n', 'shop']);
  assert.match(list, 'httpbin');
  assert.not.match(list, 'broken');
});

test('the mesh controller is the API server\'s admission webhook and leads by a Lease: kubectl shows both, a policy the mesh cannot honour is denied by it, and a warning comes back', async () => {
  const hooks = await eventually('the webhook registered', async () => {
    const out = await kubectlOk(['get', 'validatingwebhookconfigurations']);
    return out.includes('ambit-validation') && out;
  });
  assert.match(hooks, /ambit-validation\s+1/);
  assert.match(await kubectlOk(['get', 'leases', '-n', 'ambit-system']), /ambit-controller\s+\S+/);
  // Keys fetched from outside the cluster: the schema allows a jwksUri, the mesh cannot fetch it.
  const outside = `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: outside-keys, namespace: shop }
spec:
  targetRefs: [{ group: "", kind: Service, name: web }]
  jwtRules: [{ issuer: "https://issuer.example", jwksUri: "https://issuer.example/jwks.json" }]
`;
  const denied = await kubectl(['apply', '-f', '-'], outside);
  assert.is.not(denied.code, 0);
  assert.match(denied.stderr, 'admission webhook "validation.ambit.dev" denied the request');
  assert.match(denied.stderr, 'spec.jwtRules[0].jwksUri');
  assert.is.not((await kubectl(['get', 'requestauthentication', 'outside-keys', '-n', 'shop'])).code, 0, 'nothing stored');
  // An L7 rule on a selector policy: the node proxy cannot enforce it, and kubectl says so.
  const l7 = await kubectl(['apply', '-f', '-'], 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: no-posts, namespace: shop }\nspec:\n  selector: { matchLabels: { app: nobody } }\n  action: DENY\n  rules: [{ to: [{ operation: { methods: ["POST"] } }] }]\n');
  assert.is(l7.code, 0, l7.stderr);
  assert.match(l7.stderr, /Warning: .*methods/);
  const enforced = await eventually('the status written', async () => {
    const p = JSON.parse(await kubectlOk(['get', 'authorizationpolicy', 'no-posts', '-n', 'shop', '-o', 'json'])) as { status?: { enforcedBy?: string } };
    return p.status?.enforcedBy;
  });
  assert.is(enforced, 'node proxies (L4)');
  await kubectlOk(['delete', 'authorizationpolicy', 'no-posts', '-n', 'shop']);
});

test('kubectl get pods -w prints a change as it happens; kubectl scale gets the pods, kubectl get rs counts them; kubectl delete removes them with their ReplicaSet', async () => {
  const watch = spawn('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(tmp, 'cache'), 'get', 'pods', '-n', 'shop', '-w', '--output-watch-events'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  watch.stdout.setEncoding('utf8').on('data', (d: string) => (seen += d));
  try {
    await eventually('the watch listing the pods', async () => seen.includes('web-v1-'), 10_000);
    await kubectlOk(['scale', 'deployment', 'web-v1', '-n', 'shop', '--replicas=2']);
    await eventually('two web-v1 pods running', async () => (await status()).pods.filter((p) => p.name.startsWith('web-v1-') && p.phase === 'Running').length === 2, 30_000);
    await eventually('the watch printing the new pod', async () => (seen.match(/ADDED\s+web-v1-/g)?.length ?? 0) >= 2, 10_000);
    const deployments = await kubectlOk(['get', 'deployment', 'web-v1', '-n', 'shop']);
    assert.match(deployments, /web-v1\s+2\/2/);
    // The pods' owner: the ReplicaSet of web-v1's template, owned by the Deployment.
    const replicaSets = await kubectlOk(['get', 'rs', '-n', 'shop']);
    assert.match(replicaSets, /NAME\s+DESIRED\s+CURRENT\s+READY\s+AGE/);
    assert.match(replicaSets, /web-v1-[0-9a-f]{10}\s+2\s+2\s+2/);
    await kubectlOk(['delete', 'deployment', 'web-v2', '-n', 'shop']);
    await eventually('web-v2\'s pod gone', async () => !(await status()).pods.some((p) => p.name.startsWith('web-v2-')), 30_000);
    await eventually('the watch printing the deletion', async () => /DELETED\s+web-v2-/.test(seen), 10_000);
    assert.not.match(await kubectlOk(['get', 'rs', '-n', 'shop']), /web-v2-/);
  } finally {
    watch.kill();
  }
  const gone = await kubectl(['get', 'deployment', 'web-v2', '-n', 'shop']);
  assert.match(gone.stderr, /NotFound|not found/);
});

test('kubectl get endpointslices lists the web Service\'s running pods at their named port, kept by the cluster', async () => {
  const webIps = async () => (await status()).pods.filter((p) => p.namespace === 'shop' && p.labels.app === 'web' && p.phase === 'Running').map((p) => p.ip).sort();
  let last = '';
  await eventually(
    'web\'s EndpointSlice listing its running pods',
    async () => {
      last = await kubectlOk(['get', 'endpointslices', '-n', 'shop', '-l', 'kubernetes.io/service-name=web']);
      const row = last.trim().split('\n')[1]?.trim().split(/\s{2,}/) ?? [];
      return row[1] === 'IPv4' && row[2] === '8080' && (row[3] ?? '').split(',').sort().join(',') === (await webIps()).join(',');
    },
    15_000,
  ).catch((err: unknown) => assert.unreachable(`${String(err)}\n${last}`));
  assert.match(last, /NAME\s+ADDRESSTYPE\s+PORTS\s+ENDPOINTS\s+AGE/);
  assert.match(last, /web-[a-z0-9]{5}\s+IPv4/);
});

test('kubectl get crd lists the mesh\'s CRDs; a CRD of the test\'s own applies, serves an object with its columns, and deleting it takes the object', async () => {
  const crds = await kubectlOk(['get', 'crd']);
  assert.match(crds, /^NAME\s+CREATED AT\n/);
  for (const name of ['authorizationpolicies.security.istio.io', 'peerauthentications.security.istio.io', 'requestauthentications.security.istio.io', 'destinationrules.networking.istio.io', 'gateways.gateway.networking.k8s.io', 'httproutes.gateway.networking.k8s.io', 'grpcroutes.gateway.networking.k8s.io', 'trustbundles.ambit.dev', 'faultinjections.ambit.dev', 'localratelimits.ambit.dev']) {
    assert.match(crds, new RegExp(`\\n${name.replace(/\./g, '\\.')}\\s+\\d{4}-`), name);
  }
  const crd = [
    'apiVersion: apiextensions.k8s.io/v1',
    'kind: CustomResourceDefinition',
    'metadata: { name: backups.e2e.example.com }',
    'spec:',
    '  group: e2e.example.com',
    '  scope: Namespaced',
    '  names: { plural: backups, singular: backup, kind: Backup, shortNames: [bk] }',
    '  versions:',
    '  - name: v1',
    '    served: true',
    '    storage: true',
    '    additionalPrinterColumns: [{ name: Schedule, type: string, jsonPath: .spec.schedule }]',
    '    schema:',
    '      openAPIV3Schema:',
    '        type: object',
    '        properties:',
    '          spec: { type: object, required: [schedule], properties: { schedule: { type: string }, keep: { type: integer, minimum: 1 } } }',
    '',
  ].join('\n');
  assert.match(await kubectlOk(['apply', '-f', '-'], crd), 'customresourcedefinition.apiextensions.k8s.io/backups.e2e.example.com created');
  const backup = 'apiVersion: e2e.example.com/v1\nkind: Backup\nmetadata: { name: nightly, namespace: shop }\nspec: { schedule: "0 3 * * *", keep: 7 }\n';
  await eventually('kubectl to see the new kind', async () => (await kubectl(['apply', '-f', '-'], backup)).code === 0, 10_000);
  assert.match(await kubectlOk(['get', 'bk', '-n', 'shop']), /NAME\s+SCHEDULE\nnightly\s+0 3 \* \* \*\n/);
  const bad = await kubectl(['apply', '-f', '-'], backup.replace('keep: 7', 'keep: 0, colour: red'));
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /spec\.(keep|colour)/);
  assert.match(await kubectlOk(['delete', 'crd', 'backups.e2e.example.com']), 'deleted');
  assert.not.match(await kubectlOk(['get', 'crd']), 'backups.e2e.example.com');
  const gone = await kubectl(['get', 'backups.e2e.example.com', '-n', 'shop']);
  assert.is.not(gone.code, 0, 'the kind is no longer served');
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
  writeFileSync(join(tmp, 'done'), '');
});

test.run();
