// Compiling one route's rules: each match becomes a MatchEntry with its regexes built once, each
// backendRef a CompiledBackend with its filters merged. A rule the spec calls invalid (a bad regex,
// incompatible filters) is dropped and reported; the route's other rules still apply.

import { type BackendRefSpec, resolveBackendRef } from './backends.js';
import { parseGatewayDuration } from './duration.js';
import { compileFilters, type FilterProblem, type FilterSpec, mergeFilters, noFilters } from './filters.js';
import type {
  CompiledBackend,
  CompiledRule,
  GrpcMatchEntry,
  GrpcNameCondition,
  HeaderCondition,
  HttpMatchEntry,
  MatchEntry,
  QueryCondition,
  RetryPolicy,
  RouteId,
  RouteObject,
  RouteProblem,
  ServiceLookup,
  Timeouts,
} from './types.js';

interface ValueMatchSpec {
  type?: string;
  name: string;
  value: string;
}
interface HttpMatchSpec {
  path?: { type?: string; value?: string };
  headers?: ValueMatchSpec[];
  queryParams?: ValueMatchSpec[];
  method?: string;
}
interface GrpcMatchSpec {
  method?: { type?: string; service?: string; method?: string };
  headers?: ValueMatchSpec[];
}
interface RuleSpec {
  name?: string;
  matches?: (HttpMatchSpec & GrpcMatchSpec)[];
  filters?: FilterSpec[];
  backendRefs?: (BackendRefSpec & { weight?: number; filters?: FilterSpec[] })[];
  timeouts?: { request?: string; backendRequest?: string };
  retry?: { codes?: number[]; attempts?: number; backoff?: string };
}

export interface CompiledRoute {
  id: RouteId;
  /** Creation time in ms; routes without one sort after those with one. */
  created: number;
  rules: CompiledRule[];
  /** Every match of every kept rule, in rule then match order (not yet by precedence). */
  entries: MatchEntry[];
  /** Rules dropped as invalid, by index in spec.rules. */
  dropped: number[];
  ruleCount: number;
  problems: RouteProblem[];
}

export function compileRoute(route: RouteObject, services: ServiceLookup): CompiledRoute {
  const id: RouteId = { kind: route.kind, namespace: route.namespace, name: route.name };
  const created = route.creationTimestamp ? Date.parse(route.creationTimestamp) : NaN;
  // No rules is the API's default rule: match everything, forward nowhere (500).
  const written = (route.spec as { rules?: RuleSpec[] }).rules;
  const specs: RuleSpec[] = written && written.length > 0 ? written : [{}];
  const out: CompiledRoute = { id, created: Number.isNaN(created) ? Infinity : created, rules: [], entries: [], dropped: [], ruleCount: specs.length, problems: [] };
  specs.forEach((spec, index) => {
    const fatal: FilterProblem[] = [];
    const refs: FilterProblem[] = [];
    const field = `spec.rules[${index}]`;
    const rule: CompiledRule = { route: id, index, name: spec.name, filters: noFilters, backends: [], totalWeight: 0, timeouts: {} };
    const entries = route.kind === 'GRPCRoute' ? grpcEntries(spec, rule, field, fatal) : httpEntries(spec, rule, field, fatal);
    const onlyPrefix = route.kind === 'HTTPRoute' ? soleprefix(entries as HttpMatchEntry[]) : undefined;
    const ctx = { routeNamespace: route.namespace, services, onlyPrefix };
    const filters = compileFilters(spec.filters, { ...ctx, field: `${field}.filters` });
    fatal.push(...filters.fatal);
    refs.push(...filters.refs);
    rule.filters = filters.set;
    const backends: CompiledBackend[] = [];
    (spec.backendRefs ?? []).forEach((ref, j) => {
      const { target, invalid } = resolveBackendRef(ref, route.namespace, services);
      if (invalid) refs.push({ field: `${field}.backendRefs[${j}]`, reason: invalid.reason, message: invalid.message });
      const own = compileFilters(ref.filters, { ...ctx, field: `${field}.backendRefs[${j}].filters` });
      fatal.push(...own.fatal);
      refs.push(...own.refs);
      const backend: CompiledBackend = { ...target, weight: ref.weight ?? 1, filters: own.set, effective: mergeFilters(filters.set, own.set) };
      if (invalid) backend.invalid = invalid;
      backends.push(backend);
    });
    rule.backends = backends;
    rule.totalWeight = backends.reduce((sum, b) => sum + b.weight, 0);
    if (spec.timeouts) rule.timeouts = timeouts(spec.timeouts, `${field}.timeouts`, fatal);
    if (spec.retry) rule.retry = retry(spec.retry, `${field}.retry`, fatal);
    for (const p of [...fatal, ...refs]) out.problems.push({ route: id, rule: index, ...p });
    if (fatal.length > 0) {
      out.dropped.push(index);
      return;
    }
    out.rules.push(rule);
    out.entries.push(...entries);
  });
  return out;
}

/** The rule's one match when it is a PathPrefix (what ReplacePrefixMatch needs), else undefined. */
function soleprefix(entries: HttpMatchEntry[]): string | undefined {
  return entries.length === 1 && entries[0]!.pathKind === 'PathPrefix' ? entries[0]!.path : undefined;
}

/**
 * Regexes match the whole value (as Envoy and Istio do with RE2), in JavaScript's dialect. A pattern
 * JavaScript cannot compile is reported at compile time and its rule dropped.
 */
function wholeRegex(source: string, field: string, fatal: FilterProblem[]): RegExp | undefined {
  try {
    return new RegExp(`^(?:${source})$`);
  } catch (e) {
    fatal.push({ field, reason: 'UnsupportedValue', message: `${JSON.stringify(source)} is not a valid regular expression: ${(e as Error).message}` });
    return undefined;
  }
}

function valueConditions(specs: ValueMatchSpec[] | undefined, field: string, fatal: FilterProblem[], caseless: boolean): HeaderCondition[] {
  const out: HeaderCondition[] = [];
  const seen = new Set<string>();
  (specs ?? []).forEach((s, i) => {
    const name = caseless ? s.name.toLowerCase() : s.name;
    // The spec: when entries name the same header (or query parameter), only the first counts.
    if (seen.has(name)) return;
    seen.add(name);
    const type = s.type ?? 'Exact';
    if (type === 'Exact') out.push({ name, exact: s.value });
    else if (type === 'RegularExpression') {
      const regex = wholeRegex(s.value, `${field}[${i}].value`, fatal);
      if (regex) out.push({ name, regex });
    } else fatal.push({ field: `${field}[${i}].type`, reason: 'UnsupportedValue', message: `${JSON.stringify(type)} must be Exact or RegularExpression` });
  });
  return out;
}

/** A PathPrefix value as matched: no trailing `/`, so `/` alone becomes empty (matches every path). */
export function normalizePrefix(value: string): string {
  return value.endsWith('/') ? value.slice(0, -1) : value;
}

function httpEntries(spec: RuleSpec, rule: CompiledRule, field: string, fatal: FilterProblem[]): HttpMatchEntry[] {
  // No matches means one match of PathPrefix `/`, the API's default.
  const matches: HttpMatchSpec[] = spec.matches && spec.matches.length > 0 ? spec.matches : [{}];
  return matches.map((m, matchIndex) => {
    const mf = `${field}.matches[${matchIndex}]`;
    const type = m.path?.type ?? 'PathPrefix';
    const value = m.path?.value ?? '/';
    const entry: HttpMatchEntry = {
      protocol: 'http',
      rule,
      matchIndex,
      pathKind: 'PathPrefix',
      path: '',
      method: m.method,
      headers: valueConditions(m.headers, `${mf}.headers`, fatal, true),
      query: valueConditions(m.queryParams, `${mf}.queryParams`, fatal, false) as QueryCondition[],
    };
    if (type === 'Exact') {
      entry.pathKind = 'Exact';
      entry.path = value;
    } else if (type === 'PathPrefix') {
      entry.path = normalizePrefix(value);
    } else if (type === 'RegularExpression') {
      entry.pathKind = 'RegularExpression';
      entry.path = value;
      entry.pathRegex = wholeRegex(value, `${mf}.path.value`, fatal);
    } else {
      fatal.push({ field: `${mf}.path.type`, reason: 'UnsupportedValue', message: `${JSON.stringify(type)} must be Exact, PathPrefix or RegularExpression` });
    }
    return entry;
  });
}

function grpcName(type: string, value: string | undefined, field: string, fatal: FilterProblem[]): GrpcNameCondition | undefined {
  if (!value) return undefined;
  if (type === 'RegularExpression') {
    const regex = wholeRegex(value, field, fatal);
    return regex ? { regex } : undefined;
  }
  if (value.includes('/')) fatal.push({ field, reason: 'UnsupportedValue', message: 'an Exact service or method must not contain /' });
  return { exact: value };
}

function grpcEntries(spec: RuleSpec, rule: CompiledRule, field: string, fatal: FilterProblem[]): GrpcMatchEntry[] {
  // No matches means every gRPC request.
  const matches: GrpcMatchSpec[] = spec.matches && spec.matches.length > 0 ? spec.matches : [{}];
  return matches.map((m, matchIndex) => {
    const mf = `${field}.matches[${matchIndex}]`;
    const entry: GrpcMatchEntry = { protocol: 'grpc', rule, matchIndex, headers: valueConditions(m.headers, `${mf}.headers`, fatal, true) };
    if (m.method) {
      const type = m.method.type ?? 'Exact';
      if (type !== 'Exact' && type !== 'RegularExpression') {
        fatal.push({ field: `${mf}.method.type`, reason: 'UnsupportedValue', message: `${JSON.stringify(type)} must be Exact or RegularExpression` });
      } else if (!m.method.service && !m.method.method) {
        fatal.push({ field: `${mf}.method`, reason: 'UnsupportedValue', message: 'at least one of service and method must be a non-empty string' });
      } else {
        entry.service = grpcName(type, m.method.service, `${mf}.method.service`, fatal);
        entry.method = grpcName(type, m.method.method, `${mf}.method.method`, fatal);
      }
    }
    return entry;
  });
}

function duration(text: string | undefined, field: string, fatal: FilterProblem[]): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseGatewayDuration(text);
  if (ms === undefined) fatal.push({ field, reason: 'UnsupportedValue', message: `${JSON.stringify(text)} is not a duration such as 10s, 500ms or 1h2m` });
  return ms;
}

function timeouts(spec: NonNullable<RuleSpec['timeouts']>, field: string, fatal: FilterProblem[]): Timeouts {
  const out: Timeouts = {};
  const request = duration(spec.request, `${field}.request`, fatal);
  const backendRequest = duration(spec.backendRequest, `${field}.backendRequest`, fatal);
  if (request !== undefined) out.requestMs = request;
  if (backendRequest !== undefined) out.backendRequestMs = backendRequest;
  // The spec: backendRequest must be no more than request, which covers every try.
  if (request && backendRequest && backendRequest > request) {
    fatal.push({ field: `${field}.backendRequest`, reason: 'UnsupportedValue', message: `${spec.backendRequest} is longer than request (${spec.request})` });
  }
  return out;
}

function retry(spec: NonNullable<RuleSpec['retry']>, field: string, fatal: FilterProblem[]): RetryPolicy {
  const out: RetryPolicy = { attempts: spec.attempts ?? 1, codes: spec.codes ?? [] };
  const backoff = duration(spec.backoff, `${field}.backoff`, fatal);
  if (backoff !== undefined) out.backoffMs = backoff;
  return out;
}
