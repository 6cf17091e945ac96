// An independent Kubernetes client against the local cluster's API: @kubernetes/client-node's
// informer (list, then watch from the list's resourceVersion) sees an add, an update and a delete,
// and, restarted on its error as that library's users do, catches up after the API server
// (the controller process) is killed and comes back.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, KubeConfig, makeInformer, type V1Namespace } from '@kubernetes/client-node';
import { ambit, ambitOk, clusterProcesses, eventually, leftovers } from './helpers.js';

const events: string[] = [];
let informer: ReturnType<typeof makeInformer<V1Namespace>> | undefined;
let errors = 0;
let stopped = false;

const namespace = (name: string, labels: Record<string, string> = {}) => `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${name}\n  labels: ${JSON.stringify(labels)}\n`;
async function apply(yaml: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-informer-'));
  try {
    writeFileSync(join(dir, 'ns.yaml'), yaml);
    await ambitOk(['apply', '-f', join(dir, 'ns.yaml')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test.after(async () => {
  stopped = true;
  await informer?.stop();
  await ambit(['down']);
});

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('the informer lists, then sees an add, an update and a delete as they happen', async () => {
  await ambitOk(['up', '--no-samples']);
  const kc = new KubeConfig();
  kc.loadFromFile((await ambitOk(['kubeconfig'])).trim());
  const core = kc.makeApiClient(CoreV1Api);
  informer = makeInformer<V1Namespace>(kc, '/api/v1/namespaces', () => core.listNamespace());
  informer.on('add', (ns) => events.push(`add ${ns.metadata?.name}`));
  informer.on('update', (ns) => events.push(`update ${ns.metadata?.name} team=${ns.metadata?.labels?.team ?? ''}`));
  informer.on('delete', (ns) => events.push(`delete ${ns.metadata?.name}`));
  // client-node's informer stops at its first error; its users start it again, as here, and again
  // while the API is away (a start that fails retries too), one attempt at a time.
  let retrying = false;
  const restart = () => {
    if (stopped || retrying) return;
    retrying = true;
    setTimeout(() => {
      retrying = false;
      if (!stopped) void informer?.start().catch(restart);
    }, 500);
  };
  informer.on('error', () => {
    errors++;
    restart();
  });
  await informer.start();
  await eventually('the initial list', async () => events.includes('add default'));

  await apply(namespace('alpha'));
  await eventually('alpha added', async () => events.includes('add alpha'), 10_000);
  await apply(namespace('alpha', { team: 'blue' }));
  await eventually('alpha updated', async () => events.includes('update alpha team=blue'), 10_000);
  await ambitOk(['delete', 'namespace', 'alpha']);
  await eventually('alpha deleted', async () => events.includes('delete alpha'), 10_000);
  assert.ok(events.indexOf('add alpha') < events.indexOf('update alpha team=blue') && events.indexOf('update alpha team=blue') < events.indexOf('delete alpha'), events.join(', '));
});

test('the API server is killed and comes back: the informer, restarted on its error, sees what changed meanwhile and after', async () => {
  process.kill(clusterProcesses().clusterPid, 'SIGKILL');
  await eventually('the informer noticing', async () => errors > 0, 15_000);
  // `ambit up` finds the cluster without its own process and starts it again; it adopts the running pods.
  await ambitOk(['up', '--no-samples']);
  await apply(namespace('beta'));
  await eventually('beta added after the restart', async () => events.includes('add beta'), 20_000);
  // ambit-system is the controller's own (its leader Lease lives there).
  assert.equal(informer!.list().map((ns) => ns.metadata?.name).sort(), ['ambit-system', 'beta', 'default']);
});

test('ambit down leaves nothing behind', async () => {
  stopped = true;
  await informer?.stop();
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
