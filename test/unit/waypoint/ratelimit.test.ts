// The waypoint's local rate limits: a budget, then 429 verdicts until the bucket fills again; one
// bucket per source when asked; route, Service and Gateway limits together; budgets that survive a
// config push; and Envoy's draft-03 headers.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { OutgoingHttpHeaders } from 'node:http';
import type { TrafficEntry } from '../../../shared/protocol/config.js';
import { RateLimiter, rateLimitHeaders, type RateLimitVerdict } from '../../../waypoint/ratelimit.js';
import { SharedCounters } from '../../../waypoint/upstream/shared-counters.js';

const gw = 'gateway.networking.k8s.io';
const alice = 'cluster.local/ns/shop/sa/alice';
const bob = 'cluster.local/ns/shop/sa/bob';

function rl(name: string, targetRefs: unknown[], tokenBucket: Record<string, unknown>, perSource = false, namespace = 'shop'): TrafficEntry {
  return { kind: 'LocalRateLimit', name, namespace, spec: { targetRefs, tokenBucket, perSource } };
}
const onService = (name = 'echo') => [{ group: '', kind: 'Service', name }];

/** A limiter on waypoint shop/waypoint with a clock the test moves. */
function limiter(traffic: TrafficEntry[], o: { maxSources?: number } = {}) {
  const clock = { ms: 1_000_000 };
  const l = new RateLimiter({ waypoint: 'shop/waypoint', rootNamespace: 'istio-system', now: () => clock.ms, ...o });
  const problems = l.update(traffic);
  return { l, clock, problems };
}
const takeN = (l: RateLimiter, n: number, source = alice, service = 'shop/echo', route?: string) => {
  const out: RateLimitVerdict[] = [];
  for (let i = 0; i < n; i++) out.push(l.take(service, route, source)!);
  return out;
};

test('five requests spend a budget of five, counting down; the sixth is limited until the next fill', () => {
  const { l } = limiter([rl('echo-budget', onService(), { maxTokens: 5, tokensPerFill: 5, fillInterval: '60s' })]);
  const v = takeN(l, 6);
  assert.equal(v.map((x) => x.limited), [false, false, false, false, false, true]);
  assert.equal(v.map((x) => x.remaining), [4, 3, 2, 1, 0, 0]);
  assert.equal(v[5], { limited: true, limit: 5, remaining: 0, resetSeconds: 60, policy: 'shop/echo-budget' });
});

test('no verdict for a Service no limit names', () => {
  const { l } = limiter([rl('echo-budget', onService(), { maxTokens: 1, fillInterval: '1s' })]);
  assert.is(l.take('shop/other', undefined, alice), undefined);
  assert.is(l.take('billing/echo', undefined, alice), undefined);
});

test('the bucket refills by tokensPerFill each interval, never past maxTokens, and reset counts down to the next fill', () => {
  const { l, clock } = limiter([rl('b', onService(), { maxTokens: 4, tokensPerFill: 2, fillInterval: '10s' })]);
  takeN(l, 4);
  assert.ok(l.take('shop/echo', undefined, alice)!.limited);
  clock.ms += 9_999;
  const waiting = l.take('shop/echo', undefined, alice)!;
  assert.equal([waiting.limited, waiting.resetSeconds], [true, 1]);
  clock.ms += 1;
  assert.equal(takeN(l, 3).map((x) => x.limited), [false, false, true]);
  clock.ms += 300_000;
  assert.equal(takeN(l, 5).map((x) => x.limited), [false, false, false, false, true]);
});

test('a fill comes on the interval from the configuration, not from the last request (as Envoy’s timer)', () => {
  const { l, clock } = limiter([rl('b', onService(), { maxTokens: 1, fillInterval: '10s' })]);
  clock.ms += 7_000;
  assert.not.ok(l.take('shop/echo', undefined, alice)!.limited);
  const v = l.take('shop/echo', undefined, alice)!;
  assert.equal([v.limited, v.resetSeconds], [true, 3]);
  clock.ms += 3_000;
  assert.not.ok(l.take('shop/echo', undefined, alice)!.limited);
});

test('perSource gives each source identity its own bucket; without it, sources share one', () => {
  const shared = limiter([rl('b', onService(), { maxTokens: 2, fillInterval: '60s' })]).l;
  takeN(shared, 2, alice);
  assert.ok(shared.take('shop/echo', undefined, bob)!.limited);
  const own = limiter([rl('b', onService(), { maxTokens: 2, fillInterval: '60s' }, true)]).l;
  assert.equal(takeN(own, 3, alice).map((x) => x.limited), [false, false, true]);
  assert.equal(takeN(own, 3, bob).map((x) => x.limited), [false, false, true]);
});

test('per-source buckets are bounded: past the cap the least recently used source is forgotten', () => {
  const { l } = limiter([rl('b', onService(), { maxTokens: 1, fillInterval: '60s' }, true)], { maxSources: 3 });
  for (let i = 0; i < 10; i++) l.take('shop/echo', undefined, `cluster.local/ns/shop/sa/s${i}`);
  assert.is(l.sourcesTracked('shop/b'), 3);
  // s9 was used last, so it is kept (and limited); s0 was forgotten and starts afresh.
  assert.ok(l.take('shop/echo', undefined, 'cluster.local/ns/shop/sa/s9')!.limited);
  assert.not.ok(l.take('shop/echo', undefined, 'cluster.local/ns/shop/sa/s0')!.limited);
});

test('a limit on an HTTPRoute applies only to requests that route matched', () => {
  const { l } = limiter([rl('r', [{ group: gw, kind: 'HTTPRoute', name: 'echo-route' }], { maxTokens: 1, fillInterval: '60s' })]);
  assert.is(l.take('shop/echo', undefined, alice), undefined);
  assert.is(l.take('shop/echo', 'shop/other-route', alice), undefined);
  assert.not.ok(l.take('shop/echo', 'shop/echo-route', alice)!.limited);
  assert.ok(l.take('shop/echo', 'shop/echo-route', alice)!.limited);
});

test('route and Service limits both apply: the verdict is the bucket with fewest tokens left, and the limiting one when empty', () => {
  const { l } = limiter([
    rl('svc', onService(), { maxTokens: 10, fillInterval: '60s' }),
    rl('route', [{ group: gw, kind: 'HTTPRoute', name: 'echo-route' }], { maxTokens: 2, fillInterval: '30s' }),
  ]);
  const v = takeN(l, 3, alice, 'shop/echo', 'shop/echo-route');
  assert.equal(v.map((x) => [x.policy, x.limited, x.remaining]), [['shop/route', false, 1], ['shop/route', false, 0], ['shop/route', true, 0]]);
  // The route's refusal charged nothing to the Service: 2 of its 10 are spent, not 3.
  assert.equal([l.take('shop/echo', undefined, alice)!.policy, l.take('shop/echo', undefined, alice)!.remaining], ['shop/svc', 6]);
});

test("a Gateway limit bounds every Service through this waypoint, a route's looser limit does not lift it, and another waypoint's Gateway is not this one", () => {
  const { l } = limiter([
    rl('waypoint-wide', [{ group: gw, kind: 'Gateway', name: 'waypoint' }], { maxTokens: 2, fillInterval: '60s' }),
    rl('generous', [{ group: gw, kind: 'HTTPRoute', name: 'echo-route' }], { maxTokens: 100, fillInterval: '1s' }),
    rl('elsewhere', [{ group: gw, kind: 'Gateway', name: 'other-waypoint' }], { maxTokens: 1, fillInterval: '60s' }),
  ]);
  assert.equal(l.take('shop/echo', 'shop/echo-route', alice)!.policy, 'shop/waypoint-wide');
  assert.not.ok(l.take('shop/cart', undefined, alice)!.limited);
  const third = l.take('shop/echo', 'shop/echo-route', alice)!;
  assert.equal([third.limited, third.policy], [true, 'shop/waypoint-wide']);
});

test('a limit attached to a Service and to its route is charged once per request', () => {
  const { l } = limiter([rl('both', [...onService(), { group: gw, kind: 'HTTPRoute', name: 'echo-route' }], { maxTokens: 4, fillInterval: '60s' })]);
  assert.equal(takeN(l, 2, alice, 'shop/echo', 'shop/echo-route').map((x) => x.remaining), [3, 2]);
});

test('a config push with the bucket unchanged keeps the budget spent; a changed bucket starts full', () => {
  const first = rl('b', onService(), { maxTokens: 3, fillInterval: '60s' });
  const { l } = limiter([first]);
  takeN(l, 3);
  // Unchanged, and also with a new target added: the spent budget stays spent.
  assert.equal(l.update([first, rl('other', onService('cart'), { maxTokens: 1, fillInterval: '1s' })]), []);
  assert.ok(l.take('shop/echo', undefined, alice)!.limited);
  l.update([rl('b', [...onService(), ...onService('cart')], { maxTokens: 3, fillInterval: '60s' })]);
  assert.ok(l.take('shop/echo', undefined, alice)!.limited);
  l.update([rl('b', onService(), { maxTokens: 4, fillInterval: '60s' })]);
  assert.equal(takeN(l, 5).map((x) => x.limited), [false, false, false, false, true]);
});

test('a removed limit no longer applies', () => {
  const { l } = limiter([rl('b', onService(), { maxTokens: 1, fillInterval: '60s' })]);
  l.update([]);
  assert.is(l.take('shop/echo', undefined, alice), undefined);
});

test('update names the policy and field of each problem and leaves a bad bucket out of force', () => {
  const { l, problems } = limiter([
    rl('too-fast', onService(), { maxTokens: 5, fillInterval: '10ms' }),
    rl('bad-ref', [{ group: '', kind: 'Pod', name: 'echo-1' }, ...onService('cart')], { maxTokens: 1, fillInterval: '1s' }),
    { kind: 'HTTPRoute', name: 'echo-route', namespace: 'shop', spec: {} },
  ]);
  assert.equal(problems.map((p) => [p.policy, p.field]), [['shop/too-fast', 'spec.tokenBucket.fillInterval'], ['shop/bad-ref', 'spec.targetRefs[0]']]);
  assert.is(l.take('shop/echo', undefined, alice), undefined);
  assert.ok(l.take('shop/cart', undefined, alice));
});

test('a GatewayClass limit from the root namespace applies at every waypoint', () => {
  const { l } = limiter([rl('mesh', [{ group: gw, kind: 'GatewayClass', name: 'istio-waypoint' }], { maxTokens: 1, fillInterval: '60s' }, false, 'istio-system')]);
  assert.equal(l.take('billing/ledger', undefined, alice)!.policy, 'istio-system/mesh');
});

test("two event loops sharing a budget across a fill: the one whose clock still reads the last period counts no fill, so none is credited twice", () => {
  const shared = new SharedCounters({ slots: 64 });
  const budget = [rl('budget', onService(), { maxTokens: 2, tokensPerFill: 2, fillInterval: '1s' })];
  const clocks = { a: 0, b: 0 };
  const a = new RateLimiter({ waypoint: 'shop/waypoint', rootNamespace: 'istio-system', now: () => clocks.a, shared });
  const b = new RateLimiter({ waypoint: 'shop/waypoint', rootNamespace: 'istio-system', now: () => clocks.b, shared });
  a.update(budget);
  b.update(budget);
  clocks.a = 500;
  assert.equal(takeN(a, 3).map((v) => v.limited), [false, false, true], 'the first period spent');
  // b reads the next period (one fill of 2), a a moment behind it still reads the last.
  clocks.b = 1000;
  clocks.a = 999.9;
  const takes = [b, a, b, b].map((l) => l.take('shop/echo', undefined, alice)!.limited);
  assert.equal(takes, [false, false, true, true], 'two takes for the one fill');
});

test("rateLimitHeaders writes Envoy's draft-03 headers, and retry-after with x-envoy-ratelimited on a 429", () => {
  const ok: OutgoingHttpHeaders = {};
  rateLimitHeaders({ limited: false, limit: 5, remaining: 4, resetSeconds: 60, policy: 'shop/b' }, ok);
  assert.equal(ok, { 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '4', 'x-ratelimit-reset': '60' });
  const limited: OutgoingHttpHeaders = {};
  rateLimitHeaders({ limited: true, limit: 5, remaining: 0, resetSeconds: 0, policy: 'shop/b' }, limited);
  assert.equal(limited, { 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '0', 'retry-after': '1', 'x-envoy-ratelimited': 'true' });
});

test.run();
