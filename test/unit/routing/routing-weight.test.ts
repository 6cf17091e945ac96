// Weighted backends, from the conformance tests MeshHTTPRouteWeight and MeshGRPCRouteWeight: over
// 500 requests each backend's share must be within 5 points of its weight (the suite's tolerance),
// and a backend of weight 0 gets nothing. Draws use a seeded generator, so the result is fixed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes, pickBackend } from '../../../shared/routing/index.js';
import { conformanceTable, echoParent, route, seeded, send, services } from './routing-helpers.js';

const requests = 500;
const tolerance = 0.05;

function shares(draw: (random: () => number) => string, seed: number, n = requests): Record<string, number> {
  const random = seeded(seed);
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const b = draw(random);
    counts[b] = (counts[b] ?? 0) + 1;
  }
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / n]));
}

function assertWithin(got: Record<string, number>, want: Record<string, number>): void {
  assert.equal(Object.keys(got).sort(), Object.keys(want).filter((k) => want[k]! > 0).sort(), 'only backends with weight receive traffic');
  for (const [name, share] of Object.entries(want)) assert.ok(Math.abs((got[name] ?? 0) - share) <= tolerance, `${name}: ${got[name]} not within ${share} ± ${tolerance}`);
}

test('MeshHTTPRouteWeight: 70/30 between echo-v1 and echo-v2 within the suite tolerance', () => {
  const table = conformanceTable('httproute-weight');
  for (const seed of [1, 2, 3]) assertWithin(shares((random) => send(table, { path: '/', random }).backend!, seed), { 'echo-v1': 0.7, 'echo-v2': 0.3 });
});

test('MeshGRPCRouteWeight: 70/30/0, and the weight-0 backend (a Service that does not exist) is never drawn', () => {
  const table = conformanceTable('grpcroute-weight');
  const draw = (random: () => number) => {
    const o = send(table, { port: 7070, method: 'POST', path: '/grpc.testing.TestService/EmptyCall', headers: { 'content-type': 'application/grpc' }, random });
    return o.status === 200 ? o.backend! : `status ${o.status}`;
  };
  for (const seed of [1, 2, 3]) assertWithin(shares(draw, seed), { 'echo-v1': 0.7, 'echo-v2': 0.3, 'echo-v3': 0 });
});

test('pickBackend splits the unit interval exactly by weight', () => {
  const table = conformanceTable('httproute-weight');
  const parent = table.lookup({ namespace: 'gateway-conformance-mesh', name: 'echo' }, 80, 'gateway-conformance-mesh')!;
  const rule = table.match(parent, { method: 'GET', path: '/', headers: {} })!.rule;
  const counts: Record<string, number> = {};
  const n = 1000;
  for (let i = 0; i < n; i++) {
    const name = pickBackend(rule, () => (i + 0.5) / n)!.name;
    counts[name] = (counts[name] ?? 0) + 1;
  }
  assert.equal(counts, { 'echo-v1': 700, 'echo-v2': 300 });
});

test('an invalid backend keeps its share of traffic, which gets 500; all weights 0 or no backends give 500', () => {
  const split = route('HTTPRoute', 'split', { parentRefs: [echoParent], rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080 }, { name: 'missing', port: 8080 }] }] });
  const splitTable = compileRoutes([split], services);
  // 5000 draws: the 5-point tolerance is then seven standard deviations of a fair split.
  const got = shares((random) => String(send(splitTable, { random }).status), 7, 5000);
  assertWithin(got, { '200': 0.5, '500': 0.5 });
  const zero = route('HTTPRoute', 'zero', { parentRefs: [echoParent], rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080, weight: 0 }] }] });
  const o = send(compileRoutes([zero], services), {});
  assert.equal([o.status, o.plan?.failure?.message], [500, 'every backendRef of the matched rule has weight 0']);
  const none = route('HTTPRoute', 'none', { parentRefs: [echoParent], rules: [{}] });
  assert.is(send(compileRoutes([none], services), {}).status, 500);
  const wrongKind = route('HTTPRoute', 'kind', { parentRefs: [echoParent], rules: [{ backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'echo-v1' }] }] });
  assert.is(send(compileRoutes([wrongKind], services), {}).status, 500);
});

test.run();
