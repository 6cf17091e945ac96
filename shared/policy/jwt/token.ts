// Where a request carries its JWTs: the headers (value after a prefix), query parameters and cookies
// that the applicable rules name, merged as Envoy's jwt_authn extractor merges its providers' (one
// location, the issuers of every rule that names it), and taking a token out of the URL once verified.
// Which token is valid is verify.ts's concern.

import type { HeaderLocation, JwtRuleSpec } from './rules.js';

/** A location and the issuers whose rules name it: a token found there must be from one of them. */
export interface TokenLocation {
  name: string;
  issuers: Set<string>;
}

export interface HeaderTokenLocation extends TokenLocation {
  prefix: string;
}

export interface TokenLocations {
  headers: HeaderTokenLocation[];
  params: TokenLocation[];
  cookies: TokenLocation[];
}

export interface FoundToken {
  token: string;
  from: 'header' | 'param' | 'cookie';
  /** The header, parameter or cookie name. */
  name: string;
  issuers: ReadonlySet<string>;
}

/** The union of the rules' locations, each with the issuers that named it. */
export function mergeLocations(rules: readonly JwtRuleSpec[]): TokenLocations {
  const headers = new Map<string, HeaderTokenLocation>();
  const params = new Map<string, TokenLocation>();
  const cookies = new Map<string, TokenLocation>();
  const add = <T extends TokenLocation>(map: Map<string, T>, key: string, make: () => T, issuer: string) => {
    let loc = map.get(key);
    if (!loc) map.set(key, (loc = make()));
    loc.issuers.add(issuer);
  };
  for (const r of rules) {
    for (const h of r.fromHeaders) add(headers, `${h.name}\n${h.prefix}`, () => ({ name: h.name, prefix: h.prefix, issuers: new Set<string>() }), r.issuer);
    for (const p of r.fromParams) add(params, p, () => ({ name: p, issuers: new Set<string>() }), r.issuer);
    for (const c of r.fromCookies) add(cookies, c, () => ({ name: c, issuers: new Set<string>() }), r.issuer);
  }
  return { headers: [...headers.values()], params: [...params.values()], cookies: [...cookies.values()] };
}

// RFC 4648 section 5 alphabet plus '.', as Envoy's extractJWT: the token starts at the first of these
// after the prefix, so `Bearer  <jwt>` (two spaces) still yields the token.
const tokenStart = /[A-Za-z0-9\-_.]/g;

function afterPrefix(value: string, loc: HeaderLocation): string | undefined {
  if (loc.prefix === '') return value;
  // Envoy searches for the prefix anywhere in the value (case-sensitive), not only at its start.
  const at = value.indexOf(loc.prefix);
  if (at < 0) return undefined;
  tokenStart.lastIndex = at + loc.prefix.length;
  const m = tokenStart.exec(value);
  return m ? value.slice(m.index) : value;
}

/** The query of a URL path (after `?`, before `#`), or ''. */
function queryOf(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return '';
  const h = url.indexOf('#', q);
  return url.slice(q + 1, h < 0 ? undefined : h);
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/** RFC 6265 section 5.4 `Cookie` header pairs; the first of a name wins, surrounding quotes dropped (as Envoy). */
function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header])
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      if (eq < 0 || pair.slice(0, eq).trim() !== name) continue;
      const v = pair.slice(eq + 1).trim();
      return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
    }
  return undefined;
}

/**
 * Every token in the request at `locations`: headers first (each value of a repeated header), then the
 * first value of each query parameter, then cookies, as Envoy's extractor orders them.
 */
export function findTokens(locations: TokenLocations, headers: Record<string, string | string[] | undefined>, url: string): FoundToken[] {
  const found: FoundToken[] = [];
  for (const loc of locations.headers) {
    const value = headers[loc.name];
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      const token = afterPrefix(v, loc);
      if (token !== undefined) found.push({ token, from: 'header', name: loc.name, issuers: loc.issuers });
    }
  }
  if (locations.params.length > 0) {
    const query = queryOf(url);
    if (query !== '')
      for (const loc of locations.params) {
        for (const part of query.split('&')) {
          const eq = part.indexOf('=');
          if (decode(eq < 0 ? part : part.slice(0, eq)) !== loc.name) continue;
          found.push({ token: eq < 0 ? '' : decode(part.slice(eq + 1)), from: 'param', name: loc.name, issuers: loc.issuers });
          break;
        }
      }
  }
  for (const loc of locations.cookies) {
    const token = cookieValue(headers.cookie, loc.name);
    if (token !== undefined) found.push({ token, from: 'cookie', name: loc.name, issuers: loc.issuers });
  }
  return found;
}

/**
 * `url` without query parameter `name` (every occurrence), the other parameters left as sent; the `?`
 * goes when nothing is left. Envoy's JwtParamLocation::removeJwt does this for a verified token not
 * forwarded, so the backend never sees it in its access logs.
 */
export function removeParam(url: string, name: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const h = url.indexOf('#', q);
  const query = url.slice(q + 1, h < 0 ? undefined : h);
  const kept = query.split('&').filter((part) => {
    const eq = part.indexOf('=');
    return decode(eq < 0 ? part : part.slice(0, eq)) !== name;
  });
  return url.slice(0, q) + (kept.length > 0 ? `?${kept.join('&')}` : '') + (h < 0 ? '' : url.slice(h));
}
