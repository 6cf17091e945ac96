// One object per destination Service (and port) holding what its DestinationRule asks of the
// waypoint: the balancer, the outlier detector and the circuit breaker, with Istio's defaults where
// the rule is silent or there is none. The proxy asks policyFor(namespace, name) per request.
//
// Which rule applies, as Istio resolves it (pilot/pkg/model/push_context.go): rules in the waypoint's
// own namespace first, then in the Service's namespace, then in the root namespace; within one
// namespace the most specific host wins (an exact name over a wildcard, a longer wildcard over a
// shorter), then the oldest rule (then the name); exportTo hides a rule from other namespaces. Hosts:
// `web` (the rule's namespace), `web.shop`, `web.shop.svc`, `web.shop.svc.cluster.local`, and
// wildcards such as `*.shop.svc.cluster.local`. controller/push/share.ts resolves hosts for the node
// agent; this module reimplements that matching (adding wildcards and exportTo) rather than change it.

import { AmbitError } from '../../shared/errors.js';
import type { Resource } from '../../shared/resources/types.js';
import { type Algorithm, Balancer, type BalancerOptions, type HashOn, type Pick, type PickRequest } from './balancer.js';
import { CircuitBreaker, type ConnectionPoolLimits, istioConnectionPoolDefaults } from './circuit-breaker.js';
import type { SharedCounters } from './shared-counters.js';
import { istioDurationMs } from './duration.js';
import { istioOutlierDefaults, type OutlierConfig, OutlierDetector, type OutlierEvent } from './outlier.js';
import { type HTTPRouteRetry, type RetryPolicy, retryPolicyFor } from './retry.js';
import type { Clock, Endpoint, Random, UpstreamResult } from './types.js';
import { endpointKey } from './types.js';

/** networking.istio.io/v1 DestinationRule's spec, the part mesh-schemas.ts admits. */
export interface DestinationRuleSpec {
  host: string;
  exportTo?: string[];
  trafficPolicy?: {
    loadBalancer?: {
      simple?: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';
      consistentHash?: {
        httpHeaderName?: string;
        httpCookie?: { name: string; path?: string; ttl?: string };
        useSourceIp?: boolean;
        httpQueryParameterName?: string;
        ringHash?: { minimumRingSize?: number };
        maglev?: { tableSize?: number };
        minimumRingSize?: number;
      };
      localityLbSetting?: { enabled?: boolean };
    };
    connectionPool?: {
      tcp?: { maxConnections?: number; connectTimeout?: string; idleTimeout?: string };
      http?: { http1MaxPendingRequests?: number; http2MaxRequests?: number; maxRequestsPerConnection?: number; maxRetries?: number; idleTimeout?: string };
    };
    outlierDetection?: {
      consecutive5xxErrors?: number;
      consecutiveGatewayErrors?: number;
      splitExternalLocalOriginErrors?: boolean;
      consecutiveLocalOriginFailures?: number;
      interval?: string;
      baseEjectionTime?: string;
      maxEjectionPercent?: number;
      minHealthPercent?: number;
    };
  };
}

/** A DestinationRule compiled: everything a ServicePolicy is built from. */
export interface TrafficPolicy {
  balancer: BalancerOptions;
  outlier?: OutlierConfig;
  limits: ConnectionPoolLimits;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
}

/** Istio's defaults: LEAST_REQUEST (its default balancer since 1.14), 10s connect timeout, 1h idle timeout. */
export const defaultTrafficPolicy: Readonly<TrafficPolicy> = Object.freeze<TrafficPolicy>({
  balancer: { algorithm: 'LEAST_REQUEST', locality: false, panicThresholdPercent: 0 },
  limits: istioConnectionPoolDefaults,
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 3_600_000,
});

/** A DestinationRule the waypoint cannot act on; the message names the rule and the field. */
export class PolicyInvalid extends AmbitError {
  constructor(rule: string, field: string, problem: string) {
    super('PolicyInvalid', `DestinationRule ${rule}: ${field} ${problem}`);
  }
}

/** Compiles a rule's trafficPolicy; throws PolicyInvalid for what a schema cannot check (durations under 1ms). */
export function compileTrafficPolicy(spec: DestinationRuleSpec, rule = '<unnamed>'): TrafficPolicy {
  const tp = spec.trafficPolicy ?? {};
  const duration = (text: string | undefined, field: string, fallback: number, minimum = 1): number => {
    if (text === undefined) return fallback;
    let ms: number;
    try {
      ms = istioDurationMs(text, field);
    } catch (e) {
      throw new PolicyInvalid(rule, `spec.trafficPolicy.${field}`, (e as Error).message.replace(`${field} `, ''));
    }
    if (ms < minimum) throw new PolicyInvalid(rule, `spec.trafficPolicy.${field}`, `must be at least ${minimum}ms (Istio's minimum), not ${text}`);
    return ms;
  };
  const od = tp.outlierDetection;
  const outlier: OutlierConfig | undefined = od && {
    consecutive5xxErrors: od.consecutive5xxErrors ?? istioOutlierDefaults.consecutive5xxErrors,
    consecutiveGatewayErrors: od.consecutiveGatewayErrors ?? istioOutlierDefaults.consecutiveGatewayErrors,
    splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors ?? false,
    consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures || istioOutlierDefaults.consecutiveLocalOriginFailures,
    intervalMs: duration(od.interval, 'outlierDetection.interval', istioOutlierDefaults.intervalMs),
    baseEjectionTimeMs: duration(od.baseEjectionTime, 'outlierDetection.baseEjectionTime', istioOutlierDefaults.baseEjectionTimeMs),
    maxEjectionTimeMs: istioOutlierDefaults.maxEjectionTimeMs,
    // Istio passes it on only when above 0, so 0 means Envoy's 10.
    maxEjectionPercent: od.maxEjectionPercent || istioOutlierDefaults.maxEjectionPercent,
  };
  const lb = tp.loadBalancer;
  const ch = lb?.consistentHash;
  let algorithm: Algorithm = lb?.simple ?? defaultTrafficPolicy.balancer.algorithm;
  let hashOn: HashOn | undefined;
  let tableSize: number | undefined;
  if (ch) {
    algorithm = ch.maglev ? 'MAGLEV' : 'RING_HASH';
    tableSize = ch.maglev?.tableSize ?? ch.ringHash?.minimumRingSize ?? ch.minimumRingSize;
    if (ch.httpHeaderName !== undefined) hashOn = { type: 'header', name: ch.httpHeaderName.toLowerCase() };
    else if (ch.httpCookie) {
      const ttl = ch.httpCookie.ttl === undefined ? undefined : Math.floor(duration(ch.httpCookie.ttl, 'loadBalancer.consistentHash.httpCookie.ttl', 0, 0) / 1000);
      hashOn = { type: 'cookie', name: ch.httpCookie.name, ...(ch.httpCookie.path !== undefined ? { path: ch.httpCookie.path } : {}), ...(ttl !== undefined ? { ttlSeconds: ttl } : {}) };
    } else if (ch.httpQueryParameterName !== undefined) hashOn = { type: 'queryParameter', name: ch.httpQueryParameterName };
    else if (ch.useSourceIp) hashOn = { type: 'sourceIp' };
    else throw new PolicyInvalid(rule, 'spec.trafficPolicy.loadBalancer.consistentHash', 'must say what to hash: httpHeaderName, httpCookie, useSourceIp: true or httpQueryParameterName');
  }
  const pool = tp.connectionPool;
  return {
    balancer: {
      algorithm,
      ...(hashOn ? { hashOn } : {}),
      ...(tableSize !== undefined ? { tableSize } : {}),
      // Istio's mesh default turns locality on, and it acts once outlier detection is configured.
      locality: lb?.localityLbSetting?.enabled ?? od !== undefined,
      panicThresholdPercent: od?.minHealthPercent ?? 0,
    },
    ...(outlier ? { outlier } : {}),
    limits: {
      maxConnections: pool?.tcp?.maxConnections ?? istioConnectionPoolDefaults.maxConnections,
      http1MaxPendingRequests: pool?.http?.http1MaxPendingRequests ?? istioConnectionPoolDefaults.http1MaxPendingRequests,
      http2MaxRequests: pool?.http?.http2MaxRequests ?? istioConnectionPoolDefaults.http2MaxRequests,
      maxRetries: pool?.http?.maxRetries ?? istioConnectionPoolDefaults.maxRetries,
      maxRequestsPerConnection: pool?.http?.maxRequestsPerConnection ?? istioConnectionPoolDefaults.maxRequestsPerConnection,
    },
    connectTimeoutMs: duration(pool?.tcp?.connectTimeout, 'connectionPool.tcp.connectTimeout', defaultTrafficPolicy.connectTimeoutMs),
    idleTimeoutMs: duration(pool?.http?.idleTimeout, 'connectionPool.http.idleTimeout', defaultTrafficPolicy.idleTimeoutMs),
  };
}

/** Everything the waypoint does for one destination Service (one port of it). */
export class ServicePolicy {
  readonly balancer: Balancer;
  readonly outlier: OutlierDetector | undefined;
  readonly breaker: CircuitBreaker;
  private nextSweepAt: number;

  constructor(
    readonly traffic: TrafficPolicy,
    /** `namespace/name` of the DestinationRule in force, if any. */
    readonly rule: string | undefined,
    private readonly clock: Clock,
    random: Random,
    onOutlierEvent?: (event: OutlierEvent) => void,
    /**
     * With workers: the waypoint's shared counters and this destination's name in them
     * (`namespace/name/port`), so that every event loop counts against the same limits and ejects the
     * same endpoints. The counts and ejections outlive a change of the rule: what is in flight or
     * ejected under the old one still is.
     */
    shared?: { counters: SharedCounters; scope: string },
  ) {
    this.outlier = traffic.outlier ? new OutlierDetector(traffic.outlier, clock, onOutlierEvent, shared) : undefined;
    this.balancer = new Balancer(traffic.balancer, random, this.outlier);
    this.breaker = new CircuitBreaker(traffic.limits, shared?.counters.slot(`breaker ${shared.scope}`));
    this.nextSweepAt = clock() + (traffic.outlier?.intervalMs ?? 0);
  }

  get consistentHash(): boolean {
    return this.traffic.balancer.algorithm === 'RING_HASH' || this.traffic.balancer.algorithm === 'MAGLEV';
  }

  setEndpoints(endpoints: readonly Endpoint[]): void {
    this.balancer.setEndpoints(endpoints);
    this.outlier?.setEndpoints(endpoints.map(endpointKey));
  }

  /** See Balancer.pick; undefined means no usable endpoint (503 UH). */
  pick(request: PickRequest, avoid?: string): Pick | undefined {
    return this.balancer.pick(request, avoid);
  }

  started(pick: Pick): void {
    this.balancer.started(pick);
  }

  /** A try to `pick` ended with `result`; answers the outlier event it caused, if any. */
  finished(pick: Pick, result: UpstreamResult): OutlierEvent | undefined {
    this.balancer.finished(pick);
    return this.outlier?.report(pick.key, result);
  }

  /** The retry policy of a route rule sending here (consistent hashing keeps retries on the key's endpoint). */
  retryPolicy(retry: HTTPRouteRetry | undefined): RetryPolicy | undefined {
    // Asked per request: made once per route retry (the router hands the same object each time).
    if (!retry) return (this.defaultRetry ??= { policy: retryPolicyFor(undefined, this.consistentHash) }).policy;
    let cached = this.retries.get(retry);
    if (!cached) this.retries.set(retry, (cached = { policy: retryPolicyFor(retry, this.consistentHash) }));
    return cached.policy;
  }
  private defaultRetry: { policy: RetryPolicy | undefined } | undefined;
  private readonly retries = new WeakMap<HTTPRouteRetry, { policy: RetryPolicy | undefined }>();

  /** Runs the outlier sweep when its interval has passed; the proxy calls this from one timer for all Services. */
  sweepIfDue(): OutlierEvent[] {
    if (!this.outlier) return [];
    const now = this.clock();
    if (now < this.nextSweepAt) return [];
    this.nextSweepAt = now + this.outlier.config.intervalMs;
    return this.outlier.sweep();
  }
}

export interface UpstreamPoliciesOptions {
  /** Istio's root namespace: its rules apply mesh-wide. */
  rootNamespace: string;
  /** The waypoint's own namespace, whose rules come first. */
  waypointNamespace?: string;
  clock: Clock;
  random: Random;
  onOutlierEvent?: (service: string, event: OutlierEvent) => void;
  /** What the waypoint's event loops count together (circuit breakers, outlier detection); each policy counts alone without it. */
  shared?: SharedCounters;
}

interface RuleEntry {
  id: string;
  namespace: string;
  /** Fully qualified host, or a suffix (`.shop.svc.cluster.local`, `` for `*`) when wildcard. */
  host: string;
  wildcard: boolean;
  exportTo: string[] | undefined;
  created: string;
  compiled: TrafficPolicy | PolicyInvalid;
  fingerprint: string;
}

const clusterDomain = 'svc.cluster.local';

/** The ServicePolicy of every destination Service, rebuilt when the rule in force for it changes. */
export class UpstreamPolicies {
  private rules = new Map<string, RuleEntry[]>();
  private readonly policies = new Map<string, { policy: ServicePolicy; fingerprint: string }>();

  constructor(private readonly options: UpstreamPoliciesOptions) {}

  /**
   * Every DestinationRule now. Returns the problems of rules that cannot be acted on (those rules
   * are skipped, as if absent, and the caller reports them in their status).
   */
  setDestinationRules(rules: readonly Resource[]): PolicyInvalid[] {
    const problems: PolicyInvalid[] = [];
    const byNs = new Map<string, RuleEntry[]>();
    for (const r of rules) {
      const ns = r.metadata.namespace ?? 'default';
      const id = `${ns}/${r.metadata.name}`;
      const spec = r.spec as DestinationRuleSpec;
      let compiled: TrafficPolicy | PolicyInvalid;
      try {
        compiled = compileTrafficPolicy(spec, id);
      } catch (e) {
        if (!(e instanceof PolicyInvalid)) throw e;
        compiled = e;
        problems.push(e);
      }
      const host = qualify(spec.host, ns);
      const entry: RuleEntry = { id, namespace: ns, ...host, exportTo: spec.exportTo, created: r.metadata.creationTimestamp ?? '', compiled, fingerprint: `${id} ${JSON.stringify(spec)}` };
      const list = byNs.get(ns);
      if (list) list.push(entry);
      else byNs.set(ns, [entry]);
    }
    this.rules = byNs;
    // Keep a Service's policy (and its ejections and counts) unless its rule changed.
    for (const [key, held] of [...this.policies]) {
      const [ns, name] = key.split('/') as [string, string];
      if (this.ruleFor(ns, name)?.fingerprint !== held.fingerprint) {
        this.policies.delete(key);
        const fresh = this.policyFor(ns, name, Number(key.split('/')[2]));
        fresh.setEndpoints(held.policy.balancer.endpoints);
      }
    }
    return problems;
  }

  /** The policy for Service `namespace/name` (port: one policy per Service port, as Envoy has a cluster per port). */
  policyFor(namespace: string, name: string, port = 0): ServicePolicy {
    const key = `${namespace}/${name}/${port}`;
    const held = this.policies.get(key);
    if (held) return held.policy;
    const rule = this.ruleFor(namespace, name);
    const traffic = rule && !(rule.compiled instanceof PolicyInvalid) ? rule.compiled : defaultTrafficPolicy;
    const o = this.options;
    const service = `${namespace}/${name}`;
    const policy = new ServicePolicy(traffic, rule?.id, o.clock, o.random, o.onOutlierEvent && ((e) => o.onOutlierEvent!(service, e)), o.shared && { counters: o.shared, scope: key });
    this.policies.set(key, { policy, fingerprint: rule?.fingerprint ?? '' });
    return policy;
  }

  /** A policy with no DestinationRule (a pod addressed directly), named `label` in outlier events; not kept here. */
  defaultPolicy(label: string): ServicePolicy {
    const o = this.options;
    return new ServicePolicy(defaultTrafficPolicy, undefined, o.clock, o.random, o.onOutlierEvent && ((e) => o.onOutlierEvent!(label, e)));
  }

  /** Sweeps every Service whose outlier interval has passed. */
  sweepIfDue(): OutlierEvent[] {
    const events: OutlierEvent[] = [];
    for (const { policy } of this.policies.values()) for (const e of policy.sweepIfDue()) events.push(e);
    return events;
  }

  /** The rule in force for a Service, skipping rules that failed to compile (none is then in force from them). */
  private ruleFor(namespace: string, name: string): RuleEntry | undefined {
    const fqdn = `${name}.${namespace}.${clusterDomain}`;
    const where = [this.options.waypointNamespace, namespace, this.options.rootNamespace];
    const tried = new Set<string>();
    for (const ns of where) {
      if (ns === undefined || tried.has(ns)) continue;
      tried.add(ns);
      let best: RuleEntry | undefined;
      for (const r of this.rules.get(ns) ?? []) {
        if (r.compiled instanceof PolicyInvalid || !this.visible(r) || !matches(r, fqdn)) continue;
        if (!best || moreSpecific(r, best)) best = r;
      }
      if (best) return best;
    }
    return undefined;
  }

  /** exportTo as Istio reads it from the waypoint's side: `*` (or none) everywhere, `.` its own namespace. */
  private visible(r: RuleEntry): boolean {
    if (!r.exportTo || r.exportTo.length === 0) return true;
    const here = this.options.waypointNamespace;
    return r.exportTo.some((e) => e === '*' || (e === '.' ? here === undefined || here === r.namespace : e === here));
  }
}

/** `web` -> web.<ns>.svc.cluster.local; `web.shop`, `web.shop.svc` completed; `*.shop...` a suffix. */
function qualify(host: string, ns: string): { host: string; wildcard: boolean } {
  if (host === '*') return { host: '', wildcard: true };
  if (host.startsWith('*.')) return { host: host.slice(1), wildcard: true };
  const parts = host.split('.');
  if (parts.length === 1) return { host: `${host}.${ns}.${clusterDomain}`, wildcard: false };
  if (parts.length === 2) return { host: `${host}.${clusterDomain}`, wildcard: false };
  if (parts.length === 3 && parts[2] === 'svc') return { host: `${host}.cluster.local`, wildcard: false };
  return { host, wildcard: false };
}

function matches(r: RuleEntry, fqdn: string): boolean {
  return r.wildcard ? fqdn.endsWith(r.host) : fqdn === r.host;
}

function moreSpecific(a: RuleEntry, b: RuleEntry): boolean {
  if (a.wildcard !== b.wildcard) return !a.wildcard;
  if (a.host.length !== b.host.length) return a.host.length > b.host.length;
  if (a.created !== b.created) return a.created !== '' && (b.created === '' || a.created < b.created);
  return a.id < b.id;
}
