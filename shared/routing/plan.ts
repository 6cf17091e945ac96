// What the proxy does with a matched request: redirect it, or forward it to one backend with its
// headers, path and host rewritten, mirrors chosen and response header edits to apply. Everything here
// was compiled with the rule; per request only the Location, the rewritten path and the plan remain.

import { pickBackend } from './backends.js';
import { requestPath } from './match.js';
import type { CompiledBackend, ExtensionRef, FilterSet, HeaderBag, HeaderModifier, MirrorFilter, PathModifier, RedirectFilter, RequestView, RetryPolicy, RouteMatch, Timeouts } from './types.js';

export interface RequestPlan {
  /** Answer with this status and Location instead of forwarding. */
  redirect?: { status: number; location: string };
  /** Answer with this status instead of forwarding: no backend, every weight 0, or an invalid backend drawn. */
  failure?: { status: 500; message: string };
  /** Where to forward; undefined with `redirect` or `failure`. */
  backend?: CompiledBackend;
  /** Request header edits, in filter order; apply with editHeaders. */
  headers: readonly HeaderModifier[];
  /** The rewritten request-target (query kept), when a URLRewrite changes the path. */
  path?: string;
  /** The rewritten Host (and :authority), when a URLRewrite changes the hostname. */
  host?: string;
  /** Mirrors drawn for this request (each by its own share); send copies there and ignore their answers. */
  mirrors: readonly MirrorFilter[];
  /** Response header edits, in filter order; apply with editHeaders to the backend's response. */
  responseHeaders: readonly HeaderModifier[];
  /** ExtensionRef filters in order, for the proxy to resolve (ambit.dev FaultInjection). */
  extensions: readonly ExtensionRef[];
  timeouts: Timeouts;
  retry?: RetryPolicy;
}

export interface PlanOptions {
  /** The scheme the client used; in the mesh, HTTP inside HBONE. */
  scheme?: 'http' | 'https';
  /** The Service port the request came to: a redirect keeps it unless told otherwise (spec: the listener port). */
  port: number;
  /** Source of randomness for the backend draw and the mirrors' shares. */
  random?: () => number;
  /** A backend drawn already (pickBackend), e.g. to retry elsewhere; drawn here when not given. */
  backend?: CompiledBackend;
}

const none: readonly never[] = Object.freeze([]);

export function applyRequestFilters(m: RouteMatch, req: RequestView, options: PlanOptions): RequestPlan {
  const rule = m.rule;
  const random = options.random ?? Math.random;
  const plan: RequestPlan = { headers: none, mirrors: none, responseHeaders: none, extensions: none, timeouts: rule.timeouts, retry: rule.retry };
  // A rule that redirects has nothing to forward to; its backendRefs, if any, are not drawn.
  if (rule.filters.redirect) return redirectPlan(plan, rule.filters, rule.filters.redirect, req, options);
  const backend = options.backend ?? pickBackend(rule, random);
  if (!backend) {
    plan.failure = { status: 500, message: rule.backends.length === 0 ? 'the matched rule has no backendRefs' : 'every backendRef of the matched rule has weight 0' };
    return withFilters(plan, rule.filters, random);
  }
  if (backend.invalid) {
    plan.failure = { status: 500, message: backend.invalid.message };
    return withFilters(plan, rule.filters, random);
  }
  const filters = backend.effective;
  if (filters.redirect) return redirectPlan(plan, filters, filters.redirect, req, options);
  plan.backend = backend;
  withFilters(plan, filters, random);
  const rewrite = filters.rewrite;
  if (rewrite) {
    if (rewrite.hostname !== undefined) plan.host = rewrite.hostname;
    if (rewrite.path) {
      const { path, query } = requestPath(req.path);
      plan.path = modifyPath(path, rewrite.path) + query;
    }
  }
  return plan;
}

function withFilters(plan: RequestPlan, filters: FilterSet, random: () => number): RequestPlan {
  plan.headers = filters.requestHeaders;
  plan.responseHeaders = filters.responseHeaders;
  plan.extensions = filters.extensions;
  plan.mirrors = drawMirrors(filters.mirrors, random);
  return plan;
}

function drawMirrors(mirrors: readonly MirrorFilter[], random: () => number): readonly MirrorFilter[] {
  if (mirrors.length === 0) return none;
  if (mirrors.every((m) => m.fraction >= 1)) return mirrors;
  return mirrors.filter((m) => m.fraction >= 1 || random() < m.fraction);
}

function redirectPlan(plan: RequestPlan, filters: FilterSet, r: RedirectFilter, req: RequestView, options: PlanOptions): RequestPlan {
  // Response header modifiers still shape the redirect response; nothing is sent anywhere.
  plan.responseHeaders = filters.responseHeaders;
  plan.redirect = { status: r.statusCode, location: redirectLocation(r, req, options) };
  return plan;
}

/**
 * The Location of a redirect (spec: HTTPRequestRedirectFilter). Scheme and hostname default to the
 * request's. The port is the filter's; else the well-known port of a scheme the filter sets; else
 * the port the request came to. Port 80 with http and 443 with https are left out.
 */
export function redirectLocation(r: RedirectFilter, req: RequestView, options: Pick<PlanOptions, 'scheme' | 'port'>): string {
  const scheme = r.scheme ?? options.scheme ?? 'http';
  const host = r.hostname ?? hostWithoutPort(hostHeader(req.headers));
  const port = r.port ?? (r.scheme ? (r.scheme === 'https' ? 443 : 80) : options.port);
  const showPort = !((scheme === 'http' && port === 80) || (scheme === 'https' && port === 443));
  const { path, query } = requestPath(req.path);
  const newPath = r.path ? modifyPath(path, r.path) : path;
  return `${scheme}://${host}${showPort ? `:${port}` : ''}${newPath}${query}`;
}

function hostHeader(headers: HeaderBag): string {
  const h = headers.host ?? headers[':authority'];
  return (Array.isArray(h) ? h[0] : h) ?? '';
}

/** `echo:8080` -> `echo`; `[fd00::1]:80` -> `[fd00::1]`. */
export function hostWithoutPort(host: string): string {
  const colon = host.lastIndexOf(':');
  if (colon < 0 || host.indexOf(']', colon) >= 0) return host;
  return host.slice(0, colon);
}

/**
 * A path after ReplaceFullPath or ReplacePrefixMatch. Prefixes are replaced by path segment with a
 * trailing `/` ignored, so for prefix `/foo`: `/foo/bar` + `/xyz` -> `/xyz/bar`, `/foo/` + `/xyz` ->
 * `/xyz/`, `/foo` + `` -> `/`, and `/prefix/one/three` with prefix `/prefix/one` replaced by `/` ->
 * `/three` (the table in the spec's HTTPPathModifier.replacePrefixMatch).
 */
export function modifyPath(path: string, mod: PathModifier): string {
  if (mod.type === 'ReplaceFullPath') return mod.value;
  const rest = path.slice(mod.prefix.length);
  const replacement = mod.value.endsWith('/') ? mod.value.slice(0, -1) : mod.value;
  const out = replacement + rest;
  // Empty (a prefix replaced by `/` or nothing, on the bare prefix) or relative: make it absolute.
  return out.charCodeAt(0) === 47 ? out : `/${out}`;
}

/**
 * Applies header modifiers to a header bag (lower-case names, as node:http gives them), in place.
 * In each modifier: set overwrites, add appends to an existing value after a comma (what the Gateway
 * API conformance suite expects: `some-value,added-value`), remove deletes.
 */
export function editHeaders(headers: HeaderBag, modifiers: readonly HeaderModifier[]): void {
  for (let i = 0; i < modifiers.length; i++) {
    const mod = modifiers[i]!;
    for (let j = 0; j < mod.set.length; j++) headers[mod.set[j]![0]] = mod.set[j]![1];
    for (let j = 0; j < mod.add.length; j++) {
      const [name, value] = mod.add[j]!;
      const old = headers[name];
      if (old === undefined) headers[name] = value;
      // Headers node keeps as a list (set-cookie) stay a list.
      else if (Array.isArray(old)) old.push(value);
      else headers[name] = `${old},${value}`;
    }
    for (let j = 0; j < mod.remove.length; j++) delete headers[mod.remove[j]!];
  }
}
