import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compactVerify, errors } from 'jose';
import { algorithms } from '../../../../shared/policy/jwt/index.js';
import { parseJwks } from '../../../../shared/policy/jwt/keys.js';
import { authenticator, bearer, requestAuthentication, toService } from './helpers.js';
import { rfc7515A2, rfc7515A3, rfc7515Exp, rfc7520, rfc7520EcKey, rfc7520RsaKey, rfc7520Text, rfc8037A4 } from './vectors.js';

/** An authenticator whose one rule trusts issuer `joe` (RFC 7515's) with `jwk`, its clock at `atS`. */
function joe(jwk: object, atS = rfc7515Exp - 10) {
  return authenticator([requestAuthentication('joe', { ...toService(), jwtRules: [{ issuer: 'joe', jwks: JSON.stringify({ keys: [jwk] }) }] })], { now: () => atS * 1000 });
}

async function checkJoe(jwk: object, token: string, atS?: number) {
  const a = joe(jwk, atS);
  return a.authenticate(a.rulesFor('shop/web')!, { headers: bearer(token), url: '/' });
}

function keySet(...keys: object[]) {
  const parsed = parseJwks(JSON.stringify({ keys }));
  if (!('keys' in parsed)) throw new Error(parsed.problem);
  return parsed.keys;
}

test('RFC 7515 A.2: the RS256 example JWS is a valid token for issuer joe before its exp', async () => {
  const r = await checkJoe(rfc7515A2.jwk, rfc7515A2.token);
  assert.is(r.kind, 'valid');
  if (r.kind !== 'valid') return;
  assert.is(r.auth.principal, 'joe/');
  assert.is(r.auth.claims['http://example.com/is_root'], true);
  assert.equal(r.removeHeaders, ['authorization']);
});

test('RFC 7515 A.3: the ES256 example JWS is a valid token (ECDSA signatures verify though not reproducible)', async () => {
  const r = await checkJoe(rfc7515A3.jwk, rfc7515A3.token);
  assert.is(r.kind, 'valid');
});

test('RFC 7515 A.2 with one bit of its signature flipped is refused with 401', async () => {
  const [h, p, s] = rfc7515A2.token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  sig[10]! ^= 1;
  const r = await checkJoe(rfc7515A2.jwk, `${h}.${p}.${sig.toString('base64url')}`);
  assert.equal(r, { kind: 'invalid', status: 401, reason: 'Jwt verification fails', rule: 'shop/joe jwtRules[0]' });
});

test('RFC 7515 A.2 verified with the A.3 key (wrong key type for RS256) is refused', async () => {
  const r = await checkJoe(rfc7515A3.jwk, rfc7515A2.token);
  assert.equal(r, { kind: 'invalid', status: 401, reason: "Jwks doesn't have key to match kid or alg from Jwt", rule: 'shop/joe jwtRules[0]' });
});

test('RFC 7515 A.2 is expired more than 60 s after its exp (2011-03-22T18:43:00Z)', async () => {
  assert.is((await checkJoe(rfc7515A2.jwk, rfc7515A2.token, rfc7515Exp + 59)).kind, 'valid');
  const r = await checkJoe(rfc7515A2.jwk, rfc7515A2.token, rfc7515Exp + 61);
  assert.equal(r, { kind: 'invalid', status: 401, reason: 'Jwt is expired', rule: 'shop/joe jwtRules[0]' });
});

test('RFC 7520 4.1 (RS256), 4.2 (PS384) and 4.3 (ES512) verify with the key the kid and alg select from a set of two', async () => {
  const keys = keySet(rfc7520RsaKey, rfc7520EcKey);
  for (const token of [rfc7520.rs256, rfc7520.ps384, rfc7520.es512]) {
    const { payload } = await compactVerify(token, keys, { algorithms: algorithms as string[] });
    assert.is(Buffer.from(payload).toString('utf8'), rfc7520Text);
  }
});

test('RFC 7520 4.4 (HS256) is refused by the algorithm allow-list before any key is looked at', async () => {
  const keys = keySet(rfc7520RsaKey);
  try {
    await compactVerify(rfc7520.hs256, keys, { algorithms: algorithms as string[] });
    assert.unreachable('HS256 accepted');
  } catch (e) {
    assert.instance(e, errors.JOSEAlgNotAllowed);
  }
});

test('RFC 7520 tokens carry text, not claims: as a request token they are 401, not verified as JWTs', async () => {
  const a = authenticator([requestAuthentication('bilbo', { ...toService(), jwtRules: [{ issuer: 'joe', jwks: JSON.stringify({ keys: [rfc7520RsaKey] }) }] })]);
  const r = await a.authenticate(a.rulesFor('shop/web')!, { headers: bearer(rfc7520.rs256), url: '/' });
  assert.equal(r, { kind: 'invalid', status: 401, reason: 'Jwt payload is an invalid JSON' });
});

test('RFC 8037 A.4: the Ed25519 (EdDSA) example verifies with its OKP public key', async () => {
  const { payload } = await compactVerify(rfc8037A4.token, keySet(rfc8037A4.jwk), { algorithms: algorithms as string[] });
  assert.is(Buffer.from(payload).toString('utf8'), 'Example of Ed25519 signing');
});

test('RFC 8037 A.4 with a changed payload does not verify', async () => {
  const [h, , s] = rfc8037A4.token.split('.') as [string, string, string];
  const forged = `${h}.${Buffer.from('Example of Ed25519 signinG').toString('base64url')}.${s}`;
  try {
    await compactVerify(forged, keySet(rfc8037A4.jwk), { algorithms: algorithms as string[] });
    assert.unreachable('forged payload accepted');
  } catch (e) {
    assert.instance(e, errors.JWSSignatureVerificationFailed);
  }
});

test.run();
