// Choosing the rule for a request: entries are put in the spec's precedence order once per config
// version, so a request walks them and takes the first that matches. No regex is built and no
// string is split per request, apart from a gRPC regex match on the service or method name.

import type { CompiledParent, GrpcMatchEntry, GrpcNameCondition, HeaderBag, HeaderCondition, HttpMatchEntry, MatchEntry, RequestView, RouteMatch } from './types.js';
import type { CompiledRoute } from './rules.js';

const pathRank = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const;

/**
 * HTTPRoute precedence (spec: HTTPRouteRule.matches): Exact path, then the longest PathPrefix, then
 * RegularExpression paths (the spec leaves their place to implementations; after every prefix, longer
 * patterns first, is Istio's choice and keeps migrated routes behaving the same), then a method
 * match, then more header matches, then more query parameter matches.
 */
function compareHttp(a: HttpMatchEntry, b: HttpMatchEntry): number {
  return (
    pathRank[a.pathKind] - pathRank[b.pathKind] ||
    b.path.length - a.path.length ||
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length ||
    b.query.length - a.query.length
  );
}

function nameChars(c: GrpcNameCondition | undefined): number {
  return c?.exact?.length ?? 0;
}

/**
 * GRPCRoute precedence (spec: GRPCRouteRule.matches): more characters in a matching service, then in
 * a matching method, then more header matches. Hostnames are not used in a mesh (GEP-1294). A regex
 * service or method counts no characters: the spec leaves regexes to implementations, and an exact
 * name says more than a pattern does.
 */
function compareGrpc(a: GrpcMatchEntry, b: GrpcMatchEntry): number {
  return (
    nameChars(b.service) - nameChars(a.service) ||
    Number(b.service !== undefined) - Number(a.service !== undefined) ||
    nameChars(b.method) - nameChars(a.method) ||
    Number(b.method !== undefined) - Number(a.method !== undefined) ||
    b.headers.length - a.headers.length
  );
}

/** Ties across routes: the oldest route, then `namespace/name` in alphabetical order; within a route, rule order. */
function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  if (a.created !== b.created) return a.created < b.created ? -1 : 1;
  const an = `${a.id.namespace}/${a.id.name}`;
  const bn = `${b.id.namespace}/${b.id.name}`;
  return an < bn ? -1 : an > bn ? 1 : 0;
}

/** The entries of these routes in the order a request tries them. */
export function orderEntries(routes: CompiledRoute[]): MatchEntry[] {
  const byRoute = new Map<MatchEntry, CompiledRoute>();
  for (const r of routes) for (const e of r.entries) byRoute.set(e, r);
  return [...byRoute.keys()].sort((a, b) => {
    const spec = a.protocol === 'http' ? compareHttp(a, b as HttpMatchEntry) : compareGrpc(a, b as GrpcMatchEntry);
    return spec || compareRoutes(byRoute.get(a)!, byRoute.get(b)!) || a.rule.index - b.rule.index || a.matchIndex - b.matchIndex;
  });
}

/** The entry that wins for this request, or undefined (the proxy answers 404, or gRPC UNIMPLEMENTED). */
export function matchRequest(parent: CompiledParent, req: RequestView): RouteMatch | undefined {
  const target = req.path;
  // Origin-form is the norm; a client that speaks to a proxy may send absolute-form (RFC 9112 3.2.2).
  const start = target.charCodeAt(0) === 47 ? 0 : absolutePathStart(target);
  const q = target.indexOf('?', start);
  const end = q < 0 ? target.length : q;
  const entries = parent.entries;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (e.protocol === 'http' ? httpMatches(e, req, target, start, end, q) : grpcMatches(e, req, target, start, end)) return e;
  }
  return undefined;
}

function absolutePathStart(target: string): number {
  const scheme = target.indexOf('://');
  if (scheme < 0) return 0;
  const slash = target.indexOf('/', scheme + 3);
  return slash < 0 ? target.length : slash;
}

/** The request's path without the query, as the router sees it (origin-form or absolute-form). */
export function requestPath(target: string): { path: string; query: string } {
  const start = target.charCodeAt(0) === 47 ? 0 : absolutePathStart(target);
  const q = target.indexOf('?', start);
  const path = q < 0 ? target.slice(start) : target.slice(start, q);
  return { path: path || '/', query: q < 0 ? '' : target.slice(q) };
}

function httpMatches(e: HttpMatchEntry, req: RequestView, target: string, start: number, end: number, q: number): boolean {
  const len = end - start;
  switch (e.pathKind) {
    case 'Exact':
      if (len !== e.path.length || !target.startsWith(e.path, start)) return false;
      break;
    case 'PathPrefix': {
      // By path segment: `/foo` matches `/foo` and `/foo/bar`, never `/foobar`.
      const p = e.path;
      if (p.length > 0 && (len < p.length || !target.startsWith(p, start) || (len > p.length && target.charCodeAt(start + p.length) !== 47))) return false;
      break;
    }
    case 'RegularExpression':
      if (!e.pathRegex!.test(start === 0 && end === target.length ? target : target.slice(start, end))) return false;
      break;
  }
  if (e.method !== undefined && req.method !== e.method) return false;
  for (let i = 0; i < e.headers.length; i++) if (!valueMatches(e.headers[i]!, headerValue(req.headers, e.headers[i]!.name))) return false;
  for (let i = 0; i < e.query.length; i++) {
    const c = e.query[i]!;
    if (q < 0 || !valueMatches(c, queryValue(target, q + 1, c.name))) return false;
  }
  return true;
}

function valueMatches(c: HeaderCondition, value: string | undefined): boolean {
  if (value === undefined) return false;
  return c.exact !== undefined ? value === c.exact : c.regex!.test(value);
}

function headerValue(headers: HeaderBag, name: string): string | undefined {
  let v = headers[name];
  // HTTP/2 carries the host as :authority; node:http2 does not always add a host header.
  if (v === undefined && name === 'host') v = headers[':authority'];
  if (v === undefined || typeof v === 'string') return v;
  return v.join(',');
}

/**
 * The first value of a query parameter (the spec leaves repeats to implementations and recommends
 * the first), percent-decoded as a form would be. Names compare as written, case-sensitively.
 */
export function queryValue(target: string, from: number, name: string): string | undefined {
  let i = from;
  const end = target.length;
  while (i <= end) {
    let amp = target.indexOf('&', i);
    if (amp < 0) amp = end;
    const eq = target.indexOf('=', i);
    const nameEnd = eq >= 0 && eq < amp ? eq : amp;
    if (nameEnd - i === name.length && target.startsWith(name, i)) return decodeQuery(nameEnd === amp ? '' : target.slice(nameEnd + 1, amp));
    i = amp + 1;
  }
  return undefined;
}

function decodeQuery(raw: string): string {
  if (raw.indexOf('%') < 0 && raw.indexOf('+') < 0) return raw;
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

function grpcMatches(e: GrpcMatchEntry, req: RequestView, target: string, start: number, end: number): boolean {
  if (e.service !== undefined || e.method !== undefined) {
    // A gRPC request's path is /<package.Service>/<Method>.
    const slash = target.indexOf('/', start + 1);
    if (slash < 0 || slash >= end) return false;
    if (e.service !== undefined && !nameMatches(e.service, target, start + 1, slash)) return false;
    if (e.method !== undefined && !nameMatches(e.method, target, slash + 1, end)) return false;
  }
  for (let i = 0; i < e.headers.length; i++) if (!valueMatches(e.headers[i]!, headerValue(req.headers, e.headers[i]!.name))) return false;
  return true;
}

function nameMatches(c: GrpcNameCondition, target: string, from: number, to: number): boolean {
  if (c.exact !== undefined) return to - from === c.exact.length && target.startsWith(c.exact, from);
  return c.regex!.test(target.slice(from, to));
}

/** Whether a request is gRPC (content-type application/grpc, +proto, +json, ...), for the proxy's error replies. */
export function isGrpcRequest(headers: HeaderBag): boolean {
  const ct = headers['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc') && (ct.length === 16 || ct.charCodeAt(16) === 43 || ct.charCodeAt(16) === 59);
}
