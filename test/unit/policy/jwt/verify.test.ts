import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SignJWT } from 'jose';
import { bearer, check, issuer, makeKey, nowS, oneRule, sign, authenticator, requestAuthentication, toService } from './helpers.js';

const rsa = await makeKey('RS256');
const rule = 'shop/jwt jwtRules[0]';

test('a token signed by the rule key, within its lifetime, is valid and names principal iss/sub', async () => {
  const r = await check(oneRule(rsa), bearer(await sign(rsa, { aud: 'web', azp: 'spa', group: 'ops' })));
  assert.is(r.kind, 'valid');
  if (r.kind !== 'valid') return;
  assert.equal(r.auth.principal, `${issuer}/alice`);
  assert.equal(r.auth.audiences, ['web']);
  assert.is(r.auth.presenter, 'spa');
  assert.is(r.auth.claims.group, 'ops');
  assert.is(r.rule, rule);
});

test('ES256, PS256 and EdDSA keys made here verify too', async () => {
  for (const alg of ['ES256', 'PS256', 'EdDSA']) {
    const key = await makeKey(alg);
    assert.is((await check(oneRule(key), bearer(await sign(key)))).kind, 'valid', alg);
  }
});

test('an expired token is 401 "Jwt is expired"; within the 60 s skew it is still valid', async () => {
  const a = oneRule(rsa);
  assert.equal(await check(a, bearer(await sign(rsa, { exp: nowS - 61 }))), { kind: 'invalid', status: 401, reason: 'Jwt is expired', rule });
  assert.is((await check(a, bearer(await sign(rsa, { exp: nowS - 30 })))).kind, 'valid');
});

test('a token not yet valid (nbf beyond the skew) is 401; nbf within 60 s is accepted', async () => {
  const a = oneRule(rsa);
  assert.equal(await check(a, bearer(await sign(rsa, { nbf: nowS + 120 }))), { kind: 'invalid', status: 401, reason: 'Jwt not yet valid', rule });
  assert.is((await check(a, bearer(await sign(rsa, { nbf: nowS + 30 })))).kind, 'valid');
});

test('a token of an issuer no rule names is 401 "Jwt issuer is not configured"', async () => {
  assert.equal(await check(oneRule(rsa), bearer(await sign(rsa, { iss: 'https://evil.example.com' }))), { kind: 'invalid', status: 401, reason: 'Jwt issuer is not configured' });
});

test('a token for another audience is 403 "Audiences in Jwt are not allowed"; a listed one passes', async () => {
  const a = oneRule(rsa, { audiences: ['web', 'api'] });
  assert.equal(await check(a, bearer(await sign(rsa, { aud: 'billing' }))), { kind: 'invalid', status: 403, reason: 'Audiences in Jwt are not allowed', rule });
  assert.is((await check(a, bearer(await sign(rsa, { aud: ['billing', 'api'] })))).kind, 'valid');
  assert.is((await check(a, bearer(await sign(rsa, {})))).kind, 'invalid', 'no aud at all');
});

test('audiences compare as Envoy does: scheme and one trailing slash ignored', async () => {
  const a = oneRule(rsa, { audiences: ['https://api.example.com/'] });
  assert.is((await check(a, bearer(await sign(rsa, { aud: 'api.example.com' })))).kind, 'valid');
});

test('Envoy order: the audience is checked before the signature, so a forged token for another audience is 403', async () => {
  const a = oneRule(rsa, { audiences: ['web'] });
  const other = await makeKey('RS256');
  const r = await check(a, bearer(await sign(other, { aud: 'billing' })));
  assert.equal(r, { kind: 'invalid', status: 403, reason: 'Audiences in Jwt are not allowed', rule });
});

test('a tampered token (payload changed after signing) is 401 "Jwt verification fails"', async () => {
  const [h, , s] = (await sign(rsa)).split('.') as [string, string, string];
  const forged = `${h}.${Buffer.from(JSON.stringify({ iss: issuer, sub: 'admin', exp: nowS + 3600 })).toString('base64url')}.${s}`;
  assert.equal(await check(oneRule(rsa), bearer(forged)), { kind: 'invalid', status: 401, reason: 'Jwt verification fails', rule });
});

test('a token signed by a key not in the JWKS is 401', async () => {
  const other = await makeKey('RS256', 'k1');
  assert.equal(await check(oneRule(rsa), bearer(await sign(other))), { kind: 'invalid', status: 401, reason: 'Jwt verification fails', rule });
});

test('alg none is refused: 401 "Jwt header [alg] is not supported"', async () => {
  const seg = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = `${seg({ alg: 'none' })}.${seg({ iss: issuer, sub: 'alice', exp: nowS + 60 })}.`;
  assert.equal(await check(oneRule(rsa), bearer(token)), { kind: 'invalid', status: 401, reason: 'Jwt header [alg] is not supported' });
});

test('HS256 "signed" with the public key bytes (key confusion) is refused', async () => {
  const secret = new TextEncoder().encode(rsa.jwks);
  const token = await new SignJWT({ iss: issuer, sub: 'admin', exp: nowS + 60 }).setProtectedHeader({ alg: 'HS256', kid: rsa.kid }).sign(secret);
  assert.equal(await check(oneRule(rsa), bearer(token)), { kind: 'invalid', status: 401, reason: 'Jwt header [alg] is not supported' });
});

test('a token that is not three dot-separated parts is 401', async () => {
  const r = await check(oneRule(rsa), bearer('not-a-jwt'));
  assert.equal(r, { kind: 'invalid', status: 401, reason: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections' });
});

test('without a token the result is none (allowed here; AuthorizationPolicy may require one)', async () => {
  assert.equal(await check(oneRule(rsa), {}), { kind: 'none', removeHeaders: [] });
  assert.equal(await check(oneRule(rsa), { authorization: 'Basic dXNlcjpwYXNz' }), { kind: 'none', removeHeaders: [] }, 'no Bearer prefix: not a JWT location');
});

test('two tokens, one valid and one bad: 401, every token present must verify', async () => {
  const a = oneRule(rsa);
  const good = await sign(rsa);
  const bad = await sign(rsa, { exp: nowS - 3600 });
  assert.is((await check(a, bearer(good), `/?access_token=${bad}`)).kind, 'invalid');
  assert.is((await check(a, bearer(good), `/?access_token=${good}`)).kind, 'valid');
});

test('a JWKS with several keys and no kid in the token: each candidate key is tried', async () => {
  const k1 = await makeKey('ES256', 'a');
  const k2 = await makeKey('ES256', 'b');
  const jwks = JSON.stringify({ keys: [{ ...k1.jwk, kid: undefined }, { ...k2.jwk, kid: undefined }] });
  const a = authenticator([requestAuthentication('jwt', { ...toService(), jwtRules: [{ issuer, jwks }] })]);
  const token = await new SignJWT({ iss: issuer, sub: 'bob', exp: nowS + 60 }).setProtectedHeader({ alg: 'ES256' }).sign(k2.privateKey);
  assert.is((await check(a, bearer(token))).kind, 'valid');
});

test('a token whose kid names a key the JWKS lacks is 401 naming the kid/alg mismatch', async () => {
  const r = await check(oneRule(rsa), bearer(await sign(rsa, {}, { kid: 'rotated-away' })));
  assert.equal(r, { kind: 'invalid', status: 401, reason: "Jwks doesn't have key to match kid or alg from Jwt", rule });
});

test('a token verified once is still refused when it expires later (only its signature is remembered)', async () => {
  let now = nowS * 1000;
  const a = authenticator([requestAuthentication('jwt', { ...toService(), jwtRules: [{ issuer, jwks: rsa.jwks }] })], { now: () => now });
  const token = await sign(rsa, { exp: nowS + 10 });
  assert.is((await check(a, bearer(token))).kind, 'valid');
  assert.is((await check(a, bearer(token))).kind, 'valid', 'the same token again');
  now += 120_000;
  assert.equal(await check(a, bearer(token)), { kind: 'invalid', status: 401, reason: 'Jwt is expired', rule });
});

test('a token verified with keys that a new configuration drops is refused', async () => {
  const other = await makeKey('RS256', 'k2');
  const a = oneRule(rsa);
  const token = await sign(rsa);
  assert.is((await check(a, bearer(token))).kind, 'valid');
  a.update([requestAuthentication('jwt', { ...toService(), jwtRules: [{ issuer, jwks: other.jwks }] })]);
  assert.is((await check(a, bearer(token))).kind, 'invalid', 'the old key no longer verifies it');
});

test('a tampered copy of a verified token is refused: the cache is keyed by the whole token', async () => {
  const a = oneRule(rsa);
  const token = await sign(rsa, { group: 'dev' });
  assert.is((await check(a, bearer(token))).kind, 'valid');
  const [h, , sig] = token.split('.');
  const forged = `${h}.${Buffer.from(JSON.stringify({ iss: issuer, sub: 'admin', exp: nowS + 3600 })).toString('base64url')}.${sig}`;
  assert.equal(await check(a, bearer(forged)), { kind: 'invalid', status: 401, reason: 'Jwt verification fails', rule });
});

test.run();
