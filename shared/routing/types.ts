// The shapes the routing engine takes in (Gateway API routes as the waypoint receives them, and a
// view of Services) and gives out (a compiled table, matched rules, per-request plans). Compiling,
// matching and planning live beside this file; sending requests is the proxy's concern.

/** An HTTPRoute or GRPCRoute whose spec the JSON schema (shared/resources/mesh-schemas.ts) already checked. */
export interface RouteObject {
  kind: 'HTTPRoute' | 'GRPCRoute';
  namespace: string;
  name: string;
  creationTimestamp?: string;
  generation?: number;
  spec: unknown;
}

export interface ServiceRef {
  namespace: string;
  name: string;
  ports: { name?: string; port: number }[];
}

export type ServiceLookup = (namespace: string, name: string) => ServiceRef | undefined;

/** Request headers as node:http gives them: lower-case names, repeated headers joined or listed. */
export type HeaderBag = Record<string, string | string[] | undefined>;

export interface RequestView {
  method: string;
  /** The raw request-target, query included (`/a/b?x=1`). */
  path: string;
  headers: HeaderBag;
}

/** Identifies a route in problems, statuses and access logs. */
export interface RouteId {
  kind: 'HTTPRoute' | 'GRPCRoute';
  namespace: string;
  name: string;
}

// ---- filters, compiled ----

/** One RequestHeaderModifier or ResponseHeaderModifier; names are lower-cased at compile time. */
export interface HeaderModifier {
  set: readonly (readonly [string, string])[];
  add: readonly (readonly [string, string])[];
  remove: readonly string[];
}

export interface PathModifier {
  type: 'ReplaceFullPath' | 'ReplacePrefixMatch';
  value: string;
  /**
   * For ReplacePrefixMatch: the rule's one PathPrefix match, trailing `/` dropped (`/` becomes
   * empty), known at compile time because the spec allows ReplacePrefixMatch only on such rules.
   */
  prefix: string;
}

export interface RedirectFilter {
  scheme?: 'http' | 'https';
  hostname?: string;
  path?: PathModifier;
  port?: number;
  statusCode: number;
}

export interface RewriteFilter {
  hostname?: string;
  path?: PathModifier;
}

export interface BackendTarget {
  namespace: string;
  name: string;
  /** Undefined when the backendRef names no port: the waypoint keeps the port the request came to. */
  port?: number;
}

export interface MirrorFilter {
  backend: BackendTarget;
  /** Share of requests mirrored, 0..1 (from `percent` or `fraction`; 1 when neither is given). */
  fraction: number;
}

/** An ExtensionRef filter as written; the proxy resolves it (ambit.dev FaultInjection). */
export interface ExtensionRef {
  group: string;
  kind: string;
  name: string;
}

/**
 * The filters of a rule (or of a rule and one of its backends together), grouped by what they act
 * on. Header modifiers keep their order; the spec allows at most one redirect or rewrite per rule.
 */
export interface FilterSet {
  requestHeaders: readonly HeaderModifier[];
  responseHeaders: readonly HeaderModifier[];
  redirect?: RedirectFilter;
  rewrite?: RewriteFilter;
  mirrors: readonly MirrorFilter[];
  extensions: readonly ExtensionRef[];
}

// ---- rules and backends, compiled ----

export interface InvalidBackend {
  reason: 'BackendNotFound' | 'InvalidKind';
  message: string;
}

export interface CompiledBackend extends BackendTarget {
  weight: number;
  /** This backend's own filters, as written. */
  filters: FilterSet;
  /** The rule's filters followed by this backend's: what a request sent here goes through. */
  effective: FilterSet;
  /** Set when the backendRef cannot be used: a request that draws it gets 500 (UNAVAILABLE for gRPC). */
  invalid?: InvalidBackend;
}

export interface Timeouts {
  /** Whole request, retries included. Undefined: not configured; 0: configured as `0s`, no timeout. */
  requestMs?: number;
  /** One try to a backend. Undefined: not configured; 0: configured as `0s`, no timeout. */
  backendRequestMs?: number;
}

export interface RetryPolicy {
  /** Retries after the first try (GEP-1731); 1 when the route does not say, as Envoy's default. */
  attempts: number;
  /** Response codes that are retried; empty when the route does not say (connection errors only). */
  codes: readonly number[];
  backoffMs?: number;
}

export interface CompiledRule {
  route: RouteId;
  /** Position of the rule in spec.rules. */
  index: number;
  name?: string;
  filters: FilterSet;
  backends: readonly CompiledBackend[];
  /** Sum of the backends' weights, invalid backends included (their share of traffic gets 500). */
  totalWeight: number;
  timeouts: Timeouts;
  retry?: RetryPolicy;
}

// ---- the table ----

export type RouteScope = { type: 'producer' } | { type: 'consumer'; namespace: string };

/** The routes that apply to one Service port for one group of clients, merged and ordered. */
export interface CompiledParent {
  service: { namespace: string; name: string };
  port: number;
  /** GRPCRoutes and HTTPRoutes never merge: the port is routed by one kind (GEP-1294: GRPCRoute wins). */
  protocol: 'http' | 'grpc';
  scope: RouteScope;
  /** Candidate matches, most specific first; the first that matches a request wins. */
  entries: readonly MatchEntry[];
}

export interface HeaderCondition {
  /** Lower-cased. */
  name: string;
  exact?: string;
  regex?: RegExp;
}

export interface QueryCondition {
  /** Case-sensitive, as the spec says of query parameter names. */
  name: string;
  exact?: string;
  regex?: RegExp;
}

export interface HttpMatchEntry {
  protocol: 'http';
  rule: CompiledRule;
  /** Position of the match in the rule's matches (the default match is 0). */
  matchIndex: number;
  pathKind: 'Exact' | 'PathPrefix' | 'RegularExpression';
  /** Exact value, normalized prefix (no trailing `/`, `/` alone becomes empty), or the regex source. */
  path: string;
  pathRegex?: RegExp;
  method?: string;
  headers: readonly HeaderCondition[];
  query: readonly QueryCondition[];
}

export interface GrpcNameCondition {
  exact?: string;
  regex?: RegExp;
}

export interface GrpcMatchEntry {
  protocol: 'grpc';
  rule: CompiledRule;
  matchIndex: number;
  service?: GrpcNameCondition;
  method?: GrpcNameCondition;
  headers: readonly HeaderCondition[];
}

export type MatchEntry = HttpMatchEntry | GrpcMatchEntry;

/** What `match` returns: the entry that won, whose `rule` carries backends, filters and policies. */
export type RouteMatch = MatchEntry;

// ---- problems ----

export type ProblemReason = 'UnsupportedValue' | 'IncompatibleFilters' | 'BackendNotFound' | 'InvalidKind' | 'NoMatchingParent' | 'Conflicted';

/** Something in a route that the engine could not use; statuses report these. */
export interface RouteProblem {
  route: RouteId;
  /** Index in spec.rules, when the problem is within a rule. */
  rule?: number;
  /** Dotted path in the route, e.g. `spec.rules[1].matches[0].path.value`. */
  field: string;
  reason: ProblemReason;
  message: string;
}
