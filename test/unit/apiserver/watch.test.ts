// WATCH over raw HTTPS: events in order from the store's changes, resuming from a list's
// resourceVersion, 410 Expired past the kept history, bookmarks, selectors entering and leaving,
// Tables, and the stream ending on timeout, on server close and on client disconnect.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { deployment, commitPods, ns, pod, startApi, type TestApi } from './helpers.js';

let t: TestApi;

test.before.each(async () => {
  t = await startApi({ watch: { bookmarkIntervalMs: 100, history: { revisions: 5, ageMs: 60_000 } } });
});
test.after.each(async () => {
  await t.close();
});

test('a watch without resourceVersion starts with every object as ADDED, then streams changes in order', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const w = await t.watch('/api/v1/namespaces?watch=true');
  assert.is(w.res.statusCode, 200);
  assert.is(w.res.headers['content-type'], 'application/json');
  const first = await w.next();
  assert.equal([first.type, first.object.kind, first.object.metadata.name], ['ADDED', 'Namespace', 'shop']);

  await t.call('POST', '/api/v1/namespaces', { body: ns('web') });
  const added = await w.next();
  assert.equal([added.type, added.object.metadata.name], ['ADDED', 'web']);
  const v = (await t.call('GET', '/api/v1/namespaces/web')).json;
  v.metadata.labels = { team: 'a' };
  await t.call('PUT', '/api/v1/namespaces/web', { body: v });
  const modified = await w.next();
  assert.equal([modified.type, modified.object.metadata.labels], ['MODIFIED', { team: 'a' }]);
  await t.call('DELETE', '/api/v1/namespaces/web');
  const deleted = await w.next();
  assert.equal([deleted.type, deleted.object.metadata.name], ['DELETED', 'web']);
  assert.ok(Number(deleted.object.metadata.resourceVersion) > Number(modified.object.metadata.resourceVersion));
  w.abort();
});

test('a watch from a list\'s resourceVersion replays exactly what happened since, then continues', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const rv = (await t.call('GET', '/apis/apps/v1/namespaces/shop/deployments')).json.metadata.resourceVersion;
  await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('web') });
  await t.call('POST', '/apis/apps/v1/namespaces/shop/deployments', { body: deployment('api') });
  const w = await t.watch(`/apis/apps/v1/namespaces/shop/deployments?watch=1&resourceVersion=${rv}`);
  assert.equal([(await w.next()).object.metadata.name, (await w.next()).object.metadata.name], ['web', 'api']);
  await t.call('DELETE', '/apis/apps/v1/namespaces/shop/deployments/web');
  const e = await w.next();
  assert.equal([e.type, e.object.metadata.name], ['DELETED', 'web']);
  assert.is(w.pending, 0);
  w.abort();
});

test('a watch from a version older than the kept history gets an ERROR event with a 410 Expired Status', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const rv = (await t.call('GET', '/api/v1/namespaces')).json.metadata.resourceVersion;
  // The history keeps 5 revisions in this test.
  for (let i = 0; i < 8; i++) await t.call('POST', '/api/v1/namespaces', { body: ns(`n${i}`) });
  const w = await t.watch(`/api/v1/namespaces?watch=true&resourceVersion=${rv}`);
  assert.is(w.res.statusCode, 200);
  const e = await w.next();
  assert.is(e.type, 'ERROR');
  assert.equal([e.object.kind, e.object.code, e.object.reason], ['Status', 410, 'Expired']);
  assert.match(e.object.message, new RegExp(`^too old resource version: ${rv} \\(\\d+\\)$`));
  await w.end();
  // The current version is still good.
  const now = (await t.call('GET', '/api/v1/namespaces')).json.metadata.resourceVersion;
  const ok = await t.watch(`/api/v1/namespaces?watch=true&resourceVersion=${now}&allowWatchBookmarks=true`);
  const b = await ok.next();
  assert.equal([b.type, b.object.kind, b.object.metadata.resourceVersion], ['BOOKMARK', 'Namespace', now]);
  ok.abort();
});

test('selectors on a watch: an object entering the selector is ADDED, one leaving it is DELETED', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2', 'Pending')]);
  const rv = t.store.currentRevision;
  const w = await t.watch(`/api/v1/namespaces/shop/pods?watch=true&resourceVersion=${rv}&fieldSelector=status.phase%3DRunning&labelSelector=app%3Dweb`);
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2', 'Running')]);
  commitPods(t.store, [pod('db-1', 'db', 'node-1', '10.244.1.3', 'Running')]);
  commitPods(t.store, [pod('web-1', 'web', 'node-1', '10.244.1.2', 'Pending')]);
  const entered = await w.next();
  const left = await w.next();
  assert.equal([entered.type, entered.object.metadata.name, entered.object.status.phase], ['ADDED', 'web-1', 'Running']);
  assert.equal([left.type, left.object.metadata.name], ['DELETED', 'web-1']);
  assert.is(left.object.metadata.resourceVersion, String(t.store.currentRevision));
  assert.is(w.pending, 0);
  w.abort();
});

test('a Table watch sends one-row Tables, as kubectl get -w asks', async () => {
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  const w = await t.watch('/api/v1/namespaces?watch=true', { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json' });
  const e = await w.next();
  assert.is(e.type, 'ADDED');
  assert.is(e.object.kind, 'Table');
  assert.equal(e.object.rows[0].cells.slice(0, 2), ['shop', 'Active']);
  assert.is(e.object.rows[0].object.kind, 'PartialObjectMetadata');
  w.abort();
});

test('Nodes: a watch lists them and then stays quiet; resuming from their version is never 410', async () => {
  const w = await t.watch('/api/v1/nodes?watch=true');
  assert.equal([(await w.next()).object.metadata.name, (await w.next()).object.metadata.name], ['node-1', 'node-2']);
  w.abort();
  for (let i = 0; i < 8; i++) await t.call('POST', '/api/v1/namespaces', { body: ns(`n${i}`) });
  const again = await t.watch('/api/v1/nodes?watch=true&resourceVersion=1&allowWatchBookmarks=true');
  assert.is((await again.next()).type, 'BOOKMARK');
  again.abort();
});

test('timeoutSeconds ends the stream; so does closing the server; a client that goes does not disturb the others', async () => {
  const timed = await t.watch('/api/v1/namespaces?watch=true&timeoutSeconds=1');
  await timed.end(2500);
  const open = await t.watch('/api/v1/namespaces?watch=true');
  const gone = await t.watch('/api/v1/namespaces?watch=true');
  gone.abort();
  await new Promise((r) => setTimeout(r, 50));
  // The aborted watch's stream is closed under it; a change still reaches the open one.
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  assert.is((await open.next()).object.metadata.name, 'shop');
  t.api.close();
  await open.end();
});

test('a resourceVersion that is not a number is a 400 before the stream starts', async () => {
  const r = await t.call('GET', '/api/v1/namespaces?watch=true&resourceVersion=abc');
  assert.is(r.status, 400);
  assert.is(r.json.reason, 'BadRequest');
});

test.run();
