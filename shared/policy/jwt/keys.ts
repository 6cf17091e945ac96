// Public keys and signatures: a JWKS document read into jose's key set (createLocalJWKSet selects a key
// by `kid`, `alg`/`kty` and `use`), and a token's signature checked against it with jose, for the
// asymmetric algorithms only. Claims (issuer, time, audience) are verify.ts's; where keys come from,
// jwks-source.ts's.

import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';

/**
 * The algorithms a token may be signed with. Envoy's jwt_authn also accepts HS256/384/512, but a
 * RequestAuthentication's JWKS holds public keys: an HMAC "signed" with a public key's bytes is the
 * classic key-confusion forgery, so HS* and `none` are refused before any key is looked at.
 */
export const algorithms: readonly string[] = Object.freeze(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']);
const allowed = new Set(algorithms);

export function isAllowedAlgorithm(alg: unknown): alg is string {
  return typeof alg === 'string' && allowed.has(alg);
}

// Members a public JWK needs for its key type (RFC 7518 section 6, RFC 8037 section 2).
const members: Record<string, string[]> = { RSA: ['n', 'e'], EC: ['crv', 'x', 'y'], OKP: ['crv', 'x'] };

/** Why a JWKS text cannot verify tokens, or undefined when it can (shape only; keys import lazily). */
export function jwksProblem(text: string): string | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'is not JSON: it must be a JWKS such as {"keys":[{"kty":"RSA","n":"...","e":"AQAB"}]}';
  }
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { keys?: unknown }).keys)) return 'must be a JWKS: an object with a "keys" list';
  const keys = (doc as { keys: unknown[] }).keys;
  if (keys.length === 0) return 'has no keys';
  for (const [i, k] of keys.entries()) {
    if (typeof k !== 'object' || k === null) return `keys[${i}] is not an object`;
    const jwk = k as Record<string, unknown>;
    if (jwk.kty === 'oct') return `keys[${i}] is a symmetric key (kty oct): only public keys (RSA, EC, OKP) verify tokens`;
    const need = typeof jwk.kty === 'string' ? members[jwk.kty] : undefined;
    if (!need) return `keys[${i}].kty ${JSON.stringify(jwk.kty)} is not RSA, EC or OKP`;
    const missing = need.filter((m) => typeof jwk[m] !== 'string');
    if (missing.length > 0) return `keys[${i}] (kty ${jwk.kty}) lacks ${missing.join(', ')}`;
    if (typeof jwk.d === 'string') return `keys[${i}] holds a private key ("d"): publish only the public part`;
  }
  return undefined;
}

/** A JWKS text as jose's key set, or why it cannot be one. */
export function parseJwks(text: string): { keys: JWTVerifyGetKey } | { problem: string } {
  const problem = jwksProblem(text);
  if (problem) return { problem };
  try {
    return { keys: createLocalJWKSet(JSON.parse(text) as JSONWebKeySet) };
  } catch (e) {
    return { problem: (e as Error).message };
  }
}

/** Envoy's status strings (jwt_verify_lib status.cc), which become the 401 body. */
export const messages = {
  verificationFails: 'Jwt verification fails',
  kidAlgMismatch: "Jwks doesn't have key to match kid or alg from Jwt",
  noValidKeys: "Jwks doesn't have any valid public key",
  expired: 'Jwt is expired',
} as const;

/** Envoy's 60 s default (`clock_skew_seconds`), which Istio does not change. */
export const clockSkewSeconds = 60;

/**
 * Whether `token` is signed by a key of `keys`, undefined when it is, else Envoy's reason. A token
 * without `kid` that several keys could have signed is tried with each (Envoy tries every matching
 * key, jose hands the candidates back). The caller has checked issuer, time and audience first, in
 * Envoy's order; jose checks issuer and time again, so a token never passes on one opinion only.
 */
export async function verifySignature(token: string, keys: JWTVerifyGetKey, issuer: string, nowMs: number): Promise<string | undefined> {
  const options = { algorithms: algorithms as string[], issuer, clockTolerance: clockSkewSeconds, currentDate: new Date(nowMs) };
  try {
    await jwtVerify(token, keys, options);
    return undefined;
  } catch (e) {
    if (e instanceof errors.JWKSMultipleMatchingKeys) {
      for await (const key of e) {
        try {
          await jwtVerify(token, key, options);
          return undefined;
        } catch {
          // the next candidate may be the signer
        }
      }
      return messages.verificationFails;
    }
    if (e instanceof errors.JWKSNoMatchingKey) return messages.kidAlgMismatch;
    if (e instanceof errors.JWTExpired) return messages.expired;
    return messages.verificationFails;
  }
}
