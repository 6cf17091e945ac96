// `ambit apply/get/delete` through the Kubernetes API (cli/kube.ts against the local API server over
// HTTPS): a batch is created, then unchanged, then configured; a batch with one bad object stores
// none of it and names the field; deletes take Namespaces last and say what was missing; labels
// are set and removed by a merge patch.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { ResourceInvalid } from '../../../shared/errors.js';
import type { Resource } from '../../../shared/resources/types.js';
import { applyResources, deleteResources, labelNamespace, listResources } from '../../../cli/kube.js';
import { startApi, type TestApi } from '../apiserver/helpers.js';

let t: TestApi;
let client: KubeClient;

test.before.each(async () => {
  t = await startApi();
  client = new KubeClient(loadKubeconfig(t.kubeconfig));
});
test.after.each(async () => {
  client.close();
  await t.close();
});

const namespace: Resource = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
const account = (name: string, labels?: Record<string, string>): Resource => ({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: 'shop', ...(labels ? { labels } : {}) } });

test('a batch is created (its Namespace first, wherever it is in the file), then unchanged, then configured', async () => {
  const first = await applyResources(client, [account('web'), namespace], false);
  assert.equal(first.results.map((r) => `${r.resource} ${r.action}`), ['ServiceAccount shop/web created', 'Namespace shop created']);
  assert.ok(first.resourceVersion > 0);
  const again = await applyResources(client, [account('web'), namespace], false);
  assert.equal(again.results.map((r) => r.action), ['unchanged', 'unchanged']);
  const changed = await applyResources(client, [account('web', { tier: 'front' }), namespace], false);
  assert.equal(changed.results.map((r) => r.action), ['configured', 'unchanged']);
  assert.equal((await listResources(client, 'ServiceAccount', 'shop')).find((a) => a.metadata.name === 'web')?.metadata.labels, { tier: 'front' });
});

test('a batch with one object the API server refuses stores none of it, and names the object and the field', async () => {
  await applyResources(client, [namespace], false);
  const bad: Resource = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { ports: [{ port: 70000 }] } };
  try {
    await applyResources(client, [account('first'), bad], false);
    assert.unreachable('the batch must be refused');
  } catch (err) {
    assert.instance(err, ResourceInvalid);
    const p = (err as ResourceInvalid).problems[0]!;
    assert.equal([p.index, p.resource], [1, 'Service shop/web']);
    assert.match(p.field, 'spec.ports[0].port');
  }
  assert.equal((await listResources(client, 'ServiceAccount', 'shop')).map((a) => a.metadata.name).filter((n) => n !== 'default'), [], 'nothing of the batch is stored');
  try {
    await applyResources(client, [account('first'), { ...account('lost'), metadata: { name: 'lost', namespace: 'nowhere' } }], false);
    assert.unreachable('an object in a namespace that does not exist must be refused');
  } catch (err) {
    assert.equal((err as ResourceInvalid).problems.map((p) => `${p.index} ${p.field}: ${p.message}`), ['1 metadata.namespace: nowhere does not exist']);
  }
  const dry = await applyResources(client, [account('dry')], true);
  assert.equal(dry.results.map((r) => r.action), ['created']);
  assert.not.ok((await listResources(client, 'ServiceAccount', 'shop')).some((a) => a.metadata.name === 'dry'), 'a dry run stores nothing');
});

test('delete takes Namespaces last, refuses what is missing unless told to ignore it, and labels come and go by merge patch', async () => {
  await applyResources(client, [namespace, account('web')], false);
  const set = await labelNamespace(client, 'shop', { 'istio.io/dataplane-mode': 'ambient' });
  assert.ok(set.changed);
  assert.not.ok((await labelNamespace(client, 'shop', { 'istio.io/dataplane-mode': 'ambient' })).changed);
  await labelNamespace(client, 'shop', { 'istio.io/dataplane-mode': null });
  assert.equal((await listResources(client, 'Namespace')).find((n) => n.metadata.name === 'shop')?.metadata.labels ?? {}, {});
  const refs = [
    { kind: 'Namespace', namespace: '', name: 'shop' },
    { kind: 'ServiceAccount', namespace: 'shop', name: 'web' },
  ];
  try {
    await deleteResources(client, [...refs, { kind: 'ServiceAccount', namespace: 'shop', name: 'ghost' }]);
    assert.unreachable('a missing object must be named');
  } catch (err) {
    assert.match((err as Error).message, 'ServiceAccount shop/ghost not found');
  }
  assert.equal(await deleteResources(client, [...refs, { kind: 'ServiceAccount', namespace: 'shop', name: 'ghost' }], { ignoreNotFound: true }), ['ServiceAccount shop/web', 'Namespace shop']);
});

test.run();
