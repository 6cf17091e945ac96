// The waypoint's L7 security, in Envoy's filter order for an Istio waypoint: the path normalized once
// (policies and the backend see the same path), the JWTs of RequestAuthentication checked
// (jwt_authn), then AuthorizationPolicy (rbac); after routing, the LocalRateLimit of the route. Each
// refusal is an answer the forwarder sends as it is. Policies are compiled when the configuration
// changes; a request to a Service with no JWT rule costs a map lookup and a policy scan.

import type { OutgoingHttpHeaders } from 'node:http';
import type { Logger } from '../shared/log.js';
import { HttpAuthorizer } from '../shared/policy/http/authorization.js';
import { normalizePath } from '../shared/policy/http/path.js';
import type { HttpDecision, HttpRequestAttributes, RequestAuth } from '../shared/policy/http/types.js';
import { RequestAuthenticator } from '../shared/policy/jwt/authenticator.js';
import { principal } from '../shared/identity/spiffe.js';
import { serviceHostname, type ServiceEntry } from '../shared/protocol/config.js';
import type { DownstreamRequest } from './proxy/forward.js';
import type { TunnelContext } from './proxy/ingress.js';
import { RateLimiter, rateLimitHeaders } from './ratelimit.js';
import type { WaypointState } from './state.js';
import type { SharedCounters } from './upstream/shared-counters.js';
import type { WaypointExplainRequest } from '../shared/waypoint/config.js';
import { addressedPod } from './pod-destination.js';

/** An answer the waypoint gives instead of forwarding. */
export interface Refusal {
  status: number;
  /** Envoy's response flag for it, or '-'. */
  flag: string;
  message: string;
  headers?: OutgoingHttpHeaders;
  /** The policy (`namespace/name`) that refused, for the metrics. */
  policy?: string;
}

/** A rate limit applied: its headers for the answer, and the refusal when over budget. */
export interface RateLimited {
  headers: OutgoingHttpHeaders;
  refusal?: Refusal;
}

export interface SecurityOptions {
  /** `namespace/name` of the waypoint's Gateway. */
  waypoint: string;
  rootNamespace: string;
  state: WaypointState;
  log: Logger;
  /** A JWKS document from a jwksUri, fetched through the mesh (`waypoint/jwks.ts`). */
  fetchJwks(uri: string, signal: AbortSignal): Promise<string>;
  /** Every refusal, once, for the metrics. */
  onRefusal?(kind: 'authn' | 'authz' | 'ratelimit', refusal: Refusal): void;
  /** With workers: the rate-limit buckets every event loop charges. */
  shared?: SharedCounters;
}

const badPath: Refusal = Object.freeze({ status: 400, flag: 'DPE', message: 'Bad Request: the path cannot be normalized' });

export class WaypointSecurity {
  readonly authorizer: HttpAuthorizer;
  readonly authenticator: RequestAuthenticator;
  readonly limiter: RateLimiter;
  /** Filled per request and read synchronously by the authorizer: one object for all of them. */
  private readonly attrs: HttpRequestAttributes = { method: '', path: '', host: '', headers: {}, sourceIp: '', sourcePrincipal: '', sourceNamespace: '', destinationIp: '', destinationPort: 0 };

  constructor(private readonly o: SecurityOptions) {
    this.authorizer = new HttpAuthorizer(o.waypoint, o.rootNamespace);
    this.authenticator = new RequestAuthenticator({ waypoint: o.waypoint, rootNamespace: o.rootNamespace, fetchJwks: o.fetchJwks, log: o.log });
    this.limiter = new RateLimiter({ waypoint: o.waypoint, rootNamespace: o.rootNamespace, ...(o.shared ? { shared: o.shared } : {}) });
    const load = () => {
      this.authorizer.update(o.state.policies);
      this.authenticator.update(o.state.policies);
      for (const p of this.limiter.update(o.state.traffic)) o.log.warn({ policy: p.policy, field: p.field }, `LocalRateLimit not in force: ${p.message}`);
      for (const w of this.authorizer.warnings()) o.log.warn({ policy: w.policy, rule: w.rule }, `AuthorizationPolicy not enforced as written: ${w.message}`);
    };
    load();
    o.state.on('changed', load);
  }

  /**
   * Normalizes the request's path in place (so that routing and the backend see what policies saw),
   * then authenticates and authorizes it. Synchronous unless a JWT rule applies to the Service.
   */
  admit(req: DownstreamRequest, ctx: TunnelContext): Refusal | undefined | Promise<Refusal | undefined> {
    const url = req.url ?? '/';
    const n = normalizePath(url);
    if ('error' in n) return this.refused('authz', { ...badPath, message: `Bad Request: ${n.error}` });
    const normalized = n.path + n.query;
    if (normalized !== url) req.url = normalized;
    const service = serviceKey(ctx.service);
    const rules = this.authenticator.rulesFor(service);
    if (!rules) return this.authorize(req, ctx, service, n.path, undefined);
    return this.authenticator.authenticate(rules, { headers: req.headers, url: normalized }).then((r) => {
      if (r.kind === 'invalid') {
        const headers: OutgoingHttpHeaders = r.status === 401 ? { 'www-authenticate': `Bearer realm="http://${hostOf(req, ctx.service)}${n.path}", error="invalid_token"` } : {};
        return this.refused('authn', { status: r.status, flag: '-', message: r.reason, headers, ...(r.rule ? { policy: r.rule.split(' ')[0]! } : {}) });
      }
      // Headers a rule outputs claims to are removed even without a token, so a client cannot forge them.
      for (const h of r.removeHeaders) delete req.headers[h];
      if (r.kind === 'none') return this.authorize(req, ctx, service, n.path, undefined);
      for (const [k, v] of r.setHeaders) req.headers[k] = v;
      if (r.url !== normalized) req.url = r.url;
      return this.authorize(req, ctx, service, n.path, r.auth);
    });
  }

  /** The rate limits of the Service and route, after routing: undefined when none applies. */
  limit(service: ServiceEntry, route: string | undefined, ctx: TunnelContext): RateLimited | undefined {
    const v = this.limiter.take(serviceKey(service), route, principal(ctx.peer));
    if (!v) return undefined;
    const headers: OutgoingHttpHeaders = {};
    rateLimitHeaders(v, headers);
    if (!v.limited) return { headers };
    return { headers, refusal: this.refused('ratelimit', { status: 429, flag: 'RL', message: 'local_rate_limited', headers, policy: v.policy }) };
  }

  close(): void {
    this.authenticator.close();
  }

  /** `ambit explain --http` at this waypoint: what admit() would decide, step by step, without side effects. */
  async explain(q: WaypointExplainRequest, services: (ns: string, name: string) => ServiceEntry | undefined, pods?: (ip: string, port: number) => ServiceEntry | undefined): Promise<{ steps: string[]; refused?: { status: number; message: string } }> {
    const steps: string[] = [];
    const [sns, sname] = q.service.split('/') as [string, string];
    const svc = q.ip ? pods?.(q.ip, q.port) : services(sns, sname);
    if (!svc) return { steps: [q.ip ? `pod ${q.ip} is not bound to this waypoint for traffic addressed to it` : `Service ${q.service} is not in this waypoint's configuration yet`] };
    const key = serviceKey(svc);
    const what = q.ip ? `pod ${q.ip} (addressed directly)` : q.service;
    const n = normalizePath(q.path);
    if ('error' in n) return { steps: [`path ${q.path}: ${n.error}`], refused: { status: 400, message: 'Bad Request' } };
    if (n.path !== q.path.split('?')[0]) steps.push(`path ${q.path} normalized to ${n.path}`);
    const url = n.path + n.query;
    const headers: Record<string, string | string[] | undefined> = {};
    for (const [k, v] of Object.entries(q.headers)) headers[k.toLowerCase()] = v;
    let auth: RequestAuth | undefined;
    const rules = this.authenticator.rulesFor(key);
    if (!rules) steps.push(`no RequestAuthentication applies to ${what}`);
    else {
      const r = await this.authenticator.authenticate(rules, { headers, url });
      if (r.kind === 'invalid') {
        steps.push(`JWT refused${r.rule ? ` by ${r.rule}` : ''}: ${r.reason}`);
        return { steps, refused: { status: r.status, message: r.reason } };
      }
      if (r.kind === 'none') steps.push('no JWT in the request: request.auth is empty (only a policy that requires a request principal refuses it)');
      else {
        auth = r.auth;
        steps.push(`JWT valid by ${r.rule}: request principal ${r.auth.principal}${r.auth.audiences.length ? `, audiences ${r.auth.audiences.join(', ')}` : ''}`);
      }
    }
    const [, ns] = /\/ns\/([^/]+)\//.exec(q.sourcePrincipal) ?? [];
    const a: HttpRequestAttributes = {
      method: q.method,
      path: n.path,
      host: headers.host === undefined ? serviceHostname(svc) : String(headers.host),
      headers,
      sourceIp: q.sourceIp,
      sourcePrincipal: q.sourcePrincipal,
      sourceNamespace: ns ?? '',
      destinationIp: svc.clusterIP ?? '',
      destinationPort: q.port,
      ...(auth ? { auth } : {}),
    };
    const e = this.authorizer.explain(key, a);
    steps.push(...e.lines);
    if (!e.decision.allowed) return { steps, refused: { status: 403, message: `RBAC: access denied (${e.decision.reason})` } };
    steps.push(`authorization: ${e.decision.reason}`);
    return { steps };
  }

  private authorize(req: DownstreamRequest, ctx: TunnelContext, service: string, path: string, auth: RequestAuth | undefined): Refusal | undefined {
    const a = this.attrs;
    a.method = req.method ?? 'GET';
    a.path = path;
    a.host = hostOf(req, ctx.service);
    a.headers = req.headers;
    a.sourceIp = ctx.sourceIp ?? '';
    a.sourcePrincipal = principal(ctx.peer);
    a.sourceNamespace = ctx.peer.namespace;
    a.destinationIp = ctx.service.clusterIP ?? '';
    a.destinationPort = ctx.port;
    if (auth) a.auth = auth;
    else delete a.auth;
    const d: HttpDecision = this.authorizer.authorize(service, a);
    a.headers = {};
    if (d.allowed) return undefined;
    return this.refused('authz', { status: 403, flag: '-', message: 'RBAC: access denied', ...(d.policy ? { policy: d.policy } : {}) });
  }

  private refused(kind: 'authn' | 'authz' | 'ratelimit', r: Refusal): Refusal {
    this.o.onRefusal?.(kind, r);
    return r;
  }
}

/**
 * `namespace/name` of a Service, the key policies and limits are kept by: made once per entry (a
 * snapshot replaces the entries), not twice per request. A pod addressed directly has a key no
 * Service can have: only what is attached to the waypoint (or its class) applies to it.
 */
const serviceKeys = new WeakMap<ServiceEntry, string>();
export const podAddressedKey = '(addressed to a pod)';
function serviceKey(s: ServiceEntry): string {
  let key = serviceKeys.get(s);
  if (key === undefined) serviceKeys.set(s, (key = addressedPod(s) ? podAddressedKey : `${s.namespace}/${s.name}`));
  return key;
}

function hostOf(req: DownstreamRequest, service: ServiceEntry): string {
  return (req.headers[':authority'] as string | undefined) ?? req.headers.host ?? serviceHostname(service);
}
