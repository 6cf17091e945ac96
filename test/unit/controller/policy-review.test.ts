// What apply says of security policies: who enforces each (node proxies for selector policies,
// waypoints for targetRefs ones), what a node proxy cannot enforce (warnings), and what nobody can
// honour (refused with the field named, nothing stored).

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

let dir = '';
let ctx: Parameters<typeof applyResources>[0];
const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
const policy = (kind: string, name: string, spec: Record<string, unknown>) => ({ apiVersion: 'security.istio.io/v1', kind, metadata: { name, namespace: 'shop' }, spec });
const denyAdmin = { action: 'DENY', rules: [{ to: [{ operation: { methods: ['GET'], paths: ['/admin/*'] } }] }] };
const toService = { targetRefs: [{ group: '', kind: 'Service', name: 'web' }] };

test.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-review-'));
  ctx = { store: new Store(dir), allocator: new ClusterIPAllocator(parseCidr('10.96.0.0/16')), rootNamespace: 'istio-system' };
});
test.after.each(() => rmSync(dir, { recursive: true, force: true }));

const refused = (batch: unknown[]): string[] => {
  try {
    applyResources(ctx, batch);
  } catch (err) {
    assert.instance(err, ResourceInvalid);
    return (err as ResourceInvalid).problems.map((p) => `${p.field}: ${p.message}`);
  }
  assert.unreachable('the batch should be refused');
  return [];
};

test('an HTTP DENY with a selector is stored with warnings that the node proxy cannot enforce methods and paths', () => {
  const r = applyResources(ctx, [ns, policy('AuthorizationPolicy', 'deny-admin', { selector: { matchLabels: { app: 'web' } }, ...denyAdmin })]);
  const w = r.results.find((x) => x.resource.includes('deny-admin'))!.warnings ?? [];
  assert.ok(w.some((m) => /paths|methods/.test(m)), `warns about HTTP fields: ${w.join('; ')}`);
  assert.is((ctx.store.get('AuthorizationPolicy', 'shop', 'deny-admin')!.status as { enforcedBy: string }).enforcedBy, 'node proxies (L4)');
});

test('the same DENY attached with targetRefs is the waypoint\'s: no warning, and its status says so', () => {
  const r = applyResources(ctx, [ns, policy('AuthorizationPolicy', 'deny-admin', { ...toService, ...denyAdmin })]);
  assert.is(r.results.find((x) => x.resource.includes('deny-admin'))!.warnings, undefined);
  assert.is((ctx.store.get('AuthorizationPolicy', 'shop', 'deny-admin')!.status as { enforcedBy: string }).enforcedBy, 'waypoints (L7)');
});

test('a CUSTOM policy for a waypoint is refused naming spec.action, and nothing is stored', () => {
  const problems = refused([ns, policy('AuthorizationPolicy', 'ext', { ...toService, action: 'CUSTOM', provider: { name: 'x' }, rules: [{}] })]);
  assert.ok(problems.some((p) => p.startsWith('spec.action')), problems.join('; '));
  assert.equal(ctx.store.list(), []);
});

test('a targetRef to another namespace is refused naming the field', () => {
  const problems = refused([ns, policy('AuthorizationPolicy', 'far', { targetRefs: [{ group: '', kind: 'Service', name: 'web', namespace: 'other' }], ...denyAdmin })]);
  assert.ok(problems.some((p) => p.startsWith('spec.targetRefs[0].namespace')), problems.join('; '));
});

test('a RequestAuthentication with a selector warns that no JWT is checked; with targetRefs it is the waypoint\'s', () => {
  const rules = { jwtRules: [{ issuer: 'https://issuer.test', jwksUri: 'http://issuer.shop.svc.cluster.local:8000/jwks.json' }] };
  const r = applyResources(ctx, [ns, policy('RequestAuthentication', 'by-label', { selector: { matchLabels: { app: 'web' } }, ...rules }), policy('RequestAuthentication', 'by-ref', { ...toService, ...rules })]);
  assert.match((r.results.find((x) => x.resource.includes('by-label'))!.warnings ?? []).join(), 'no JWT is checked');
  assert.is(r.results.find((x) => x.resource.includes('by-ref'))!.warnings, undefined);
  assert.is((ctx.store.get('RequestAuthentication', 'shop', 'by-ref')!.status as { enforcedBy: string }).enforcedBy, 'waypoints (L7)');
});

test('a RequestAuthentication without an issuer is refused naming the rule', () => {
  const problems = refused([ns, policy('RequestAuthentication', 'bad', { ...toService, jwtRules: [{ jwksUri: 'http://issuer.shop.svc.cluster.local/jwks.json' }] })]);
  assert.ok(problems.some((p) => p.startsWith('spec.jwtRules[0]')), problems.join('; '));
});

test('a RequestAuthentication whose keys are outside the mesh is refused naming jwksUri', () => {
  const problems = refused([ns, policy('RequestAuthentication', 'outside', { ...toService, jwtRules: [{ issuer: 'https://accounts.example.com', jwksUri: 'https://accounts.example.com/certs' }] })]);
  assert.ok(problems.some((p) => p.startsWith('spec.jwtRules[0].jwksUri')), problems.join('; '));
});

test.run();
