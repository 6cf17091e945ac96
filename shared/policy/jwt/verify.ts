// One token checked as Envoy's jwt_authn checks it (authenticator.cc startVerify): parse, alg, issuer
// (configured for the location it was found at), time (60 s skew), audience, then keys and signature.
// The order is Envoy's and decides the status a bad token gets: audiences come before the signature,
// so a token for another audience is 403 even when its signature is also bad. Every other failure is 401.

import type { JWTVerifyGetKey } from 'jose';
import type { RequestAuth } from '../http/types.js';
import type { KeySource } from './jwks-source.js';
import { clockSkewSeconds, isAllowedAlgorithm, messages, verifySignature } from './keys.js';
import type { JwtRuleSpec } from './rules.js';
import type { FoundToken } from './token.js';

/** A rule ready for requests: its spec, its keys, its audiences as Envoy compares them. */
export interface CompiledJwtRule {
  /** `ns/name jwtRules[i]` */
  name: string;
  policy: string;
  spec: JwtRuleSpec;
  audiences: ReadonlySet<string>;
  keys: KeySource;
}

export type TokenVerdict =
  | { ok: true; rule: CompiledJwtRule; payload: Record<string, unknown>; payloadSegment: string }
  | { ok: false; status: 401 | 403; reason: string; rule?: CompiledJwtRule };

/**
 * An audience as Envoy's CheckAudience compares it: without an `http://` or `https://` scheme and
 * without one trailing slash, so `https://api.example.com/` in a token matches `api.example.com`.
 */
export function sanitizeAudience(aud: string): string {
  let s = aud;
  if (s.startsWith('http://')) s = s.slice(7);
  else if (s.startsWith('https://')) s = s.slice(8);
  return s.endsWith('/') ? s.slice(0, -1) : s;
}

const base64url = /^[A-Za-z0-9_-]*$/;

function segment(text: string, what: 'header' | 'payload'): Record<string, unknown> | string {
  if (!base64url.test(text)) return `Jwt ${what} is an invalid Base64url encoded`;
  try {
    const v: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // reported below
  }
  return `Jwt ${what} is an invalid JSON`;
}

const unauthorized = (reason: string, rule?: CompiledJwtRule): TokenVerdict => (rule ? { ok: false, status: 401, reason, rule } : { ok: false, status: 401, reason });

/**
 * Tokens whose signature verified, each with the key set that verified it, least recently used first
 * dropped (as Envoy's jwt_cache_config, which Istio leaves off): a client sends the same token on
 * many requests, and a signature check costs far more than the rest of a request. Only the signature
 * is remembered; issuer, time and audience are checked on every request, and new keys (a JWKS
 * refresh) mean a new check. Bounded: `max` tokens of at most a few KiB each.
 */
export class VerifiedTokens {
  private readonly byToken = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly max = 1024) {}

  /** Whether `token` verified with exactly these keys. */
  has(token: string, keys: JWTVerifyGetKey): boolean {
    const k = this.byToken.get(token);
    if (k === undefined) return false;
    this.byToken.delete(token);
    if (k !== keys) return false;
    this.byToken.set(token, k);
    return true;
  }

  add(token: string, keys: JWTVerifyGetKey): void {
    if (this.byToken.size >= this.max) this.byToken.delete(this.byToken.keys().next().value!);
    this.byToken.set(token, keys);
  }

  get size(): number {
    return this.byToken.size;
  }
}

export async function verifyToken(found: FoundToken, byIssuer: ReadonlyMap<string, CompiledJwtRule>, nowMs: number, verified?: VerifiedTokens): Promise<TokenVerdict> {
  const parts = found.token.split('.');
  if (parts.length !== 3) return unauthorized('Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections');
  const header = segment(parts[0]!, 'header');
  if (typeof header === 'string') return unauthorized(header);
  // `none`, HS* and anything unknown: refused before keys are consulted (keys.ts explains why).
  if (typeof header.alg !== 'string') return unauthorized('Jwt header [alg] field is required and must be a string');
  if (!isAllowedAlgorithm(header.alg)) return unauthorized('Jwt header [alg] is not supported');
  const payload = segment(parts[1]!, 'payload');
  if (typeof payload === 'string') return unauthorized(payload);

  // The issuer picks the rule, and it must be one of the issuers whose rules name this location.
  const iss = payload.iss;
  const rule = typeof iss === 'string' && found.issuers.has(iss) ? byIssuer.get(iss) : undefined;
  if (!rule) return unauthorized('Jwt issuer is not configured');

  for (const claim of ['exp', 'nbf'] as const)
    if (payload[claim] !== undefined && typeof payload[claim] !== 'number') return unauthorized(`Jwt payload [${claim}] field is not an integer`, rule);
  const now = Math.floor(nowMs / 1000);
  const nbf = payload.nbf as number | undefined;
  const exp = payload.exp as number | undefined;
  if (nbf !== undefined && nbf > now + clockSkewSeconds) return unauthorized('Jwt not yet valid', rule);
  if (exp !== undefined && exp < now - clockSkewSeconds) return unauthorized(messages.expired, rule);

  if (rule.audiences.size > 0) {
    const aud = payload.aud;
    const list = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!list.some((a) => typeof a === 'string' && rule.audiences.has(sanitizeAudience(a)))) return { ok: false, status: 403, reason: 'Audiences in Jwt are not allowed', rule };
  }

  let keys = rule.keys.current;
  if (!keys && rule.keys.pending) {
    await rule.keys.pending;
    keys = rule.keys.current;
  }
  if (!keys) return unauthorized(rule.keys.failure, rule);
  if (!verified?.has(found.token, keys)) {
    const failure = await verifySignature(found.token, keys, rule.spec.issuer, nowMs);
    if (failure) return unauthorized(failure, rule);
    verified?.add(found.token, keys);
  }
  return { ok: true, rule, payload, payloadSegment: parts[1]! };
}

/** `request.auth.*` of a verified payload: principal `<iss>/<sub>`, as Istio's authn filter builds it. */
export function requestAuth(payload: Record<string, unknown>): RequestAuth {
  const issuer = typeof payload.iss === 'string' ? payload.iss : '';
  const subject = typeof payload.sub === 'string' ? payload.sub : '';
  const aud = payload.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === 'string') : [];
  const auth: RequestAuth = { principal: `${issuer}/${subject}`, issuer, subject, audiences, claims: payload };
  if (typeof payload.azp === 'string') auth.presenter = payload.azp;
  return auth;
}

/**
 * A claim as Envoy's claim_to_headers writes it (authenticator.cc addJWTClaimToHeader): nested by `.`;
 * strings as they are, booleans `true`/`false`, whole non-negative numbers as integers and other
 * numbers with six decimals (C++ std::to_string); lists, objects and absent claims write no header.
 */
export function claimHeaderValue(payload: Record<string, unknown>, claim: string): string | undefined {
  let v: unknown = payload;
  for (const key of claim.split('.')) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
    v = (v as Record<string, unknown>)[key];
  }
  if (typeof v === 'string') return v === '' ? undefined : v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'number' && Number.isFinite(v)) return Number.isInteger(v) && v >= 0 && v < 2 ** 64 ? BigInt(v).toString() : v.toFixed(6);
  return undefined;
}
