// core/v1 Events through the REST API and kubectl, as client-go's recorder writes them: stored with
// Kubernetes' timestamps, selected by the involved object, printed with kubectl's event columns,
// and expired an hour after they last happened (--event-ttl) so they never grow the store unbounded.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ns, startApi, type TestApi } from './helpers.js';

let t: TestApi;
const path = '/api/v1/namespaces/shop/events';

test.before.each(async () => {
  // The sweep runs every 50 ms here (a minute by default), the TTL is Kubernetes' hour.
  t = await startApi({ events: { sweepIntervalMs: 50 } });
  assert.is((await t.call('POST', '/api/v1/namespaces', { body: ns('shop') })).status, 201);
});
test.after.each(async () => {
  await t.close();
});

const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

function event(name: string, o: { pod?: string; reason?: string; type?: string; message?: string; last?: string; count?: number } = {}) {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name, namespace: 'shop' },
    involvedObject: { kind: 'Pod', namespace: 'shop', name: o.pod ?? 'web-1', uid: 'u-1', apiVersion: 'v1', fieldPath: 'spec.containers{main}' },
    reason: o.reason ?? 'Started',
    message: o.message ?? 'Started container main',
    source: { component: 'kubelet', host: 'node-1' },
    // Minutes in the tens, which kubectl prints as whole minutes (`30m`) for a while, not `2m1s`.
    firstTimestamp: ago(45 * 60_000),
    lastTimestamp: o.last ?? ago(30 * 60_000),
    count: o.count ?? 1,
    type: o.type ?? 'Normal',
  };
}

test('an Event is stored with its timestamps as Kubernetes writes a Time (UTC, whole seconds), and updated by PUT as the recorder counts repeats', async () => {
  // Recent enough that the sweep leaves it be: a minute ago, written with an offset and a fraction.
  const minuteAgo = new Date(Math.floor((Date.now() - 60_000) / 1000) * 1000);
  const inParis = new Date(minuteAgo.getTime() + 3600_000).toISOString().replace('.000Z', '.123+01:00');
  const body = { ...event('web-1.1'), firstTimestamp: inParis, lastTimestamp: minuteAgo.toISOString().replace('.000Z', '.9Z') };
  const r = await t.call('POST', path, { body });
  assert.is(r.status, 201, r.text);
  const seconds = minuteAgo.toISOString().replace('.000Z', 'Z');
  assert.equal([r.json.firstTimestamp, r.json.lastTimestamp], [seconds, seconds]);
  r.json.count = 2;
  const again = await t.call('PUT', `${path}/web-1.1`, { body: r.json });
  assert.is(again.status, 200, again.text);
  assert.is(again.json.count, 2);
});

test('an Event about an object in another namespace, or of a type other than Normal or Warning, is 422 naming the field', async () => {
  const elsewhere = event('x.1');
  elsewhere.involvedObject.namespace = 'other';
  const r = await t.call('POST', path, { body: elsewhere });
  assert.is(r.status, 422);
  assert.is(r.json.details.causes[0].field, 'involvedObject.namespace');
  assert.match(r.json.message, 'does not match event.namespace');
  const info = await t.call('POST', path, { body: event('x.2', { type: 'Info' }) });
  assert.is(info.status, 422);
  assert.is(info.json.details.causes[0].field, 'type');
});

test('events are selected by their involved object and type, as kubectl describe selects a pod\'s', async () => {
  await t.call('POST', path, { body: event('web-1.1') });
  await t.call('POST', path, { body: event('web-2.1', { pod: 'web-2', type: 'Warning', reason: 'BackOff', message: 'Back-off restarting failed container' }) });
  const of = await t.call('GET', `${path}?fieldSelector=${encodeURIComponent('involvedObject.name=web-2,involvedObject.namespace=shop,involvedObject.kind=Pod')}`);
  assert.equal(of.json.items.map((e: { metadata: { name: string } }) => e.metadata.name), ['web-2.1']);
  const warnings = await t.call('GET', `/api/v1/events?fieldSelector=type%3DWarning`);
  assert.equal(warnings.json.items.map((e: { reason: string }) => e.reason), ['BackOff']);
  assert.is((await t.call('GET', `${path}?fieldSelector=spec.nope%3Dx`)).status, 400);
});

test('kubectl get events prints LAST SEEN, TYPE, REASON, OBJECT and MESSAGE; -o wide adds the real server\'s wide columns', async () => {
  await t.call('POST', path, { body: event('web-2.1', { pod: 'web-2', type: 'Warning', reason: 'BackOff', message: 'Back-off restarting failed container', count: 4 }) });
  const r = await t.kubectl('get', 'events', '-n', 'shop');
  assert.is(r.code, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));
  assert.equal(rows[0], ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'MESSAGE']);
  assert.equal(rows[1], ['30m', 'Warning', 'BackOff', 'pod/web-2', 'Back-off restarting failed container']);
  const wide = (await t.kubectl('get', 'ev', '-n', 'shop', '-o', 'wide')).stdout.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));
  assert.equal(wide[0], ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'SUBOBJECT', 'SOURCE', 'MESSAGE', 'FIRST SEEN', 'COUNT', 'NAME']);
  assert.equal(wide[1], ['30m', 'Warning', 'BackOff', 'pod/web-2', 'spec.containers{main}', 'kubelet, node-1', 'Back-off restarting failed container', '45m', '4', 'web-2.1']);
});

test('an Event expires an hour after it last happened, not after it was first seen: the store does not keep them without bound', async () => {
  await t.call('POST', path, { body: event('old.1', { last: ago(61 * 60_000) }) });
  // First seen two hours ago, but it happened again a minute ago (the recorder moved lastTimestamp).
  await t.call('POST', path, { body: { ...event('repeating.1', { last: ago(60_000), count: 30 }), firstTimestamp: ago(2 * 3600_000) } });
  await t.call('POST', path, { body: event('recent.1') });
  const deadline = Date.now() + 20_000;
  while (t.store.get('Event', 'shop', 'old.1') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.is((await t.call('GET', `${path}/old.1`)).status, 404);
  const left = await t.call('GET', path);
  assert.equal(left.json.items.map((e: { metadata: { name: string } }) => e.metadata.name), ['recent.1', 'repeating.1']);
});

test.run();
