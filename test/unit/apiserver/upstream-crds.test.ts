// The Istio and Gateway API kinds on the local API server are served by their upstream CRDs
// (manifests/crds/), so what a real cluster with those CRDs refuses is refused here, naming the
// field: structural rules (enums, maxItems, unknown fields), list types, and the CEL rules; and
// what it defaults is defaulted.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { meshCrds } from '../../../shared/kube/crds.js';
import { kinds } from '../../../shared/resources/kinds.js';
import { skippedRules } from '../../../cluster/apiserver/crd-rules.js';
import { ns, startApi, type TestApi } from './helpers.js';

const routes = '/apis/gateway.networking.k8s.io/v1/namespaces/shop/httproutes';
const gateways = '/apis/gateway.networking.k8s.io/v1/namespaces/shop/gateways';
const policies = (version: string) => `/apis/security.istio.io/${version}/namespaces/shop/authorizationpolicies`;

let t: TestApi;
test.before.each(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
});
test.after.each(() => t.close());

const route = (name: string, spec: Record<string, unknown>) => ({ apiVersion: 'gateway.networking.k8s.io/v1', kind: 'HTTPRoute', metadata: { name, namespace: 'shop' }, spec });
const causes = (r: { json: { details?: { causes?: { field: string; message: string }[] } } }) => r.json.details?.causes ?? [];

test("the vendored CRDs are upstream's, serve the versions ambit uses, and every CEL rule in them is evaluated", () => {
  const crds = meshCrds();
  const byName = new Map(crds.map((c) => [c.metadata.name, c]));
  assert.is(byName.get('httproutes.gateway.networking.k8s.io')!.metadata.annotations!['gateway.networking.k8s.io/bundle-version'], 'v1.6.1');
  assert.is(byName.get('authorizationpolicies.security.istio.io')!.metadata.labels!.app, 'istio-pilot');
  assert.is(byName.get('trustbundles.ambit.dev')!.metadata.labels!['ambit.dev/schema'], 'ambit');
  for (const k of kinds.filter((x) => x.crd)) {
    const [group, version] = k.apiVersion.split('/');
    const crd = crds.find((c) => c.spec.group === group && c.spec.names.kind === k.kind);
    assert.ok(crd?.spec.versions.some((v) => v.name === version && v.served), `${k.apiVersion} ${k.kind}`);
  }
  assert.equal(skippedRules(crds), []);
});

test('an HTTPRoute that breaks an upstream structural rule is refused with the field named, and nothing stored', async () => {
  const badEnum = await t.call('POST', routes, { body: route('bad-enum', { rules: [{ matches: [{ path: { type: 'Prefix', value: '/' } }] }] }) });
  assert.is(badEnum.status, 422, badEnum.text);
  assert.equal(causes(badEnum).map((c) => c.field), ['spec.rules[0].matches[0].path.type']);
  assert.match(causes(badEnum)[0]!.message, /"Exact", "PathPrefix", "RegularExpression"/);

  const matches = Array.from({ length: 65 }, (_, i) => ({ path: { type: 'PathPrefix', value: `/p${i}` } }));
  const tooMany = await t.call('POST', routes, { body: route('too-many', { rules: [{ matches }] }) });
  assert.is(tooMany.status, 422, tooMany.text);
  assert.equal(causes(tooMany).map((c) => c.field), ['spec.rules[0].matches']);
  assert.match(causes(tooMany)[0]!.message, /64/);
  assert.equal(t.store.list('HTTPRoute'), []);
});

test('the Gateway API CEL rules refuse what upstream refuses: over 128 matches in all, a relative path, a Service backend without a port', async () => {
  const rules = Array.from({ length: 15 }, (_, r) => ({ matches: Array.from({ length: 9 }, (_, i) => ({ path: { type: 'PathPrefix', value: `/r${r}/${i}` } })) }));
  const total = await t.call('POST', routes, { body: route('total', { rules }) });
  assert.is(total.status, 422, total.text);
  assert.equal(causes(total).map((c) => c.field), ['spec.rules']);
  assert.match(causes(total)[0]!.message, /total number of matches across all rules in a route must be less than 128/);

  const relative = await t.call('POST', routes, { body: route('relative', { rules: [{ matches: [{ path: { type: 'PathPrefix', value: 'api' } }] }] }) });
  assert.is(relative.status, 422, relative.text);
  assert.equal(causes(relative).map((c) => c.field), ['spec.rules[0].matches[0].path']);
  assert.match(causes(relative)[0]!.message, /value must be an absolute path and start with '\/'/);

  const portless = await t.call('POST', routes, { body: route('portless', { rules: [{ backendRefs: [{ name: 'web' }] }] }) });
  assert.is(portless.status, 422, portless.text);
  assert.equal(causes(portless).map((c) => c.field), ['spec.rules[0].backendRefs[0]']);
  assert.match(causes(portless)[0]!.message, /Must have port for Service reference/);
  assert.equal(t.store.list('HTTPRoute'), []);
});

test("an HTTPRoute gets upstream's defaults: parentRef group and kind, a PathPrefix / match, backend weight 1", async () => {
  const r = await t.call('POST', routes, { body: route('defaults', { parentRefs: [{ name: 'web', group: '', kind: 'Service', port: 80 }, { name: 'waypoint' }], rules: [{ backendRefs: [{ name: 'web', port: 80 }] }] }) });
  assert.is(r.status, 201, r.text);
  const spec = t.store.get('HTTPRoute', 'shop', 'defaults')!.spec as { parentRefs: unknown[]; rules: { matches: unknown[]; backendRefs: unknown[] }[] };
  assert.equal(spec.parentRefs[1], { name: 'waypoint', group: 'gateway.networking.k8s.io', kind: 'Gateway' });
  assert.equal(spec.rules[0]!.matches, [{ path: { type: 'PathPrefix', value: '/' } }]);
  assert.equal(spec.rules[0]!.backendRefs[0], { name: 'web', port: 80, group: '', kind: 'Service', weight: 1 });
});

test('a Gateway with two listeners of one name is refused: a duplicate in a map list, and upstream\'s CEL rule', async () => {
  const listener = { name: 'mesh', port: 15008, protocol: 'HBONE' };
  const r = await t.call('POST', gateways, { body: { apiVersion: 'gateway.networking.k8s.io/v1', kind: 'Gateway', metadata: { name: 'waypoint', namespace: 'shop' }, spec: { gatewayClassName: 'ambit-waypoint', listeners: [listener, { ...listener, port: 15009 }] } } });
  assert.is(r.status, 422, r.text);
  assert.ok(causes(r).some((c) => c.field === 'spec.listeners[1]' && /Duplicate value: \{"name":"mesh"\}/.test(c.message)), r.text);
  assert.ok(causes(r).some((c) => c.field === 'spec.listeners' && /Listener name must be unique within the Gateway/.test(c.message)), r.text);
});

test("an AuthorizationPolicy with a field Istio's schema lacks, or both a selector and a targetRef, is refused naming the field", async () => {
  const body = (spec: Record<string, unknown>) => ({ apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'p', namespace: 'shop' }, spec });
  const unknown = await t.call('POST', policies('v1'), { body: body({ action: 'DENY', rules: [{ from: [{ source: { principalz: ['x'] } }] }] }) });
  assert.is(unknown.status, 422, unknown.text);
  assert.equal(causes(unknown).map((c) => c.field), ['spec.rules[0].from[0].source.principalz']);
  const both = await t.call('POST', policies('v1'), { body: body({ selector: { matchLabels: { app: 'web' } }, targetRef: { kind: 'Service', name: 'web' } }) });
  assert.is(both.status, 422, both.text);
  assert.equal(causes(both).map((c) => c.field), ['spec']);
  assert.match(causes(both)[0]!.message, /only one of targetRefs or selector can be set/);
  assert.equal(t.store.list('AuthorizationPolicy'), []);
});

test("a RequestAuthentication's jwksUri goes through Kubernetes' url(): an ftp:// or unparsable URI is refused, https:// stored", async () => {
  const path = '/apis/security.istio.io/v1/namespaces/shop/requestauthentications';
  const body = (name: string, jwksUri: string) => ({ apiVersion: 'security.istio.io/v1', kind: 'RequestAuthentication', metadata: { name, namespace: 'shop' }, spec: { jwtRules: [{ issuer: 'https://issuer.example', jwksUri }] } });
  const ftp = await t.call('POST', path, { body: body('ftp', 'ftp://issuer.example/keys') });
  assert.is(ftp.status, 422, ftp.text);
  assert.equal(causes(ftp), [{ reason: 'FieldValueInvalid', field: 'spec.jwtRules[0].jwksUri', message: 'Invalid value: "string": url must have scheme http:// or https://' }]);
  const garbage = await t.call('POST', path, { body: body('garbage', 'not a url') });
  assert.is(garbage.status, 422, garbage.text);
  assert.match(causes(garbage)[0]!.message, /URL parse error/);
  assert.is((await t.call('POST', path, { body: body('ok', 'https://issuer.example/keys') })).status, 201);
});

test("an AuthorizationPolicy written as v1beta1 is stored in Istio's storage version and read as v1", async () => {
  const body = { apiVersion: 'security.istio.io/v1beta1', kind: 'AuthorizationPolicy', metadata: { name: 'old', namespace: 'shop' }, spec: { action: 'ALLOW', rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] } };
  const r = await t.call('POST', policies('v1beta1'), { body });
  assert.is(r.status, 201, r.text);
  assert.is(r.json.apiVersion, 'security.istio.io/v1beta1');
  assert.is(t.store.get('AuthorizationPolicy', 'shop', 'old')!.apiVersion, 'security.istio.io/v1beta1');
  const v1 = await t.call('GET', `${policies('v1')}/old`);
  assert.is(v1.status, 200);
  assert.is(v1.json.apiVersion, 'security.istio.io/v1');
  assert.equal(v1.json.spec, body.spec);
});

test.run();
