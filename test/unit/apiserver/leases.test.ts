// coordination.k8s.io/v1 Leases as leader election uses them through the REST API: two electors
// race on one Lease and only the one holding the current resourceVersion wins; times come back in
// Kubernetes' MicroTime form; kubectl prints the holder.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ns, startApi, type TestApi } from './helpers.js';

let t: TestApi;
const path = '/apis/coordination.k8s.io/v1/namespaces/ambit-system/leases';

test.before.each(async () => {
  t = await startApi();
  assert.is((await t.call('POST', '/api/v1/namespaces', { body: ns('ambit-system') })).status, 201);
});
test.after.each(async () => {
  await t.close();
});

const lease = (holder: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'coordination.k8s.io/v1',
  kind: 'Lease',
  metadata: { name: 'ambit-controller', namespace: 'ambit-system' },
  spec: { holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: '2026-12-01T08:30:00.000000Z', renewTime: '2026-12-01T08:30:00.000000Z', leaseTransitions: 0, ...extra },
});

test('two electors update from the same resourceVersion: the first wins, the second gets 409 Conflict and the holder stays', async () => {
  const created = await t.call('POST', path, { body: lease('controller-a') });
  assert.is(created.status, 201, created.text);
  const seenByA = (await t.call('GET', `${path}/ambit-controller`)).json;
  const seenByB = structuredClone(seenByA);
  seenByA.spec.renewTime = '2026-12-01T08:30:02.000000Z';
  const renewed = await t.call('PUT', `${path}/ambit-controller`, { body: seenByA });
  assert.is(renewed.status, 200, renewed.text);
  seenByB.spec.holderIdentity = 'controller-b';
  seenByB.spec.leaseTransitions = 1;
  const taken = await t.call('PUT', `${path}/ambit-controller`, { body: seenByB });
  assert.is(taken.status, 409);
  assert.is(taken.json.reason, 'Conflict');
  assert.is(taken.json.message, 'Operation cannot be fulfilled on leases.coordination.k8s.io "ambit-controller": the object has been modified; please apply your changes to the latest version and try again');
  const now = (await t.call('GET', `${path}/ambit-controller`)).json;
  assert.equal([now.spec.holderIdentity, now.spec.renewTime, now.metadata.resourceVersion], ['controller-a', '2026-12-01T08:30:02.000000Z', renewed.json.metadata.resourceVersion]);
});

test('an update without a resourceVersion is 422, as the Lease registry refuses unconditional updates; PUT of a missing Lease creates it', async () => {
  const created = await t.call('PUT', `${path}/ambit-controller`, { body: lease('controller-a') });
  assert.is(created.status, 201, created.text);
  const blind = await t.call('PUT', `${path}/ambit-controller`, { body: lease('controller-b') });
  assert.is(blind.status, 422);
  assert.is(blind.json.message, 'leases.coordination.k8s.io "ambit-controller" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update');
  assert.is((await t.call('GET', `${path}/ambit-controller`)).json.spec.holderIdentity, 'controller-a');
  // A merge patch applies to the current object, so it needs no resourceVersion.
  const patched = await t.call('PATCH', `${path}/ambit-controller`, { body: { spec: { holderIdentity: 'controller-b' } }, contentType: 'application/merge-patch+json' });
  assert.is(patched.status, 200, patched.text);
  assert.is(patched.json.spec.holderIdentity, 'controller-b');
});

test('acquireTime and renewTime come back as MicroTime (UTC, six fractional digits), whatever RFC 3339 form was written; a malformed one is 422 naming it', async () => {
  const r = await t.call('POST', path, { body: lease('controller-a', { acquireTime: '2026-12-01T09:30:00+01:00', renewTime: '2026-12-01T08:30:01.5Z' }) });
  assert.is(r.status, 201, r.text);
  assert.equal([r.json.spec.acquireTime, r.json.spec.renewTime], ['2026-12-01T08:30:00.000000Z', '2026-12-01T08:30:01.500000Z']);
  const bad = await t.call('POST', path, { body: { ...lease('x', { renewTime: '1 Dec 2026' }), metadata: { name: 'other' } } });
  assert.is(bad.status, 422);
  assert.is(bad.json.details.causes[0].field, 'spec.renewTime');
  const zero = await t.call('POST', path, { body: { ...lease('x', { leaseDurationSeconds: 0 }), metadata: { name: 'other' } } });
  assert.is(zero.status, 422);
  assert.is(zero.json.details.causes[0].field, 'spec.leaseDurationSeconds');
});

test('a watch on leases sees each renewal, as a follower waiting for the leader to lapse does', async () => {
  await t.call('POST', path, { body: lease('controller-a') });
  const w = await t.watch(`${path}?watch=1&resourceVersion=${t.store.currentRevision}`);
  const current = (await t.call('GET', `${path}/ambit-controller`)).json;
  current.spec.renewTime = '2026-12-01T08:30:04.000000Z';
  assert.is((await t.call('PUT', `${path}/ambit-controller`, { body: current })).status, 200);
  const e = await w.next(10_000);
  assert.equal([e.type, e.object.spec.renewTime], ['MODIFIED', '2026-12-01T08:30:04.000000Z']);
  w.abort();
});

test('kubectl get leases -A prints NAMESPACE, NAME, HOLDER and AGE, as the real server\'s Table does', async () => {
  await t.call('POST', path, { body: lease('controller-a') });
  await t.call('POST', path, { body: { ...lease(''), metadata: { name: 'unheld' }, spec: { leaseDurationSeconds: 15 } } });
  const r = await t.kubectl('get', 'leases', '-A');
  assert.is(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));
  assert.equal(rows[0], ['NAMESPACE', 'NAME', 'HOLDER', 'AGE']);
  assert.equal(rows[1]!.slice(0, 3), ['ambit-system', 'ambit-controller', 'controller-a']);
  // An unheld lease has an empty holder cell, so its AGE follows the name.
  assert.equal(rows[2]!.slice(0, 2), ['ambit-system', 'unheld']);
  assert.match(rows[2]![2]!, /^\d+s$/);
});

test.run();
