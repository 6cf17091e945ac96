// Which DestinationRule governs a Service at the waypoint, and the whole per-Service policy at work:
// a rule's outlier detection takes a failing endpoint out of the rotation and puts it back.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileTrafficPolicy, UpstreamPolicies } from '../../../waypoint/upstream/policy.js';
import { seededRandom } from '../../helpers/random.js';
import type { Resource } from '../../../shared/resources/types.js';
import { endpoints, FakeClock, request } from './upstream-helpers.js';

const rule = (namespace: string, name: string, spec: Record<string, unknown>, created = ''): Resource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'DestinationRule',
  metadata: { name, namespace, ...(created ? { creationTimestamp: created } : {}) },
  spec,
});
const simple = (s: string) => ({ loadBalancer: { simple: s } });

function policies(waypointNamespace = 'shop') {
  const clock = new FakeClock();
  return { clock, p: new UpstreamPolicies({ rootNamespace: 'istio-system', waypointNamespace, clock: clock.read, random: seededRandom(9) }) };
}

for (const host of ['web', 'web.shop', 'web.shop.svc', 'web.shop.svc.cluster.local']) {
  test(`a rule for host ${host} governs Service shop/web`, () => {
    const { p } = policies();
    p.setDestinationRules([rule('shop', 'web', { host, trafficPolicy: simple('RANDOM') })]);
    assert.is(p.policyFor('shop', 'web').traffic.balancer.algorithm, 'RANDOM');
    assert.is(p.policyFor('shop', 'api').rule, undefined);
  });
}

test("without a rule, Istio's defaults: least request, no outlier detection, no limits", () => {
  const { p } = policies();
  const web = p.policyFor('shop', 'web');
  assert.is(web.traffic.balancer.algorithm, 'LEAST_REQUEST');
  assert.is(web.outlier, undefined);
  assert.is(web.breaker.limits.http2MaxRequests, 2 ** 32 - 1);
  assert.is(web.traffic.connectTimeoutMs, 10_000);
});

test("the rule in the Service's namespace wins over one in the root namespace", () => {
  const { p } = policies();
  p.setDestinationRules([rule('istio-system', 'all', { host: 'web.shop.svc.cluster.local', trafficPolicy: simple('ROUND_ROBIN') }), rule('shop', 'web', { host: 'web', trafficPolicy: simple('RANDOM') })]);
  assert.is(p.policyFor('shop', 'web').rule, 'shop/web');
  assert.is(p.policyFor('shop', 'web').traffic.balancer.algorithm, 'RANDOM');
});

test('a root-namespace wildcard rule applies where no namespace has its own', () => {
  const { p } = policies();
  p.setDestinationRules([rule('istio-system', 'mesh', { host: '*.cluster.local', trafficPolicy: simple('ROUND_ROBIN') }), rule('shop', 'wild', { host: '*.shop.svc.cluster.local', trafficPolicy: simple('RANDOM') }), rule('shop', 'exact', { host: 'web', trafficPolicy: simple('LEAST_REQUEST') })]);
  assert.is(p.policyFor('shop', 'web').rule, 'shop/exact');
  assert.is(p.policyFor('shop', 'api').rule, 'shop/wild');
  assert.is(p.policyFor('bank', 'ledger').rule, 'istio-system/mesh');
});

test('of two rules for one host in one namespace, the older one wins', () => {
  const { p } = policies();
  p.setDestinationRules([rule('shop', 'b', { host: 'web' }, '2026-01-02T00:00:00Z'), rule('shop', 'a', { host: 'web' }, '2026-01-03T00:00:00Z')]);
  assert.is(p.policyFor('shop', 'web').rule, 'shop/b');
});

test("exportTo '.' keeps a rule to its own namespace's waypoint", () => {
  const { p } = policies('other');
  p.setDestinationRules([rule('shop', 'web', { host: 'web', exportTo: ['.'], trafficPolicy: simple('RANDOM') })]);
  assert.is(p.policyFor('shop', 'web').rule, undefined);
});

test('a rule with a duration under 1ms is reported by field and not applied', () => {
  const { p } = policies();
  const problems = p.setDestinationRules([rule('shop', 'web', { host: 'web', trafficPolicy: { outlierDetection: { interval: '0s' } } })]);
  assert.equal(problems.map((e) => e.message), ["DestinationRule shop/web: spec.trafficPolicy.outlierDetection.interval must be at least 1ms (Istio's minimum), not 0s"]);
  assert.is(p.policyFor('shop', 'web').rule, undefined);
});

test('consistentHash and connectionPool compile to the balancer and limits the rule asks for', () => {
  const t = compileTrafficPolicy({
    host: 'web',
    trafficPolicy: {
      loadBalancer: { consistentHash: { httpCookie: { name: 'user', ttl: '1h' }, maglev: { tableSize: 251 } } },
      connectionPool: { tcp: { maxConnections: 5, connectTimeout: '250ms' }, http: { http2MaxRequests: 7, maxRetries: 1 } },
    },
  });
  assert.equal(t.balancer, { algorithm: 'MAGLEV', hashOn: { type: 'cookie', name: 'user', ttlSeconds: 3600 }, tableSize: 251, locality: false, panicThresholdPercent: 0 });
  assert.equal([t.limits.maxConnections, t.limits.http2MaxRequests, t.limits.maxRetries, t.connectTimeoutMs], [5, 7, 1, 250]);
});

test('an endpoint failing five times in a row gets no requests until its ejection time is over', () => {
  const { p, clock } = policies();
  p.setDestinationRules([rule('shop', 'web', { host: 'web', trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, outlierDetection: { consecutive5xxErrors: 5, interval: '1s', baseEjectionTime: '30s', maxEjectionPercent: 50 } } })]);
  const web = p.policyFor('shop', 'web');
  web.setEndpoints(endpoints(3));
  const bad = '10.0.0.1:8080';
  let ejection;
  for (let i = 0; i < 30 && !ejection; i++) {
    const pick = web.pick(request())!;
    web.started(pick);
    ejection = web.finished(pick, pick.key === bad ? 503 : 200);
  }
  assert.is(ejection?.type, 'ejected');
  for (let i = 0; i < 30; i++) assert.is.not(web.pick(request())!.key, bad);
  clock.advance(29_000);
  p.sweepIfDue();
  assert.is.not(web.pick(request())!.key, bad);
  clock.advance(1000);
  assert.equal(p.sweepIfDue().map((e) => e.type), ['returned']);
  const seen = new Set<string>();
  for (let i = 0; i < 3; i++) seen.add(web.pick(request())!.key);
  assert.ok(seen.has(bad));
});

test("an unchanged rule keeps the Service's state; a changed one starts afresh with the same endpoints", () => {
  const { p } = policies();
  const dr = rule('shop', 'web', { host: 'web', trafficPolicy: simple('RANDOM') });
  p.setDestinationRules([dr]);
  const first = p.policyFor('shop', 'web');
  first.setEndpoints(endpoints(2));
  p.setDestinationRules([dr]);
  assert.is(p.policyFor('shop', 'web'), first);
  p.setDestinationRules([rule('shop', 'web', { host: 'web', trafficPolicy: simple('ROUND_ROBIN') })]);
  const second = p.policyFor('shop', 'web');
  assert.is.not(second, first);
  assert.is(second.traffic.balancer.algorithm, 'ROUND_ROBIN');
  assert.is(second.balancer.endpoints.length, 2);
});

test.run();
