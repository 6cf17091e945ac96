// Keys, tokens and authenticators for the RequestAuthentication tests: keys made here with jose,
// tokens signed with them, policies in the shape the controller pushes.

import { exportJWK, generateKeyPair, SignJWT, type JWTPayload, type CryptoKey } from 'jose';
import { pino } from 'pino';
import { RequestAuthenticator, type JwtOptions, type JwtResult } from '../../../../shared/policy/jwt/index.js';
import type { PolicyEntry } from '../../../../shared/protocol/config.js';

export const issuer = 'https://issuer.example.com';
export const silent = pino({ level: 'silent' });
/** A fixed clock: 2030-01-01T00:00:00Z. */
export const nowMs = Date.UTC(2030, 0, 1);
export const nowS = nowMs / 1000;

export interface TestKey {
  privateKey: CryptoKey;
  jwk: Record<string, unknown>;
  jwks: string;
  alg: string;
  kid: string;
}

export async function makeKey(alg = 'RS256', kid = 'k1'): Promise<TestKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  return { privateKey: pair.privateKey, jwk, jwks: JSON.stringify({ keys: [jwk] }), alg, kid };
}

export async function sign(key: TestKey, claims: JWTPayload = {}, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT({ iss: issuer, sub: 'alice', exp: nowS + 3600, iat: nowS, ...claims }).setProtectedHeader({ alg: key.alg, kid: key.kid, ...header }).sign(key.privateKey);
}

export const requestAuthentication = (name: string, spec: unknown, namespace = 'shop'): PolicyEntry => ({ kind: 'RequestAuthentication', name, namespace, spec });
export const toService = (name = 'web') => ({ targetRefs: [{ kind: 'Service', group: '', name }] });

export function authenticator(policies: PolicyEntry[], o: Partial<JwtOptions> = {}): RequestAuthenticator {
  const a = new RequestAuthenticator({
    waypoint: 'shop/waypoint',
    rootNamespace: 'istio-system',
    fetchJwks: () => Promise.reject(new Error('no fetch in this test')),
    log: silent,
    now: () => nowMs,
    ...o,
  });
  a.update(policies);
  return a;
}

/** One rule on Service shop/web with inline keys `key`, plus `extra` fields. */
export function oneRule(key: TestKey, extra: Record<string, unknown> = {}): RequestAuthenticator {
  return authenticator([requestAuthentication('jwt', { ...toService(), jwtRules: [{ issuer, jwks: key.jwks, ...extra }] })]);
}

/** Authenticates a request to shop/web. */
export async function check(a: RequestAuthenticator, headers: Record<string, string | string[] | undefined>, url = '/'): Promise<JwtResult> {
  const rules = a.rulesFor('shop/web');
  if (!rules) throw new Error('no rules for shop/web');
  return a.authenticate(rules, { headers, url });
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
