// LocalRateLimit is checked before it is stored: `ambit apply` refuses a bad one, naming the field,
// and stores nothing; the waypoint reads the same spec into its compiled form.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../../../controller/store/store.js';
import { ClusterIPAllocator } from '../../../controller/resources/allocator.js';
import { applyResources } from '../../../controller/resources/apply.js';
import { parseCidr } from '../../../shared/net/ipv4.js';
import { ResourceInvalid } from '../../../shared/errors.js';
import { kindByName } from '../../../shared/resources/kinds.js';
import { rateLimitProblems, readRateLimit } from '../../../shared/policy/http/rate-limit.js';

const gw = 'gateway.networking.k8s.io';
const good = { targetRefs: [{ group: '', kind: 'Service', name: 'echo' }], tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillInterval: '60s' }, perSource: false };
const withBucket = (tokenBucket: unknown) => ({ ...good, tokenBucket });
const fields = (spec: unknown, ns = 'shop') => rateLimitProblems(spec, ns, 'istio-system').map((p) => p.field);
const limit = (spec: unknown, name = 'echo-budget', namespace = 'shop') => ({ apiVersion: 'ambit.dev/v1alpha1', kind: 'LocalRateLimit', metadata: { name, namespace }, spec });

test("a LocalRateLimit on a Service reads into Envoy's token bucket, tokensPerFill defaulting to 1 as Envoy's does", () => {
  assert.equal(fields(good), []);
  const r = readRateLimit({ kind: 'LocalRateLimit', name: 'echo-budget', namespace: 'shop', spec: withBucket({ maxTokens: 3, fillInterval: '1m30s' }) }, 'istio-system');
  assert.equal(r.problems, []);
  assert.equal(r.limit, { policy: 'shop/echo-budget', attachment: { gateways: [], services: ['shop/echo'], everyWaypoint: false, routes: [] }, bucket: { maxTokens: 3, tokensPerFill: 1, fillIntervalMs: 90_000 }, perSource: false });
  assert.is(kindByName('localratelimits')?.kind, 'LocalRateLimit');
});

test('a Gateway, an HTTPRoute and a GRPCRoute are targets; from the root namespace the waypoint GatewayClass is too', () => {
  const refs = [{ group: gw, kind: 'Gateway', name: 'waypoint' }, { group: gw, kind: 'HTTPRoute', name: 'echo' }, { group: gw, kind: 'GRPCRoute', name: 'rpc' }];
  const r = readRateLimit({ kind: 'LocalRateLimit', name: 'l', namespace: 'shop', spec: { ...good, targetRefs: refs } }, 'istio-system');
  assert.equal(r.limit?.attachment, { gateways: ['shop/waypoint'], services: [], everyWaypoint: false, routes: ['shop/echo', 'shop/rpc'] });
  assert.equal(fields({ ...good, targetRefs: [{ group: gw, kind: 'GatewayClass', name: 'istio-waypoint' }] }, 'istio-system'), []);
  assert.equal(fields({ ...good, targetRefs: [{ group: gw, kind: 'GatewayClass', name: 'istio-waypoint' }] }, 'shop'), ['spec.targetRefs[0]']);
});

test("a fill interval under Envoy's 50 ms floor, or not a duration, is refused by field", () => {
  assert.equal(fields(withBucket({ maxTokens: 5, fillInterval: '49ms' })), ['spec.tokenBucket.fillInterval']);
  assert.match(rateLimitProblems(withBucket({ maxTokens: 5, fillInterval: '10ms' }), 'shop', 'istio-system')[0]!.message, /50ms or more/);
  assert.equal(fields(withBucket({ maxTokens: 5, fillInterval: '50ms' })), []);
  assert.equal(fields(withBucket({ maxTokens: 5, fillInterval: 'one minute' })), ['spec.tokenBucket.fillInterval']);
  assert.equal(fields(withBucket({ maxTokens: 5 })), ['spec.tokenBucket.fillInterval']);
});

test('tokensPerFill above maxTokens, and token counts that are not whole and positive, are refused', () => {
  assert.equal(fields(withBucket({ maxTokens: 5, tokensPerFill: 6, fillInterval: '1s' })), ['spec.tokenBucket.tokensPerFill']);
  assert.equal(fields(withBucket({ maxTokens: 0, fillInterval: '1s' })), ['spec.tokenBucket.maxTokens']);
  assert.equal(fields(withBucket({ maxTokens: 2.5, tokensPerFill: -1, fillInterval: '1s' })), ['spec.tokenBucket.maxTokens', 'spec.tokenBucket.tokensPerFill']);
  assert.equal(fields({ ...good, perSource: 'yes' }), ['spec.perSource']);
});

test('missing targetRefs (or an empty list) and a missing tokenBucket are refused', () => {
  const { targetRefs: _, ...untargeted } = good;
  assert.equal(fields(untargeted), ['spec.targetRefs']);
  assert.equal(fields({ ...good, targetRefs: [] }), ['spec.targetRefs']);
  assert.equal(fields({ targetRefs: good.targetRefs }), ['spec.tokenBucket']);
  assert.equal(fields(undefined), ['spec']);
});

test('kinds a waypoint does not limit by, a route of another group, and another namespace are refused by ref', () => {
  const refs = [
    { group: '', kind: 'Pod', name: 'echo-1' },
    { group: 'example.com', kind: 'HTTPRoute', name: 'echo' },
    { group: '', kind: 'Service', name: 'echo', namespace: 'other' },
    { group: '', kind: 'Service', name: 'echo' },
  ];
  assert.equal(fields({ ...good, targetRefs: refs }), ['spec.targetRefs[0]', 'spec.targetRefs[1]', 'spec.targetRefs[2].namespace']);
  // At a waypoint the good ref stays in force; the others attach to nothing.
  const r = readRateLimit({ kind: 'LocalRateLimit', name: 'l', namespace: 'shop', spec: { ...good, targetRefs: refs } }, 'istio-system');
  assert.equal(r.limit?.attachment.services, ['shop/echo']);
});

let dir = '';
let ctx: Parameters<typeof applyResources>[0];
const ns = (name: string) => ({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } });

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-ratelimit-'));
  ctx = { store: new Store(dir), allocator: new ClusterIPAllocator(parseCidr('10.96.0.0/16')), rootNamespace: 'mesh-root' };
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

test('ambit apply stores a good LocalRateLimit, refuses a bad one naming the field, and stores nothing of its batch', () => {
  applyResources(ctx, [ns('shop'), limit(good)]);
  assert.ok(ctx.store.get('LocalRateLimit', 'shop', 'echo-budget'));
  const revision = ctx.store.currentRevision;
  try {
    applyResources(ctx, [ns('other'), limit(withBucket({ maxTokens: 5, fillInterval: '20ms' }), 'too-fast', 'other')]);
    assert.unreachable('should refuse');
  } catch (err) {
    assert.instance(err, ResourceInvalid);
    const p = (err as ResourceInvalid).problems;
    assert.equal(p.map((x) => [x.index, x.resource, x.field]), [[1, 'LocalRateLimit other/too-fast', 'spec.tokenBucket.fillInterval']]);
    assert.match((err as ResourceInvalid).message, /LocalRateLimit other\/too-fast: spec.tokenBucket.fillInterval is 20ms/);
  }
  assert.is(ctx.store.currentRevision, revision);
  assert.not.ok(ctx.store.get('Namespace', '', 'other'));
});

test("ambit apply refuses a misspelt field by schema and reads the GatewayClass target against the controller's root namespace", () => {
  assert.throws(() => applyResources(ctx, [ns('shop'), limit(withBucket({ maxTokens: 5, fillInterval: '1s', burst: 3 }))]), /spec.tokenBucket.burst is not a known field/);
  const everyWaypoint = { ...good, targetRefs: [{ group: gw, kind: 'GatewayClass', name: 'istio-waypoint' }] };
  assert.throws(() => applyResources(ctx, [ns('istio-system'), limit(everyWaypoint, 'mesh', 'istio-system')]), /spec.targetRefs\[0\] a GatewayClass is a target only for a policy in the root namespace \(mesh-root\)/);
  assert.equal(applyResources(ctx, [ns('mesh-root'), limit(everyWaypoint, 'mesh', 'mesh-root')]).results.map((r) => r.action), ['created', 'created']);
});

test.run();
