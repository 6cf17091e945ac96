// The matchers of the waypoint's L7 AuthorizationPolicy: one Check per field (`methods`, `notPaths`,
// each `when` condition), compiled once from its values, and the request facts they read. Which rule
// a Check belongs to, and what a policy does when one matches, is rules.ts's and authorization.ts's.

import { serviceAccountForm, serviceAccountSuffix } from '../authorization-rules.js';
import { type IpRange, ipRange, ipv4, matchesServiceAccount, matchesString, port, type StringMatch, stringMatch } from '../match.js';
import { isRecord } from '../spec.js';
import { matchesPath, type PathMatcher, pathMatcher } from './path.js';
import type { HttpRequestAttributes } from './types.js';

/** What Checks read, prepared once per request (and reused: the waypoint decides one request at a time). */
export interface RequestFacts {
  a: HttpRequestAttributes;
  /** The Host lower-cased: Istio matches `hosts` case-insensitively. */
  host: string;
  /** IPv4 as an unsigned integer, -1 when not one. */
  sourceIp: number;
  destinationIp: number;
}

export function prepareFacts(f: RequestFacts, a: HttpRequestAttributes): void {
  f.a = a;
  f.host = a.host.toLowerCase();
  f.sourceIp = ipv4(a.sourceIp);
  f.destinationIp = ipv4(a.destinationIp);
}

/**
 * One field of a rule. It holds when some value matches, or, for a `not` field (`negate`), when none
 * does (Istio: "values: a list of allowed values", "notValues: a list of negative match of values").
 */
export interface Check {
  /** `methods`, `notPaths`, `request.headers[x-user] notValues`. */
  readonly field: string;
  /** The values as written that were compiled. */
  readonly values: readonly string[];
  readonly negate: boolean;
  /** Whether some value matches. */
  matches(f: RequestFacts): boolean;
  /** The request's value, for explain. */
  seen(f: RequestFacts): string;
}

export function holds(c: Check, f: RequestFacts): boolean {
  return c.matches(f) !== c.negate;
}

/** What ambit cannot honour or what is invalid, by field path (`spec.rules[0].to[0].operation.paths[1]`). */
export interface FieldProblem {
  field: string;
  message: string;
  /** The value or field was left out of the compiled rule; otherwise the rule is evaluated as written. */
  dropped: boolean;
}

/** How one attribute's values are compiled and matched. */
interface Attribute<M> {
  /** The matcher of one value, or why it is not one. */
  read(text: string): M | { error: string };
  any(ms: readonly M[], f: RequestFacts): boolean;
  seen(f: RequestFacts): string;
}

const quote = JSON.stringify;

function anyOf<T>(ms: readonly T[], test: (m: T) => boolean): boolean {
  for (let i = 0; i < ms.length; i++) if (test(ms[i]!)) return true;
  return false;
}

/** Istio's string match on a value of the request; `*` is any non-empty value. */
function stringAttribute(get: (f: RequestFacts) => string, lowerCase = false): Attribute<StringMatch> {
  return {
    read: (text) => stringMatch(lowerCase ? text.toLowerCase() : text),
    any: (ms, f) => {
      const v = get(f);
      return anyOf(ms, (m) => matchesString(m, v));
    },
    seen: (f) => quote(get(f)),
  };
}

function ipAttribute(get: (f: RequestFacts) => number, text: (f: RequestFacts) => string): Attribute<IpRange> {
  return {
    read: (t) => ipRange(t) ?? { error: `${quote(t)} is not an IPv4 address or CIDR block (ambit is IPv4-only)` },
    any: (ms, f) => {
      const ip = get(f);
      return anyOf(ms, (r) => ip >= r.first && ip <= r.last);
    },
    seen: (f) => quote(text(f)),
  };
}

const destinationPort: Attribute<number> = {
  read: (t) => port(t) ?? { error: `${quote(t)} is not a port number (0-65535)` },
  any: (ms, f) => ms.includes(f.a.destinationPort),
  seen: (f) => String(f.a.destinationPort),
};

const requestPath: Attribute<PathMatcher> = {
  read: pathMatcher,
  any: (ms, f) => anyOf(ms, (m) => matchesPath(m, f.a.path)),
  seen: (f) => quote(f.a.path),
};

const sourcePrincipal: Attribute<StringMatch> = {
  ...stringAttribute((f) => f.a.sourcePrincipal),
  // istiod prefixes every value with spiffe://, so one written with it never matches there.
  read: (t) => (t.startsWith('spiffe://') ? { error: `${quote(t)}: Istio's principals omit spiffe:// (cluster.local/ns/<namespace>/sa/<name>)` } : stringMatch(t)),
};
const sourceIp = ipAttribute((f) => f.sourceIp, (f) => f.a.sourceIp);

const sourceNamespace: Attribute<StringMatch> = {
  ...stringAttribute((f) => f.a.sourceNamespace),
  // istiod turns a namespace into a regex on the principal, so `*` may stand anywhere there; ambit's
  // string match takes it at the start or end only, as every other field does.
  read: (t) => (t.length > 1 && t.slice(1, -1).includes('*') ? { error: `${quote(t)}: ambit matches * only at the start or end` } : stringMatch(t)),
};

// The trust domain is the principal up to its first '/' (`cluster.local/ns/x/sa/y`).
const trustDomain = stringAttribute((f) => {
  const p = f.a.sourcePrincipal;
  const slash = p.indexOf('/');
  return slash < 0 ? '' : p.slice(0, slash);
});

function serviceAccounts(policyNamespace: string): Attribute<string> {
  return {
    read: (t) => serviceAccountSuffix(t, policyNamespace) ?? { error: `${quote(t)} is not ${serviceAccountForm}` },
    any: (ms, f) => anyOf(ms, (s) => matchesServiceAccount(s, f.a.sourcePrincipal)),
    seen: (f) => quote(f.a.sourcePrincipal),
  };
}

/** `iss/sub`, matched as istiod's requestPrincipalGenerator: issuer and subject each on their own. */
interface RequestPrincipalMatch {
  issuer: StringMatch;
  subject: StringMatch;
}

const presence: StringMatch = { kind: 'presence', value: '' };

// The issuer is everything before the last '/' (an issuer may be a URL). `*` alone is any principal;
// a leading `*` is a suffix of the issuer (or, without '/', of the subject); a trailing `*` a prefix of
// the subject (or, without '/', of the issuer).
function requestPrincipalMatch(value: string): RequestPrincipalMatch {
  const slash = value.lastIndexOf('/');
  const iss = slash < 0 ? value : value.slice(0, slash);
  const sub = slash < 0 ? '' : value.slice(slash + 1);
  if (value === '*') return { issuer: presence, subject: presence };
  if (value.startsWith('*')) {
    if (slash < 0) return { issuer: presence, subject: { kind: 'suffix', value: value.slice(1) } };
    return { issuer: iss === '*' ? presence : { kind: 'suffix', value: iss.slice(1) }, subject: { kind: 'exact', value: sub } };
  }
  if (value.endsWith('*')) {
    if (slash < 0) return { issuer: { kind: 'prefix', value: value.slice(0, -1) }, subject: presence };
    return { issuer: { kind: 'exact', value: iss }, subject: sub === '*' ? presence : { kind: 'prefix', value: sub.slice(0, -1) } };
  }
  return { issuer: { kind: 'exact', value: iss }, subject: { kind: 'exact', value: sub } };
}

const noJwt = '(no JWT)';

const requestPrincipal: Attribute<RequestPrincipalMatch> = {
  read: requestPrincipalMatch,
  any: (ms, f) => {
    const auth = f.a.auth;
    return auth !== undefined && anyOf(ms, (m) => matchesString(m.issuer, auth.issuer) && matchesString(m.subject, auth.subject));
  },
  seen: (f) => (f.a.auth ? quote(f.a.auth.principal) : noJwt),
};

/** A claim (`aud`, `azp`, any `claims[a][b]`) matches when it is a string that matches, or a list with one. */
function claimMatches(ms: readonly StringMatch[], v: unknown): boolean {
  if (typeof v === 'string') return anyOf(ms, (m) => matchesString(m, v));
  // Istio's conditions reference: "only support claim of type string or list of string"; Envoy's
  // string matcher never matches a number or a boolean, so neither does ambit.
  if (Array.isArray(v)) return anyOf(v, (e) => typeof e === 'string' && anyOf(ms, (m) => matchesString(m, e)));
  return false;
}

function claimAttribute(get: (f: RequestFacts) => unknown): Attribute<StringMatch> {
  return {
    read: stringMatch,
    any: (ms, f) => f.a.auth !== undefined && claimMatches(ms, get(f)),
    seen: (f) => (f.a.auth ? (quote(get(f)) ?? '(absent)') : noJwt),
  };
}

function claim(path: readonly string[]): (f: RequestFacts) => unknown {
  return (f) => {
    let v: unknown = f.a.auth?.claims;
    for (let i = 0; i < path.length && v !== undefined; i++) v = isRecord(v) ? v[path[i]!] : undefined;
    return v;
  };
}

/**
 * A request header's value, several joined with ',' as Envoy does ("Istio will merge duplicate headers
 * to a single header by concatenating all values using comma as a separator"): pass Node's
 * `req.headersDistinct` for that; Node's `req.headers` joins most duplicates with ', ' and keeps only
 * the first of some (host, authorization...).
 */
function headerValue(f: RequestFacts, name: string): string | undefined {
  const v = f.a.headers[name];
  return v === undefined || typeof v === 'string' ? v : v.join(',');
}

// Envoy's header matcher: `*` is present_match, true for a header that is sent even empty.
function headerAttribute(name: string): Attribute<StringMatch> {
  return {
    read: stringMatch,
    any: (ms, f) => {
      const v = headerValue(f, name);
      return v !== undefined && anyOf(ms, (m) => (m.kind === 'presence' ? true : matchesString(m, v)));
    },
    seen: (f) => quote(headerValue(f, name)) ?? '(absent)',
  };
}

/** The attribute of each `from.source` and `to.operation` field, its `not` form, and its `when` key. */
const sourceFields: Record<string, (ns: string) => Attribute<unknown>> = {
  principals: () => sourcePrincipal,
  requestPrincipals: () => requestPrincipal,
  namespaces: () => sourceNamespace,
  serviceAccounts,
  trustDomains: () => trustDomain,
  ipBlocks: () => sourceIp,
  // remote.ip is the client address from X-Forwarded-For or the PROXY protocol, as far as trusted
  // proxies allow; with Istio's default of none (meshConfig numTrustedProxies 0) it is the peer's
  // address, and ambit's waypoint trusts no X-Forwarded-For, so it is source.ip.
  remoteIpBlocks: () => sourceIp,
};

const operationFields: Record<string, Attribute<unknown>> = {
  methods: stringAttribute((f) => f.a.method),
  // The Host as sent, port included (Envoy's :authority): Istio's security best practices advise
  // `example.com` and `example.com:*` both.
  hosts: stringAttribute((f) => f.host, true),
  paths: requestPath,
  ports: destinationPort,
};

const notName = (field: string) => `not${field[0]!.toUpperCase()}${field.slice(1)}`;
export const sourceFieldNames = Object.keys(sourceFields).flatMap((k) => [k, notName(k)]);
export const operationFieldNames = Object.keys(operationFields).flatMap((k) => [k, notName(k)]);

/** The attribute of a `when` key, or why ambit does not evaluate it. */
export function conditionAttribute(key: string, policyNamespace: string): Attribute<unknown> | { error: string } {
  const bracket = key.indexOf('[');
  const base = bracket < 0 ? key : key.slice(0, bracket);
  const names = bracket < 0 ? undefined : bracketNames(key.slice(bracket));
  if (bracket >= 0 && !names) return { error: `bad key ${quote(key)}: should be ${base}[name]` };
  switch (base) {
    case 'request.headers':
      if (names?.length === 1) return headerAttribute(names[0]!.toLowerCase());
      return { error: `bad key ${quote(key)}: should be request.headers[name]` };
    case 'request.auth.claims':
      if (names) return claimAttribute(claim(names));
      return { error: `bad key ${quote(key)}: should be request.auth.claims[name] or request.auth.claims[a][b]` };
  }
  if (names) return { error: `unknown attribute ${quote(key)}` };
  switch (key) {
    case 'source.ip':
    case 'remote.ip':
      return sourceIp;
    case 'source.namespace':
      return sourceNamespace;
    case 'source.principal':
      return sourcePrincipal;
    case 'source.serviceAccount':
      return serviceAccounts(policyNamespace);
    case 'source.trustDomain':
      return trustDomain;
    case 'request.auth.principal':
      return requestPrincipal;
    case 'request.auth.audiences':
      return claimAttribute((f) => f.a.auth?.audiences);
    case 'request.auth.presenter':
      return claimAttribute((f) => f.a.auth?.presenter);
    case 'destination.ip':
      return ipAttribute((f) => f.destinationIp, (f) => f.a.destinationIp);
    case 'destination.port':
      return destinationPort;
    // The SNI of the connection the waypoint received: HBONE's inner stream carries none.
    case 'connection.sni':
      return stringAttribute(() => '');
  }
  if (key.startsWith('experimental.envoy.filters.')) return { error: `${key} reads Envoy filter metadata, which ambit's waypoint does not have` };
  if (key === 'destination.namespace' || key === 'destination.name' || key === 'destination.user' || base === 'destination.labels') {
    return { error: `${key} is not an attribute of security.istio.io/v1 (use the policy's namespace, targetRefs or selector)` };
  }
  return { error: `unknown attribute ${quote(key)}` };
}

// `[a]` or `[a][b]...` (istiod's extractNameInNestedBrackets), each name non-empty.
function bracketNames(s: string): string[] | undefined {
  if (!/^(\[[^[\]]+\])+$/.test(s)) return undefined;
  return s.slice(1, -1).split('][');
}

/**
 * A Check from a list of values, leaving out each value that does not compile (reported at
 * `where[i]`); undefined when no value is left. `values` must be a list of strings.
 */
export function compileCheck(field: string, values: unknown, negate: boolean, attribute: Attribute<unknown>, where: string, problems: FieldProblem[]): Check | undefined {
  if (values === undefined || values === null) return undefined;
  if (!Array.isArray(values)) {
    problems.push({ field: where, message: 'must be a list of strings', dropped: true });
    return undefined;
  }
  const written: string[] = [];
  const matchers: unknown[] = [];
  values.forEach((v, i) => {
    if (typeof v !== 'string' || v === '') {
      problems.push({ field: `${where}[${i}]`, message: 'must be a non-empty string', dropped: true });
      return;
    }
    const m = attribute.read(v);
    if (isRecord(m) && 'error' in m && typeof m.error === 'string') problems.push({ field: `${where}[${i}]`, message: m.error, dropped: true });
    else {
      written.push(v);
      matchers.push(m);
    }
  });
  if (matchers.length === 0) return undefined;
  return { field, values: written, negate, matches: (f) => attribute.any(matchers, f), seen: attribute.seen };
}

/** The Checks of one `from[].source` or `to[].operation` object. */
export function compileFields(kind: 'source' | 'operation', obj: Record<string, unknown>, policyNamespace: string, where: string, problems: FieldProblem[]): Check[] {
  const checks: Check[] = [];
  for (const [field, values] of Object.entries(obj)) {
    const negate = /^not[A-Z]/.test(field);
    const positive = negate ? field[3]!.toLowerCase() + field.slice(4) : field;
    const attribute = kind === 'source' ? sourceFields[positive]?.(policyNamespace) : operationFields[positive];
    if (!attribute || !Object.hasOwn(kind === 'source' ? sourceFields : operationFields, positive)) {
      problems.push({ field: `${where}.${field}`, message: `is not a field of ${kind} that ambit knows`, dropped: true });
      continue;
    }
    const check = compileCheck(field, values, negate, attribute, `${where}.${field}`, problems);
    if (check) checks.push(check);
  }
  return checks;
}
