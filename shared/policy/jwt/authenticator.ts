// RequestAuthentication at one waypoint, as istiod compiles it into Envoy's jwt_authn filter: the rules
// of every policy attached to the waypoint or to a Service merged per Service, and a request's tokens
// checked against them. A request without a token passes ('none'); one with a token that fails is
// refused even though tokens are optional. Requiring a token is AuthorizationPolicy's (requestPrincipals).

import type { Logger } from '../../log.js';
import type { PolicyEntry } from '../../protocol/config.js';
import { readAttachment } from '../http/attachment.js';
import type { RequestAuth } from '../http/types.js';
import { byName, policyName } from '../spec.js';
import { defaultRefreshMs, defaultRetryMs, InlineJwks, type KeySource, RemoteJwks } from './jwks-source.js';
import { readJwtRules } from './rules.js';
import { findTokens, mergeLocations, removeParam, type TokenLocations } from './token.js';
import { claimHeaderValue, type CompiledJwtRule, requestAuth, sanitizeAudience, VerifiedTokens, verifyToken } from './verify.js';

export interface JwtOptions {
  /** `namespace/name` of this waypoint's Gateway. */
  waypoint: string;
  rootNamespace: string;
  /** GETs a JWKS (or OpenID discovery) URI; rejects on any failure; honours `signal`. */
  fetchJwks(uri: string, signal: AbortSignal): Promise<string>;
  log: Logger;
  /** Milliseconds since the epoch; Date.now by default. */
  now?(): number;
  /** Between good JWKS fetches; 20 min, Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL. */
  refreshMs?: number;
  /** After a failed JWKS fetch; 1 min. */
  retryMs?: number;
}

/** The merged rules that apply to one Service at this waypoint. */
export interface JwtRuleSet {
  readonly rules: readonly CompiledJwtRule[];
  /** The first rule of each issuer (Envoy's findByIssuer). */
  readonly byIssuer: ReadonlyMap<string, CompiledJwtRule>;
  readonly locations: TokenLocations;
  /**
   * Every rule's outputPayloadToHeader and outputClaimToHeaders headers: removed from every request
   * before anything is added, so a client cannot send them forged (Envoy's sanitizeHeaders).
   */
  readonly sanitize: readonly string[];
  /** `ns/name` of the policies merged here. */
  readonly policies: readonly string[];
}

/**
 * The answer for one request. The caller removes `removeHeaders`, then adds `setHeaders`, and sends
 * `url` upstream (the token's query parameter removed).
 */
export type JwtResult =
  | { kind: 'none'; removeHeaders: string[] }
  | { kind: 'invalid'; status: 401 | 403; reason: string; rule?: string }
  | { kind: 'valid'; auth: RequestAuth; rule: string; removeHeaders: string[]; setHeaders: [string, string][]; url: string };

export interface JwtRequest {
  headers: Record<string, string | string[] | undefined>;
  url: string;
}

function buildSet(rules: CompiledJwtRule[]): JwtRuleSet {
  const byIssuer = new Map<string, CompiledJwtRule>();
  for (const r of rules) if (!byIssuer.has(r.spec.issuer)) byIssuer.set(r.spec.issuer, r);
  const sanitize = new Set<string>();
  for (const r of rules) {
    if (r.spec.outputPayloadToHeader) sanitize.add(r.spec.outputPayloadToHeader);
    for (const c of r.spec.outputClaimToHeaders) sanitize.add(c.header);
  }
  return {
    rules,
    byIssuer,
    locations: mergeLocations(rules.map((r) => r.spec)),
    sanitize: [...sanitize],
    policies: [...new Set(rules.map((r) => r.policy))],
  };
}

export class RequestAuthenticator {
  private byService = new Map<string, JwtRuleSet>();
  private waypointWide: JwtRuleSet | undefined;
  private sources = new Map<string, KeySource>();
  private reported = new Set<string>();
  private readonly now: () => number;
  private readonly verified = new VerifiedTokens();

  constructor(private readonly o: JwtOptions) {
    this.now = o.now ?? Date.now;
  }

  /** Replaces every policy; only RequestAuthentication with targetRef(s) matters (a selector one is for node proxies). */
  update(policies: PolicyEntry[]): void {
    const wide: CompiledJwtRule[] = [];
    const perService = new Map<string, CompiledJwtRule[]>();
    const used = new Map<string, KeySource>();
    const reported = new Set<string>();
    const warn = (policy: string, field: string, message: string) => {
      const line = `${policy}: ${field} ${message}`;
      reported.add(line);
      if (!this.reported.has(line)) this.o.log.warn({ policy, field }, `RequestAuthentication ${line}`);
    };
    for (const p of policies.filter((e) => e.kind === 'RequestAuthentication').sort(byName)) {
      const name = policyName(p);
      const { attachment, problems } = readAttachment(p.spec, p.namespace, this.o.rootNamespace);
      if (!attachment) continue;
      for (const pr of problems) warn(name, pr.field, pr.message);
      const here = attachment.everyWaypoint || attachment.gateways.includes(this.o.waypoint);
      if (!here && attachment.services.length === 0) continue;
      const read = readJwtRules(p.spec);
      for (const pr of read.problems) warn(name, pr.field, pr.message);
      const compiled: CompiledJwtRule[] = [];
      read.rules.forEach((spec, i) => {
        if (!spec) return; // no issuer: nothing a token could match
        compiled.push({ name: `${name} jwtRules[${i}]`, policy: name, spec, audiences: new Set(spec.audiences.map(sanitizeAudience)), keys: this.source(spec.jwks, spec.jwksUri, spec.issuer, spec.timeoutMs, used) });
      });
      if (here) wide.push(...compiled);
      for (const s of attachment.services) {
        let list = perService.get(s);
        if (!list) perService.set(s, (list = []));
        list.push(...compiled);
      }
    }
    for (const [key, src] of this.sources) if (!used.has(key)) src.close();
    this.sources = used;
    this.reported = reported;
    this.waypointWide = wide.length > 0 ? buildSet(wide) : undefined;
    const byService = new Map<string, JwtRuleSet>();
    // A Service's rules are the waypoint's and its own, merged as istiod merges every applicable policy.
    for (const [s, own] of perService) byService.set(s, buildSet([...wide, ...own].sort((a, b) => (a.policy < b.policy ? -1 : a.policy > b.policy ? 1 : 0))));
    this.byService = byService;
  }

  /** One key source per distinct inline JWKS or URI, kept across updates so fetched keys survive a push. */
  private source(jwks: string | undefined, jwksUri: string | undefined, issuer: string, timeoutMs: number, used: Map<string, KeySource>): KeySource {
    // istiod: inline jwks wins; without either, keys come from the issuer's OpenID discovery document.
    const key = jwks !== undefined ? `jwks ${jwks}` : jwksUri !== undefined ? `uri ${jwksUri}` : `discover ${issuer}`;
    let src = used.get(key) ?? this.sources.get(key);
    if (!src) {
      if (jwks !== undefined) src = new InlineJwks(jwks);
      else {
        const options = { fetchJwks: this.o.fetchJwks, log: this.o.log, refreshMs: this.o.refreshMs ?? defaultRefreshMs, retryMs: this.o.retryMs ?? defaultRetryMs, timeoutMs, now: this.now };
        src = jwksUri !== undefined ? new RemoteJwks(jwksUri, options) : new RemoteJwks(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, options, true);
      }
    }
    used.set(key, src);
    return src;
  }

  /** The rules for requests to `service` (`ns/name`) through this waypoint; undefined when none apply. */
  rulesFor(service: string): JwtRuleSet | undefined {
    return this.byService.get(service) ?? this.waypointWide;
  }

  async authenticate(rules: JwtRuleSet, req: JwtRequest): Promise<JwtResult> {
    const found = findTokens(rules.locations, req.headers, req.url);
    if (found.length === 0) return { kind: 'none', removeHeaders: [...rules.sanitize] };
    const now = this.now();
    const removeHeaders = [...rules.sanitize];
    const setHeaders: [string, string][] = [];
    let url = req.url;
    let first: { auth: RequestAuth; rule: string } | undefined;
    // Envoy: "If a request has multiple tokens, all of them must be valid", lest the backend read the
    // bad one as if it had been verified.
    for (const f of found) {
      const v = await verifyToken(f, rules.byIssuer, now, this.verified);
      if (!v.ok) return v.rule ? { kind: 'invalid', status: v.status, reason: v.reason, rule: v.rule.name } : { kind: 'invalid', status: v.status, reason: v.reason };
      const spec = v.rule.spec;
      first ??= { auth: requestAuth(v.payload), rule: v.rule.name };
      // The payload segment as sent (base64url, unpadded), Envoy's forward_payload_header.
      if (spec.outputPayloadToHeader) setHeaders.push([spec.outputPayloadToHeader, v.payloadSegment]);
      for (const c of spec.outputClaimToHeaders) {
        const value = claimHeaderValue(v.payload, c.claim);
        if (value !== undefined) setHeaders.push([c.header, value]);
      }
      if (!spec.forwardOriginalToken) {
        // Envoy removes a header or query parameter token; it leaves cookies as they are (its TODO).
        if (f.from === 'header' && !removeHeaders.includes(f.name)) removeHeaders.push(f.name);
        else if (f.from === 'param') url = removeParam(url, f.name);
      }
    }
    return { kind: 'valid', auth: first!.auth, rule: first!.rule, removeHeaders, setHeaders, url };
  }

  /** What applies to `service` and, given a result, what it meant: for `ambit explain` and the admin API. */
  explain(service: string, result?: JwtResult): string[] {
    const set = this.rulesFor(service);
    const lines: string[] = [];
    if (!set) lines.push(`no RequestAuthentication applies to ${service} at waypoint ${this.o.waypoint}: tokens are not checked`);
    else {
      lines.push(`RequestAuthentication ${set.policies.join(', ')} appl${set.policies.length === 1 ? 'ies' : 'y'} to ${service} at waypoint ${this.o.waypoint}`);
      for (const r of set.rules) {
        const s = r.spec;
        const where = [...s.fromHeaders.map((h) => `header ${h.name}${h.prefix ? ` after ${JSON.stringify(h.prefix)}` : ''}`), ...s.fromParams.map((p) => `query parameter ${p}`), ...s.fromCookies.map((c) => `cookie ${c}`)];
        const aud = s.audiences.length > 0 ? `audiences ${s.audiences.join(', ')}` : 'any audience';
        lines.push(`${r.name}: issuer ${s.issuer}, ${aud}, tokens from ${where.join(', ')}; ${r.keys.describe()}`);
      }
    }
    if (result?.kind === 'none') lines.push('no token presented: request.auth is unset; allowed unless an AuthorizationPolicy requires requestPrincipals');
    else if (result?.kind === 'invalid') lines.push(`token refused with ${result.status}: ${result.reason}${result.rule ? ` (${result.rule})` : ''}`);
    else if (result?.kind === 'valid') lines.push(`token valid for ${result.rule}: request principal ${result.auth.principal}`);
    return lines;
  }

  /** Stops every JWKS refresh. */
  close(): void {
    for (const s of this.sources.values()) s.close();
    this.sources.clear();
  }
}
