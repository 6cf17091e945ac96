import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { authenticator, bearer, check, issuer, makeKey, oneRule, requestAuthentication, sign, toService } from './helpers.js';

const key = await makeKey('ES256');
const token = await sign(key, { sub: 'alice', email: 'a@example.com', org: { team: 'ops', size: 7 }, admin: true, roles: ['a', 'b'], ratio: 1.5 });

test('a custom header with a prefix: the token after the prefix is checked and the header removed', async () => {
  const a = oneRule(key, { fromHeaders: [{ name: 'X-Jwt-Assertion', prefix: 'Token ' }] });
  const r = await check(a, { 'x-jwt-assertion': `Token ${token}` });
  assert.is(r.kind, 'valid');
  if (r.kind === 'valid') assert.equal(r.removeHeaders, ['x-jwt-assertion']);
  assert.equal(await check(a, bearer(token)), { kind: 'none', removeHeaders: [] }, 'Authorization is not a location once fromHeaders is set');
});

test('a header without a prefix carries the whole value as the token', async () => {
  const a = oneRule(key, { fromHeaders: [{ name: 'x-token' }] });
  assert.is((await check(a, { 'x-token': token })).kind, 'valid');
});

test('the default access_token query parameter is read and removed from the URL sent upstream, other parameters kept', async () => {
  const r = await check(oneRule(key), {}, `/orders?page=2&access_token=${token}&sort=asc`);
  assert.is(r.kind, 'valid');
  if (r.kind === 'valid') assert.is(r.url, '/orders?page=2&sort=asc');
  const only = await check(oneRule(key), {}, `/orders?access_token=${token}`);
  if (only.kind === 'valid') assert.is(only.url, '/orders');
  else assert.unreachable(only.kind);
});

test('a named fromParams parameter replaces the default', async () => {
  const a = oneRule(key, { fromParams: ['jwt'] });
  assert.is((await check(a, {}, `/?jwt=${token}`)).kind, 'valid');
  assert.is((await check(a, {}, `/?access_token=${token}`)).kind, 'none');
});

test('a token in a cookie is read; the cookie is left as sent (Envoy does not strip cookies)', async () => {
  const a = oneRule(key, { fromCookies: ['session'] });
  const r = await check(a, { cookie: `theme=dark; session=${token}; lang=en` });
  assert.is(r.kind, 'valid');
  if (r.kind === 'valid') assert.not.ok(r.removeHeaders.includes('cookie'));
});

test('forwardOriginalToken keeps the Authorization header and the query parameter', async () => {
  const a = oneRule(key, { forwardOriginalToken: true });
  const r = await check(a, bearer(token), `/?access_token=${token}`);
  assert.is(r.kind, 'valid');
  if (r.kind === 'valid') {
    assert.equal(r.removeHeaders, []);
    assert.is(r.url, `/?access_token=${token}`);
  }
});

test('outputPayloadToHeader sends the payload segment as received (base64url), and strips a forged copy first', async () => {
  const a = oneRule(key, { outputPayloadToHeader: 'X-Jwt-Payload' });
  const r = await check(a, { ...bearer(token), 'x-jwt-payload': 'forged' });
  assert.is(r.kind, 'valid');
  if (r.kind !== 'valid') return;
  assert.ok(r.removeHeaders.includes('x-jwt-payload'));
  assert.equal(r.setHeaders, [['x-jwt-payload', token.split('.')[1]!]]);
  assert.is(JSON.parse(Buffer.from(r.setHeaders[0]![1], 'base64url').toString()).email, 'a@example.com');
});

test('output headers are stripped even from a request without a token, so a client cannot forge them', async () => {
  const a = oneRule(key, { outputPayloadToHeader: 'x-jwt-payload', outputClaimToHeaders: [{ header: 'x-email', claim: 'email' }] });
  assert.equal(await check(a, { 'x-email': 'root@example.com' }), { kind: 'none', removeHeaders: ['x-jwt-payload', 'x-email'] });
});

test('outputClaimToHeaders: strings as-is, nested claims by dot, numbers and booleans as text, lists not written', async () => {
  const claims = [
    { header: 'x-email', claim: 'email' },
    { header: 'x-team', claim: 'org.team' },
    { header: 'x-size', claim: 'org.size' },
    { header: 'x-admin', claim: 'admin' },
    { header: 'x-ratio', claim: 'ratio' },
    { header: 'x-roles', claim: 'roles' },
    { header: 'x-missing', claim: 'nope' },
  ];
  const r = await check(oneRule(key, { outputClaimToHeaders: claims }), bearer(token));
  assert.is(r.kind, 'valid');
  if (r.kind !== 'valid') return;
  assert.equal(r.setHeaders, [
    ['x-email', 'a@example.com'],
    ['x-team', 'ops'],
    ['x-size', '7'],
    ['x-admin', 'true'],
    ['x-ratio', '1.500000'],
  ]);
  for (const c of claims) assert.ok(r.removeHeaders.includes(c.header), c.header);
});

test('a token at a location only another issuer names is refused as of an unconfigured issuer', async () => {
  const a = authenticator([
    requestAuthentication('jwt', {
      ...toService(),
      jwtRules: [
        { issuer, jwks: key.jwks, fromHeaders: [{ name: 'x-ours' }] },
        { issuer: 'https://other.example.com', jwks: key.jwks, fromHeaders: [{ name: 'x-theirs' }] },
      ],
    }),
  ]);
  assert.is((await check(a, { 'x-ours': token })).kind, 'valid');
  assert.equal(await check(a, { 'x-theirs': token }), { kind: 'invalid', status: 401, reason: 'Jwt issuer is not configured' });
});

test.run();
