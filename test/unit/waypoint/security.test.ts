// The waypoint's security in Envoy's order, as the forwarder calls it per request: the path
// normalized in place, the JWT checked and stripped (claims copied to headers), the policies decided
// with what the JWT said, and the answers a refused client gets; then the route's rate limit.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import { WaypointSecurity, type Refusal } from '../../../waypoint/security.js';
import { WaypointState } from '../../../waypoint/state.js';
import type { DownstreamRequest } from '../../../waypoint/proxy/forward.js';
import type { TunnelContext } from '../../../waypoint/proxy/ingress.js';
import type { PolicyEntry, ServiceEntry, TrafficEntry } from '../../../shared/protocol/config.js';

const issuer = 'https://issuer.shop.test';
const { publicKey, privateKey } = await generateKeyPair('ES256');
const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' }] });
const token = (claims: Record<string, unknown> = {}) => new SignJWT({ groups: ['dev'], aud: 'shop', ...claims }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer(issuer).setSubject('alice').setExpirationTime('1h').sign(privateKey);

const web: ServiceEntry = { name: 'web', namespace: 'shop', clusterIP: '10.96.0.20', ports: [{ port: 80, targetPort: 8080 }], endpoints: [] };
const api: ServiceEntry = { ...web, name: 'api', clusterIP: '10.96.0.21' };
const toWeb = { targetRefs: [{ group: '', kind: 'Service', name: 'web' }] };
const ctx = (service = web): TunnelContext => ({ peer: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'client' }, peerUri: 'spiffe://cluster.local/ns/shop/sa/client', sourceIp: '10.244.1.5', service, port: 80 });
const request = (url: string, headers: Record<string, string> = {}, method = 'GET') => ({ url, method, headers: { host: 'web.shop', ...headers } }) as unknown as DownstreamRequest;

function security(policies: PolicyEntry[], traffic: TrafficEntry[] = []): { s: WaypointSecurity; refusals: string[] } {
  const state = new WaypointState();
  state.apply({ type: 'snapshot', version: 1, trustDomain: 'cluster.local', services: [web, api], workloads: [], nodes: [], namespaces: [], trustBundles: [], traffic, policies });
  const refusals: string[] = [];
  const s = new WaypointSecurity({
    waypoint: 'shop/waypoint',
    rootNamespace: 'istio-system',
    state,
    log: pino({ level: 'silent' }),
    fetchJwks: () => Promise.reject(new Error('no fetch in this test')),
    onRefusal: (kind, r) => refusals.push(`${kind} ${r.status} ${r.policy ?? ''}`),
  });
  return { s, refusals };
}

const jwtRule = (extra: Record<string, unknown> = {}): PolicyEntry => ({ kind: 'RequestAuthentication', name: 'jwt', namespace: 'shop', spec: { ...toWeb, jwtRules: [{ issuer, jwks, audiences: ['shop'], ...extra }] } });
const requireJwt: PolicyEntry = { kind: 'AuthorizationPolicy', name: 'require-jwt', namespace: 'shop', spec: { ...toWeb, action: 'ALLOW', rules: [{ from: [{ source: { requestPrincipals: [`${issuer}/*`] } }], when: [{ key: 'request.auth.claims[groups]', values: ['dev'] }] }] } };
const denyAdmin: PolicyEntry = { kind: 'AuthorizationPolicy', name: 'deny-admin', namespace: 'shop', spec: { ...toWeb, action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin/*'] } }] }] } };

test('the path is normalized in place, so the DENY and the backend see the same path', async () => {
  const { s, refusals } = security([denyAdmin]);
  const dotted = request('/public/../admin/users?x=1');
  assert.equal(await s.admit(dotted, ctx()), { status: 403, flag: '-', message: 'RBAC: access denied', policy: 'shop/deny-admin' });
  const fine = request('/a/./b/%7Euser?x=1');
  assert.is(await s.admit(fine, ctx()), undefined);
  assert.is(fine.url, '/a/b/~user?x=1', 'the backend gets the normalized path, the query as sent');
  assert.equal(refusals, ['authz 403 shop/deny-admin']);
  s.close();
});

test('a NUL in the path is 400, before any policy', async () => {
  const { s } = security([]);
  const r = (await s.admit(request('/a%00b'), ctx())) as Refusal;
  assert.is(r.status, 400);
  s.close();
});

test('a valid token is stripped before the backend and its claim copied to a header a client cannot forge', async () => {
  const { s } = security([jwtRule({ outputClaimToHeaders: [{ header: 'x-jwt-sub', claim: 'sub' }] }), requireJwt]);
  const req = request('/orders', { authorization: `Bearer ${await token()}`, 'x-jwt-sub': 'mallory' });
  assert.is(await s.admit(req, ctx()), undefined);
  assert.is(req.headers.authorization, undefined);
  assert.is(req.headers['x-jwt-sub'], 'alice');
  const bare = request('/orders', { 'x-jwt-sub': 'mallory' });
  assert.is(((await s.admit(bare, ctx())) as Refusal).status, 403, 'no token: the ALLOW on request principals refuses');
  assert.is(bare.headers['x-jwt-sub'], undefined, 'the forged header is removed even without a token');
  s.close();
});

test('a bad token is 401 with a Bearer challenge; a wrong audience or a missing claim is 403', async () => {
  const { s, refusals } = security([jwtRule(), requireJwt]);
  const good = await token();
  const forged = good.slice(0, -4) + (good.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const bad = (await s.admit(request('/orders', { authorization: `Bearer ${forged}` }), ctx())) as Refusal;
  assert.is(bad.status, 401);
  assert.match(String(bad.headers?.['www-authenticate']), /^Bearer realm="http:\/\/web\.shop\/orders", error="invalid_token"$/);
  assert.is(((await s.admit(request('/', { authorization: `Bearer ${await token({ aud: 'billing' })}` }), ctx())) as Refusal).status, 403);
  assert.is(((await s.admit(request('/', { authorization: `Bearer ${await token({ groups: ['ops'] })}` }), ctx())) as Refusal).status, 403);
  assert.equal(refusals.map((r) => r.split(' ').slice(0, 2).join(' ')), ['authn 401', 'authn 403', 'authz 403']);
  s.close();
});

test('policies on one Service leave another alone, and no JWT rule means no promise', async () => {
  const { s } = security([jwtRule(), requireJwt, denyAdmin]);
  const r = s.admit(request('/admin/x'), ctx(api));
  assert.is(r, undefined, 'decided synchronously: nothing applies to shop/api');
  s.close();
});

test('a LocalRateLimit on the Service: x-ratelimit headers on every answer, then 429 RL with retry-after', () => {
  const limit: TrafficEntry = { kind: 'LocalRateLimit', name: 'budget', namespace: 'shop', spec: { ...toWeb, tokenBucket: { maxTokens: 2, tokensPerFill: 2, fillInterval: '60s' } } };
  const { s, refusals } = security([], [limit]);
  const first = s.limit(web, undefined, ctx())!;
  assert.is(first.refusal, undefined);
  assert.is(first.headers['x-ratelimit-limit'], '2');
  assert.is(first.headers['x-ratelimit-remaining'], '1');
  assert.is(s.limit(web, undefined, ctx())!.refusal, undefined);
  const third = s.limit(web, undefined, ctx())!;
  assert.is(third.refusal?.status, 429);
  assert.is(third.refusal?.flag, 'RL');
  assert.ok(Number(third.headers['retry-after']) >= 1);
  assert.is(s.limit(api, undefined, ctx(api)), undefined, 'another Service has no budget');
  assert.equal(refusals, ['ratelimit 429 shop/budget']);
  s.close();
});

test('explain walks the same decision: the JWT rule that validated and the policy that refused', async () => {
  const { s } = security([jwtRule(), requireJwt, denyAdmin]);
  const q = { type: 'explain' as const, id: 1, service: 'shop/web', port: 80, sourceIp: '10.244.1.5', sourcePrincipal: 'cluster.local/ns/shop/sa/client', method: 'GET', path: '/x/../admin/a', headers: { authorization: `Bearer ${await token()}` } };
  const denied = await s.explain(q, (_ns, name) => (name === 'web' ? web : undefined));
  assert.is(denied.refused?.status, 403);
  const text = denied.steps.join('\n');
  assert.match(text, 'normalized to /admin/a');
  assert.match(text, `${issuer}/alice`);
  assert.match(text, 'shop/deny-admin');
  const allowed = await s.explain({ ...q, path: '/orders' }, () => web);
  assert.is(allowed.refused, undefined, allowed.steps.join('\n'));
  s.close();
});

test.run();
