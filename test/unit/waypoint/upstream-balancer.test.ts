// Which endpoint a request reaches: round robin, least request, sticky sessions that survive
// endpoint churn, the client's node first, and no ejected endpoint unless too few are healthy.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Balancer, type BalancerOptions, cookieValue } from '../../../waypoint/upstream/balancer.js';
import { seededRandom } from '../../helpers/random.js';
import { endpoints, request } from './upstream-helpers.js';

const ejected = (keys: string[]) => ({ version: keys.length + 1, isEjected: (k: string) => keys.includes(k) });

test('round robin spreads requests evenly over the endpoints', () => {
  const b = new Balancer({ algorithm: 'ROUND_ROBIN' }, seededRandom(1));
  b.setEndpoints(endpoints(3));
  const counts = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const k = b.pick(request())!.key;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  assert.equal([...counts.values()], [100, 100, 100]);
});

test('least request sends fewer requests to an endpoint that is busy', () => {
  const b = new Balancer({ algorithm: 'LEAST_REQUEST' }, seededRandom(2));
  b.setEndpoints(endpoints(4));
  const busy = b.pick(request())!;
  for (let i = 0; i < 50; i++) b.started(busy);
  let toBusy = 0;
  for (let i = 0; i < 1000; i++) {
    const p = b.pick(request())!;
    if (p.key === busy.key) toBusy++;
  }
  // Two choices: the busy one wins only when drawn twice, 1/16 of the time.
  assert.ok(toBusy < 100, `busy endpoint got ${toBusy} of 1000`);
  for (let i = 0; i < 50; i++) b.finished(busy);
});

const ringOn = (hashOn: BalancerOptions['hashOn'], algorithm: 'RING_HASH' | 'MAGLEV' = 'RING_HASH') => new Balancer({ algorithm, hashOn }, seededRandom(3));

test('a header-keyed session sticks to one endpoint, and different users spread out', () => {
  const b = ringOn({ type: 'header', name: 'x-user' });
  b.setEndpoints(endpoints(5));
  const first = b.pick(request({ headers: { 'x-user': 'alice' } }))!.key;
  for (let i = 0; i < 50; i++) assert.is(b.pick(request({ headers: { 'x-user': 'alice' } }))!.key, first);
  const used = new Set<string>();
  for (let i = 0; i < 200; i++) used.add(b.pick(request({ headers: { 'x-user': `user-${i}` } }))!.key);
  assert.is(used.size, 5);
});

test('a source-IP session sticks to one endpoint', () => {
  const b = ringOn({ type: 'sourceIp' });
  b.setEndpoints(endpoints(5));
  const first = b.pick(request({ sourceIp: '10.1.0.7' }))!.key;
  for (let i = 0; i < 20; i++) assert.is(b.pick(request({ sourceIp: '10.1.0.7' }))!.key, first);
});

test('a missing session cookie with a ttl is generated, and the next request with it returns to the same endpoint', () => {
  const b = ringOn({ type: 'cookie', name: 'session', path: '/', ttlSeconds: 60 });
  b.setEndpoints(endpoints(5));
  const first = b.pick(request())!;
  assert.ok(first.setCookie);
  assert.match(first.setCookie!, /^session=[0-9a-f]{16}; Path=\/; Max-Age=60; HttpOnly$/);
  const value = cookieValue(`other=1; ${first.setCookie!.split(';')[0]}`, 'session')!;
  for (let i = 0; i < 20; i++) {
    const again = b.pick(request({ cookies: { session: value } }))!;
    assert.is(again.key, first.key);
    assert.is(again.setCookie, undefined);
  }
});

test('a zero ttl makes a session cookie, and no ttl makes none', () => {
  const session = ringOn({ type: 'cookie', name: 's', ttlSeconds: 0 });
  session.setEndpoints(endpoints(3));
  assert.match(session.pick(request())!.setCookie!, /^s=[0-9a-f]{16}; HttpOnly$/);
  const none = ringOn({ type: 'cookie', name: 's' });
  none.setEndpoints(endpoints(3));
  assert.is(none.pick(request())!.setCookie, undefined);
});

for (const algorithm of ['RING_HASH', 'MAGLEV'] as const) {
  test(`${algorithm}: when one of ten endpoints goes, only its sessions move (about 1/10)`, () => {
    const b = ringOn({ type: 'header', name: 'x-user' }, algorithm);
    const all = endpoints(10);
    b.setEndpoints(all);
    const users = Array.from({ length: 5000 }, (_, i) => `user-${i}`);
    const before = users.map((u) => b.pick(request({ headers: { 'x-user': u } }))!.key);
    const gone = `${all[4]!.ip}:${all[4]!.port}`;
    b.setEndpoints(all.filter((_, i) => i !== 4));
    const after = users.map((u) => b.pick(request({ headers: { 'x-user': u } }))!.key);
    let moved = 0;
    let movedFromStayers = 0;
    users.forEach((_, i) => {
      if (before[i] === after[i]) return;
      moved++;
      if (before[i] !== gone) movedFromStayers++;
    });
    const share = moved / users.length;
    assert.ok(share > 0.05 && share < 0.16, `${(share * 100).toFixed(1)}% moved`);
    // The ring moves nothing else; Maglev moves a little more, never much.
    assert.ok(movedFromStayers <= (algorithm === 'RING_HASH' ? 0 : users.length * 0.03), `${movedFromStayers} sessions of remaining endpoints moved`);
    // And the endpoint's return brings its sessions back.
    b.setEndpoints(all);
    assert.equal(users.map((u) => b.pick(request({ headers: { 'x-user': u } }))!.key), before);
  });
}

test('the same endpoints in another order give the same sessions', () => {
  const a = ringOn({ type: 'header', name: 'x-user' });
  const b = ringOn({ type: 'header', name: 'x-user' });
  a.setEndpoints(endpoints(6));
  b.setEndpoints(endpoints(6).reverse());
  for (let i = 0; i < 100; i++) assert.is(a.pick(request({ headers: { 'x-user': `u${i}` } }))!.key, b.pick(request({ headers: { 'x-user': `u${i}` } }))!.key);
});

test("with locality on, requests stay on the client's node, and fail over when its endpoints are ejected", () => {
  const eps = endpoints(4, ['node-1', 'node-2']);
  const onNode1 = eps.filter((e) => e.node === 'node-1').map((e) => `${e.ip}:${e.port}`);
  let health = ejected([]);
  const b = new Balancer({ algorithm: 'ROUND_ROBIN', locality: true }, seededRandom(4), { get version() { return health.version; }, isEjected: (k) => health.isEjected(k) });
  b.setEndpoints(eps);
  for (let i = 0; i < 10; i++) assert.ok(onNode1.includes(b.pick(request({ clientNode: 'node-1' }))!.key));
  health = ejected(onNode1);
  for (let i = 0; i < 10; i++) assert.is(b.pick(request({ clientNode: 'node-1' }))!.endpoint.node, 'node-2');
});

test('without locality, every node gets requests', () => {
  const b = new Balancer({ algorithm: 'ROUND_ROBIN' }, seededRandom(4));
  b.setEndpoints(endpoints(4, ['node-1', 'node-2']));
  const nodes = new Set<string>();
  for (let i = 0; i < 4; i++) nodes.add(b.pick(request({ clientNode: 'node-1' }))!.endpoint.node);
  assert.is(nodes.size, 2);
});

test('ejected endpoints get no requests; with all ejected there is no endpoint (503 UH)', () => {
  const eps = endpoints(3);
  const keys = eps.map((e) => `${e.ip}:${e.port}`);
  let health = ejected([keys[0]!]);
  const b = new Balancer({ algorithm: 'RANDOM' }, seededRandom(5), { get version() { return health.version; }, isEjected: (k) => health.isEjected(k) });
  b.setEndpoints(eps);
  for (let i = 0; i < 50; i++) assert.is.not(b.pick(request())!.key, keys[0]);
  health = ejected(keys);
  assert.is(b.pick(request()), undefined);
});

test('below minHealthPercent healthy endpoints, ejections are ignored (panic mode)', () => {
  const eps = endpoints(4);
  const keys = eps.map((e) => `${e.ip}:${e.port}`);
  const b = new Balancer({ algorithm: 'ROUND_ROBIN', panicThresholdPercent: 50 }, seededRandom(6), ejected(keys.slice(0, 3)));
  b.setEndpoints(eps);
  const used = new Set<string>();
  for (let i = 0; i < 4; i++) used.add(b.pick(request())!.key);
  assert.is(used.size, 4);
  assert.ok(b.panic);
});

test('a retry avoids the endpoint of the failed try', () => {
  const b = new Balancer({ algorithm: 'RANDOM' }, seededRandom(7));
  b.setEndpoints(endpoints(3));
  for (let i = 0; i < 100; i++) {
    const first = b.pick(request())!;
    assert.is.not(b.pick(request(), first.key)!.key, first.key);
  }
});

test.run();
