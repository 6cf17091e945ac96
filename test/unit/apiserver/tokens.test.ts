// ServiceAccount tokens through the real REST API and kubectl: `kubectl create token` gets a bound
// JWT with Kubernetes' claims, the API server accepts it as a bearer token while its
// ServiceAccount (and bound pod) live, for its audience, until it expires, and TokenReview says
// who a token is, as Kubernetes answers.

import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { commitPods, ns, pod, startApi, type TestApi } from './helpers.js';

let t: TestApi;
const issuer = 'https://kubernetes.default.svc.cluster.local';
const reviews = '/apis/authentication.k8s.io/v1/tokenreviews';

test.before.each(async () => {
  t = await startApi();
  assert.is((await t.call('POST', '/api/v1/namespaces', { body: ns('shop') })).status, 201);
  assert.is((await t.call('POST', '/api/v1/namespaces/shop/serviceaccounts', { body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'agent' } } })).status, 201);
});
test.after.each(async () => {
  await t.close();
});

async function createToken(...args: string[]): Promise<string> {
  const r = await t.kubectl('create', 'token', 'agent', '-n', 'shop', ...args);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.trim();
}

const review = (tok: string, audiences?: string[]) => t.call('POST', reviews, { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token: tok, ...(audiences ? { audiences } : {}) } } });

test('kubectl create token: an ES256 JWT with the claims of a bound ServiceAccount token, valid an hour, that the API accepts as a bearer token', async () => {
  const tok = await createToken();
  const header = decodeProtectedHeader(tok);
  assert.is(header.alg, 'ES256');
  assert.ok(header.kid);
  const c = decodeJwt(tok);
  const sa = t.store.get('ServiceAccount', 'shop', 'agent')!;
  assert.equal([c.iss, c.sub, c.aud], [issuer, 'system:serviceaccount:shop:agent', [issuer]]);
  assert.is(c.exp! - c.iat!, 3600);
  assert.is(c.nbf, c.iat);
  assert.ok(Math.abs(c.iat! - Date.now() / 1000) < 60);
  assert.type(c.jti, 'string');
  assert.equal(c['kubernetes.io'], { namespace: 'shop', serviceaccount: { name: 'agent', uid: sa.metadata.uid } });
  const asAgent = await t.call('GET', '/api/v1/namespaces/shop/serviceaccounts', { token: tok });
  assert.is(asAgent.status, 200, asAgent.text);
  const viaKubectl = await t.kubectl('--token', tok, 'get', 'sa', 'agent', '-n', 'shop', '-o', 'name');
  assert.is(viaKubectl.stdout.trim(), 'serviceaccount/agent', viaKubectl.stderr);
});

test('TokenReview says who a token is: the ServiceAccount\'s username, uid, groups and audiences; a bad token is an error, not an identity', async () => {
  const tok = await createToken();
  const r = await review(tok);
  assert.is(r.status, 201, r.text);
  assert.equal([r.json.kind, r.json.apiVersion, r.json.spec.token], ['TokenReview', 'authentication.k8s.io/v1', tok]);
  const sa = t.store.get('ServiceAccount', 'shop', 'agent')!;
  assert.is(r.json.status.authenticated, true);
  assert.equal(r.json.status.audiences, [issuer]);
  assert.equal(
    { ...r.json.status.user, extra: undefined },
    { username: 'system:serviceaccount:shop:agent', uid: sa.metadata.uid, groups: ['system:serviceaccounts', 'system:serviceaccounts:shop', 'system:authenticated'], extra: undefined },
  );
  assert.equal(r.json.status.user.extra['authentication.kubernetes.io/credential-id'], [`JTI=${decodeJwt(tok).jti}`]);

  const garbage = await review('not-a-token');
  assert.is(garbage.status, 201);
  assert.equal(garbage.json.status, { user: {}, error: 'invalid bearer token' });
  const admin = await review('test-admin-token');
  assert.equal([admin.json.status.authenticated, admin.json.status.user.username], [true, 'ambit-admin']);

  assert.is((await t.call('POST', reviews, { body: { spec: {} } })).status, 400);
  assert.is((await t.call('GET', reviews)).status, 405);
  assert.is((await t.call('POST', reviews, { token: null, body: { spec: { token: tok } } })).status, 401);
});

test('a token for another audience is refused as a bearer token (401) but reviewed as valid for that audience', async () => {
  const tok = await createToken('--audience', 'ambit-controller', '--duration', '20m');
  const c = decodeJwt(tok);
  assert.equal(c.aud, ['ambit-controller']);
  assert.is(c.exp! - c.iat!, 1200);
  const r = await t.call('GET', '/api/v1/namespaces', { token: tok });
  assert.is(r.status, 401);
  assert.is(r.json.reason, 'Unauthorized');
  const forController = await review(tok, ['ambit-controller', 'other']);
  assert.equal([forController.json.status.authenticated, forController.json.status.audiences], [true, ['ambit-controller']]);
  const forApi = await review(tok);
  assert.is(forApi.json.status.authenticated, undefined);
  assert.is(forApi.json.status.error, `[invalid bearer token, token audiences ["ambit-controller"] is invalid for the target audiences ["${issuer}"]]`);
});

test('the token of a deleted ServiceAccount is 401, and stays so when one of the same name is made again (another uid)', async () => {
  const tok = await createToken();
  assert.is((await t.kubectl('delete', 'sa', 'agent', '-n', 'shop')).code, 0);
  assert.is((await t.call('GET', '/api/v1/namespaces', { token: tok })).status, 401);
  assert.is((await review(tok)).json.status.error, '[invalid bearer token, serviceaccounts "agent" not found]');
  await t.call('POST', '/api/v1/namespaces/shop/serviceaccounts', { body: { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'agent' } } });
  assert.is((await t.call('GET', '/api/v1/namespaces', { token: tok })).status, 401);
  assert.match((await review(tok)).json.status.error, /service account UID \(.+\) does not match claim/);
});

test('an expired token, or one signed by another key, is 401', async () => {
  const sa = t.store.get('ServiceAccount', 'shop', 'agent')!;
  const now = Math.floor(Date.now() / 1000);
  const sign = (key: Parameters<SignJWT['sign']>[0], iat: number, exp: number) =>
    new SignJWT({ 'kubernetes.io': { namespace: 'shop', serviceaccount: { name: 'agent', uid: sa.metadata.uid } } })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(issuer)
      .setSubject('system:serviceaccount:shop:agent')
      .setAudience([issuer])
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(exp)
      .sign(key);
  // The cluster's own key, from its state directory: only the expiry is wrong.
  const clusterKey = createPrivateKey(readFileSync(join(t.dir, 'sa-signer.key')));
  const fresh = await sign(clusterKey, now, now + 600);
  assert.is((await t.call('GET', '/api/v1/namespaces', { token: fresh })).status, 200);
  const expired = await sign(clusterKey, now - 7200, now - 3600);
  assert.is((await t.call('GET', '/api/v1/namespaces', { token: expired })).status, 401);
  assert.is((await review(expired)).json.status.error, '[invalid bearer token, service account token has expired]');
  const forged = await sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, now, now + 600);
  assert.is((await t.call('GET', '/api/v1/namespaces', { token: forged })).status, 401);
});

test('a token bound to a pod names it and dies with it; kubectl create token refuses too short a duration and a missing ServiceAccount', async () => {
  const p = pod('web-1', 'web', 'node-1', '10.244.1.2');
  p.spec.serviceAccountName = 'agent';
  commitPods(t.store, [p]);
  const tok = await createToken('--bound-object-kind', 'Pod', '--bound-object-name', 'web-1');
  const podUid = t.store.get('Pod', 'shop', 'web-1')!.metadata.uid;
  assert.equal((decodeJwt(tok)['kubernetes.io'] as { pod: unknown }).pod, { name: 'web-1', uid: podUid });
  const r = await review(tok);
  assert.equal(r.json.status.user.extra['authentication.kubernetes.io/pod-name'], ['web-1']);
  // As Kubernetes 1.32 does, the token also says which node the pod runs on.
  assert.equal(r.json.status.user.extra['authentication.kubernetes.io/node-name'], ['node-1']);
  t.store.commit([], [{ kind: 'Pod', namespace: 'shop', name: 'web-1' }]);
  assert.is((await t.call('GET', '/api/v1/namespaces', { token: tok })).status, 401);

  const short = await t.kubectl('create', 'token', 'agent', '-n', 'shop', '--duration', '5m');
  assert.is.not(short.code, 0);
  assert.match(short.stderr, 'spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes');
  const missing = await t.kubectl('create', 'token', 'nobody', '-n', 'shop');
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, 'serviceaccounts "nobody" not found');
});

test('a token bound to a node (what a node agent authenticates with) names the node in TokenReview; a node that does not exist is 404', async () => {
  const tok = await createToken('--bound-object-kind', 'Node', '--bound-object-name', 'node-2', '--audience', 'ambit-controller');
  const node = (await t.call('GET', '/api/v1/nodes/node-2')).json;
  assert.equal((decodeJwt(tok)['kubernetes.io'] as { node: unknown }).node, { name: 'node-2', uid: node.metadata.uid });
  const r = await review(tok, ['ambit-controller']);
  assert.is(r.json.status.authenticated, true, r.text);
  assert.is(r.json.status.user.username, 'system:serviceaccount:shop:agent');
  assert.equal(r.json.status.user.extra['authentication.kubernetes.io/node-name'], ['node-2']);
  assert.equal(r.json.status.user.extra['authentication.kubernetes.io/node-uid'], [node.metadata.uid]);
  const missing = await t.kubectl('create', 'token', 'agent', '-n', 'shop', '--bound-object-kind', 'Node', '--bound-object-name', 'node-9');
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, 'nodes "node-9" not found');
});

test('discovery lists tokenreviews (create only) and the serviceaccounts/token subresource', async () => {
  const auth = await t.call('GET', '/apis/authentication.k8s.io/v1');
  assert.equal(auth.json.resources.map((r: { name: string; verbs: string[] }) => [r.name, r.verbs]), [['tokenreviews', ['create']]]);
  const core = await t.call('GET', '/api/v1');
  const token = core.json.resources.find((r: { name: string }) => r.name === 'serviceaccounts/token');
  assert.equal([token.kind, token.group, token.version, token.verbs], ['TokenRequest', 'authentication.k8s.io', 'v1', ['create']]);
});

test.run();
