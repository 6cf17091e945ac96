// The mesh's own Kubernetes client and informer against the local API server over real HTTPS: typed
// Status errors, optimistic concurrency, and a cache that follows adds, updates and deletes, moves
// on with bookmarks, lists again on 410 Gone and recovers from an API server restart with what
// changed while it was down.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { KubeApiError, KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { Informer, type InformerChange } from '../../../shared/kube/informer.js';
import { resourceKind } from '../../../shared/kube/paths.js';
import type { Resource } from '../../../shared/resources/types.js';
import { ns, startApi, type TestApi } from '../apiserver/helpers.js';
import { until } from '../until.js';

const log = pino({ level: 'silent' });
let t: TestApi;
let client: KubeClient;
const informers: Informer[] = [];

test.before.each(async () => {
  t = await startApi({ watch: { bookmarkIntervalMs: 100, history: { revisions: 5, ageMs: 60_000 } } });
  client = new KubeClient(loadKubeconfig(t.kubeconfig));
});
test.after.each(async () => {
  for (const i of informers.splice(0)) i.stop();
  client.close();
  await t.close();
});

const Namespace = resourceKind('Namespace');
const ConfigMap = resourceKind('ConfigMap');
const configMap = (name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: 'shop' }, data }) as unknown as Resource;

/** An informer whose changes are recorded as `type name` lines. */
function follow(kind = ConfigMap, o: { namespace?: string; labelSelector?: string } = {}) {
  const seen: string[] = [];
  const i = new Informer(client, { kind, log, backoff: { minMs: 20, maxMs: 200 }, ...o });
  i.on('change', (changes: InformerChange[]) => {
    for (const c of changes) seen.push(`${c.type} ${c.resource.metadata.name}${c.type === 'upsert' ? ` ${JSON.stringify((c.resource as unknown as { data?: unknown }).data ?? {})}` : ''}`);
  });
  informers.push(i.start());
  return { informer: i, seen };
}


test('the client creates, reads, updates and deletes, and answers a stale update with a 409 KubeApiError', async () => {
  await client.create(Namespace, ns('shop') as Resource);
  const made = await client.create(ConfigMap, configMap('a', { k: '1' }));
  assert.ok(made.metadata.resourceVersion);
  const got = (await client.get(ConfigMap, 'shop', 'a')) as unknown as { data: Record<string, string> };
  assert.equal(got.data, { k: '1' });
  const updated = await client.update(ConfigMap, { ...made, data: { k: '2' } } as Resource);
  try {
    await client.update(ConfigMap, { ...made, data: { k: '3' } } as Resource);
    assert.unreachable('a stale resourceVersion must be refused');
  } catch (err) {
    assert.instance(err, KubeApiError);
    assert.is((err as KubeApiError).status, 409);
    assert.is((err as KubeApiError).reason, 'Conflict');
  }
  assert.is(((await client.get(ConfigMap, 'shop', 'a')) as unknown as { data: Record<string, string> }).data.k, '2');
  assert.is(updated.metadata.name, 'a');
  await client.delete(ConfigMap, 'shop', 'a');
  assert.is(await client.get(ConfigMap, 'shop', 'a'), undefined);
  // Deleting what is gone is not an error.
  await client.delete(ConfigMap, 'shop', 'a');
});

test('a request without valid credentials fails with 401, naming the request', async () => {
  const anonymous = new KubeClient({ ...client.config, token: () => 'wrong' });
  try {
    await anonymous.list(Namespace);
    assert.unreachable('a bad token must be refused');
  } catch (err) {
    assert.instance(err, KubeApiError);
    assert.is((err as KubeApiError).status, 401);
    assert.match((err as Error).message, 'GET /api/v1/namespaces');
  } finally {
    anonymous.close();
  }
});

test('an informer lists, then follows adds, updates and deletes in order', async () => {
  await client.create(Namespace, ns('shop') as Resource);
  await client.create(ConfigMap, configMap('before', { k: '0' }));
  const { informer, seen } = follow();
  await informer.synced;
  assert.equal(seen, ['upsert before {"k":"0"}']);
  const a = await client.create(ConfigMap, configMap('a', { k: '1' }));
  const updated = await client.update(ConfigMap, { ...a, data: { k: '2' } } as Resource);
  await client.delete(ConfigMap, 'shop', 'before');
  await until('three events', () => seen.length === 4);
  assert.equal(seen.slice(1), ['upsert a {"k":"1"}', 'upsert a {"k":"2"}', 'delete before']);
  assert.equal(informer.list().map((r) => r.metadata.name), ['a']);
  assert.is(informer.get('shop', 'a')?.metadata.resourceVersion, updated.metadata.resourceVersion);
});

test('bookmarks move the informer\'s resourceVersion on while its kind does not change', async () => {
  await client.create(Namespace, ns('shop') as Resource);
  const { informer } = follow();
  await informer.synced;
  const start = Number(informer.lastResourceVersion);
  // Other kinds change: the store's revision moves, and the next bookmark says so.
  for (let i = 0; i < 3; i++) await client.create(Namespace, ns(`other-${i}`) as Resource);
  await until('a bookmark at the new revision', () => Number(informer.lastResourceVersion) >= t.store.currentRevision);
  assert.ok(Number(informer.lastResourceVersion) >= start + 3);
  assert.is(informer.counters.lists, 1, 'no relist was needed');
});

test('after an API server restart the informer lists again (410 Gone) and reports what changed while it was away', async () => {
  await client.create(Namespace, ns('shop') as Resource);
  await client.create(ConfigMap, configMap('kept', { k: '1' }));
  await client.create(ConfigMap, configMap('changed', { k: '1' }));
  await client.create(ConfigMap, configMap('removed', { k: '1' }));
  const { informer, seen } = follow();
  await informer.synced;
  seen.length = 0;
  await t.restart(() => {
    // While the server is down, the store moves on: one object changes, one goes, one comes.
    const changed = t.store.get('ConfigMap', 'shop', 'changed')!;
    t.store.commit([{ ...changed, data: { k: '2' } } as Resource, configMap('added', { k: '1' })], [{ kind: 'ConfigMap', namespace: 'shop', name: 'removed' }]);
  });
  await until('the changes made while the server was down', () => seen.length === 3);
  assert.equal(seen.sort(), ['delete removed', 'upsert added {"k":"1"}', 'upsert changed {"k":"2"}']);
  assert.ok(informer.counters.expired >= 1, 'the resumed watch was told 410 Gone');
  assert.equal(informer.list().map((r) => r.metadata.name).sort(), ['added', 'changed', 'kept']);
  // And it follows changes again.
  await client.create(ConfigMap, configMap('later', { k: '1' }));
  await until('a change after the restart', () => seen.length === 4);
  assert.is(seen[3], 'upsert later {"k":"1"}');
});

test('an informer with a label selector sees only matching objects, and a relabelled one leave', async () => {
  await client.create(Namespace, ns('shop') as Resource);
  const { informer, seen } = follow(Namespace, { labelSelector: 'ambit.dev/dataplane-mode=ambient' });
  await informer.synced;
  const made = await client.create(Namespace, ns('mesh', { 'ambit.dev/dataplane-mode': 'ambient' }) as Resource);
  await until('the enrolled namespace', () => seen.length === 1);
  await client.update(Namespace, { ...made, metadata: { ...made.metadata, labels: {} } });
  await until('it leaving', () => seen.length === 2);
  assert.equal(seen, ['upsert mesh {}', 'delete mesh']);
});

test.run();
