// The status subresource of the mesh's kinds, which the mesh controller writes as a client: PUT and
// merge or JSON patch change the status and nothing else, a stale resourceVersion is 409, other
// patch types 415, and discovery lists the subresource as a CRD's would.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ns, startApi, type TestApi } from './helpers.js';

let t: TestApi;
test.before.each(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
  await t.call('POST', '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies', {
    body: { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bad'] } }] }] } },
  });
});
test.after.each(() => t.close());

const path = '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies/deny';
const condition = { type: 'WaypointAccepted', status: 'False', reason: 'NotApplicable', message: 'selector policy' };

test('PUT of status changes the status only: a spec in the body is ignored', async () => {
  const current = (await t.call('GET', path)).json;
  const r = await t.call('PUT', `${path}/status`, { body: { ...current, spec: { action: 'ALLOW' }, status: { conditions: [condition] } } });
  assert.is(r.status, 200, r.text);
  const now = (await t.call('GET', path)).json;
  assert.equal(now.status, { conditions: [condition] });
  assert.is(now.spec.action, 'DENY');
  assert.is(now.metadata.generation, current.metadata.generation, 'a status write is not a new generation');
  // The same resourceVersion again is stale now.
  const stale = await t.call('PUT', `${path}/status`, { body: { ...current, status: {} } });
  assert.is(stale.status, 409);
  assert.equal(t.store.get('AuthorizationPolicy', 'shop', 'deny')!.status, { conditions: [condition] });
});

test('a merge patch of status needs no resourceVersion; other patch types are 415', async () => {
  const r = await t.call('PATCH', `${path}/status`, { body: { status: { conditions: [condition] }, spec: { action: 'AUDIT' } }, contentType: 'application/merge-patch+json' });
  assert.is(r.status, 200, r.text);
  assert.equal(r.json.status.conditions, [condition]);
  assert.is(r.json.spec.action, 'DENY');
  const ssa = await t.call('PATCH', `${path}/status?fieldManager=x`, { raw: 'status: {}', contentType: 'application/apply-patch+yaml' });
  assert.is(ssa.status, 415);
  // Built-in kinds' status stays the local cluster's to write.
  assert.is((await t.call('PUT', '/api/v1/namespaces/shop/status', { body: ns('shop') })).status, 405);
});

test('discovery lists the status subresource of the mesh kinds', async () => {
  const list = (await t.call('GET', '/apis/security.istio.io/v1')).json;
  assert.ok(list.resources.some((r: { name: string; verbs: string[] }) => r.name === 'authorizationpolicies/status' && r.verbs.includes('patch')), JSON.stringify(list.resources.map((r: { name: string }) => r.name)));
});

test.run();
