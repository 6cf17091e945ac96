// The waypoint's local rate limits (ambit.dev/v1alpha1 LocalRateLimit): Envoy's local_ratelimit token
// buckets, one per policy or one per source identity, refilled lazily from the clock on each take.
// It decides and writes the headers; the proxy answers 429. Reading the spec is shared/policy/http/rate-limit.ts's.
//
// Several limits on one request (the waypoint's Gateway, the Service, the route): Envoy's single
// local_ratelimit filter would use only the most specific per-route config (typed_per_filter_config
// replaces the filter-level one). ambit applies them all instead, as a chain of filters would, since
// each is a different owner's budget: a route's generous limit must not lift the Gateway's. The take
// is all-or-nothing: a request is charged to every bucket when each has a token, and to none when
// one is empty, so a source refused by its own per-source limit cannot drain a shared budget.

import type { OutgoingHttpHeaders } from 'node:http';
import type { TrafficEntry } from '../shared/protocol/config.js';
import { type CompiledRateLimit, readRateLimit } from '../shared/policy/http/rate-limit.js';

export interface RateLimitVerdict {
  limited: boolean;
  /** The bucket's maxTokens. */
  limit: number;
  /** Tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket's next fill, at least 1. */
  resetSeconds: number;
  /** The LocalRateLimit (`namespace/name`) whose bucket decided. */
  policy: string;
}

export interface RateLimitProblem {
  policy: string;
  field: string;
  message: string;
}

/** Per-source buckets kept per policy; the least recently used goes first. */
const defaultMaxSources = 10_000;

interface Bucket {
  tokens: number;
  /** The fill period (since the limit's epoch) its tokens were last counted in. */
  period: number;
}

/** One LocalRateLimit's buckets. Kept across updates while its bucket parameters are unchanged. */
class Limit {
  rule: CompiledRateLimit;
  private shared: Bucket | undefined;
  private readonly bySource = new Map<string, Bucket>();
  /** Which take() last looked at it: a limit attached twice (Service and route) is charged once. */
  stamp = 0;

  constructor(
    rule: CompiledRateLimit,
    readonly fingerprint: string,
    /** Fill periods count from here, as Envoy's fill timer starts with the filter's configuration. */
    private readonly epoch: number,
    private readonly maxSources: number,
  ) {
    this.rule = rule;
  }

  /** The bucket of `source`, its tokens counted up to `period`. */
  bucket(source: string, period: number): Bucket {
    const max = this.rule.bucket.maxTokens;
    let b: Bucket | undefined;
    if (!this.rule.perSource) b = this.shared ??= { tokens: max, period };
    else {
      b = this.bySource.get(source);
      if (b) {
        // Most recent last, so the first key is the least recently used.
        this.bySource.delete(source);
        this.bySource.set(source, b);
      } else {
        // A new bucket starts full; one idle for a fill or more would have refilled anyway, so the
        // sources evicted first (least recent) lose little or nothing.
        b = { tokens: max, period };
        this.bySource.set(source, b);
        if (this.bySource.size > this.maxSources) this.bySource.delete(this.bySource.keys().next().value!);
      }
    }
    if (period > b.period) {
      b.tokens = Math.min(max, b.tokens + (period - b.period) * this.rule.bucket.tokensPerFill);
      b.period = period;
    }
    return b;
  }

  period(now: number): number {
    return Math.floor((now - this.epoch) / this.rule.bucket.fillIntervalMs);
  }

  resetSeconds(now: number, period: number): number {
    const next = this.epoch + (period + 1) * this.rule.bucket.fillIntervalMs;
    return Math.max(1, Math.ceil((next - now) / 1000));
  }

  sources(): number {
    return this.bySource.size;
  }
}

function fingerprint(r: CompiledRateLimit): string {
  const b = r.bucket;
  return `${b.maxTokens}/${b.tokensPerFill}/${b.fillIntervalMs}/${r.perSource}`;
}

const none: readonly Limit[] = [];

export class RateLimiter {
  private limits = new Map<string, Limit>();
  /** Attached to this waypoint's Gateway (or every waypoint), by Service, by route. */
  private gateway: readonly Limit[] = none;
  private byService = new Map<string, Limit[]>();
  private byRoute = new Map<string, Limit[]>();
  private readonly now: () => number;
  private readonly maxSources: number;
  private stamp = 0;
  // Reused by every take(): the limits and buckets in play for the current request.
  private readonly inPlay: Limit[] = [];
  private readonly buckets: Bucket[] = [];
  private readonly periods: number[] = [];

  constructor(
    private readonly o: {
      /** `namespace/name` of this waypoint's Gateway. */
      waypoint: string;
      rootNamespace: string;
      /** Milliseconds on a monotonic clock; tests inject their own. */
      now?: () => number;
      /** Per-source buckets kept per policy (10,000 by default). */
      maxSources?: number;
    },
  ) {
    this.now = o.now ?? (() => performance.now());
    this.maxSources = o.maxSources ?? defaultMaxSources;
  }

  /**
   * Takes a configuration's traffic entries (other kinds are skipped). A policy whose bucket is
   * unchanged keeps its buckets, so a config push does not hand out fresh budgets; a changed bucket
   * starts full. Returns the problems, each naming its policy and field.
   */
  update(traffic: TrafficEntry[]): RateLimitProblem[] {
    const problems: RateLimitProblem[] = [];
    const limits = new Map<string, Limit>();
    const now = this.now();
    for (const t of traffic) {
      if (t.kind !== 'LocalRateLimit') continue;
      const policy = `${t.namespace}/${t.name}`;
      const r = readRateLimit(t, this.o.rootNamespace);
      for (const p of r.problems) problems.push({ policy, field: p.field, message: p.message });
      if (!r.limit) continue;
      const print = fingerprint(r.limit);
      const old = this.limits.get(policy);
      if (old && old.fingerprint === print) {
        old.rule = r.limit;
        limits.set(policy, old);
      } else limits.set(policy, new Limit(r.limit, print, now, this.maxSources));
    }
    const gateway: Limit[] = [];
    const byService = new Map<string, Limit[]>();
    const byRoute = new Map<string, Limit[]>();
    const add = (m: Map<string, Limit[]>, key: string, l: Limit) => {
      const list = m.get(key);
      if (list) list.push(l);
      else m.set(key, [l]);
    };
    // By name, so that ties between verdicts resolve the same way on every waypoint.
    for (const l of [...limits.values()].sort((a, b) => (a.rule.policy < b.rule.policy ? -1 : 1))) {
      const a = l.rule.attachment;
      if (a.everyWaypoint || a.gateways.includes(this.o.waypoint)) gateway.push(l);
      for (const s of a.services) add(byService, s, l);
      for (const r of a.routes) add(byRoute, r, l);
    }
    this.limits = limits;
    this.gateway = gateway;
    this.byService = byService;
    this.byRoute = byRoute;
    return problems;
  }

  /**
   * Charges one request to Service `service` (`namespace/name`), matched by route `route`
   * (`namespace/name` of the HTTPRoute or GRPCRoute), from `source` (its SPIFFE principal, '' when
   * unknown: such requests share one per-source bucket). Undefined when no limit applies. Limited:
   * the empty bucket that frees up last. Allowed: the bucket with the fewest tokens left.
   */
  take(service: string, route: string | undefined, source: string): RateLimitVerdict | undefined {
    const stamp = ++this.stamp;
    const inPlay = this.inPlay;
    inPlay.length = 0;
    this.collect(this.gateway, stamp);
    this.collect(this.byService.get(service), stamp);
    if (route !== undefined) this.collect(this.byRoute.get(route), stamp);
    if (inPlay.length === 0) return undefined;
    const now = this.now();
    const buckets = this.buckets;
    const periods = this.periods;
    buckets.length = 0;
    periods.length = 0;
    let limited = -1;
    let limitedReset = 0;
    for (let i = 0; i < inPlay.length; i++) {
      const l = inPlay[i]!;
      const period = l.period(now);
      const b = l.bucket(source, period);
      buckets.push(b);
      periods.push(period);
      if (b.tokens >= 1) continue;
      const reset = l.resetSeconds(now, period);
      if (limited < 0 || reset > limitedReset) {
        limited = i;
        limitedReset = reset;
      }
    }
    if (limited >= 0) {
      const l = inPlay[limited]!;
      return { limited: true, limit: l.rule.bucket.maxTokens, remaining: 0, resetSeconds: limitedReset, policy: l.rule.policy };
    }
    let tightest = 0;
    for (let i = 0; i < inPlay.length; i++) {
      buckets[i]!.tokens -= 1;
      if (buckets[i]!.tokens < buckets[tightest]!.tokens) tightest = i;
    }
    const l = inPlay[tightest]!;
    return { limited: false, limit: l.rule.bucket.maxTokens, remaining: buckets[tightest]!.tokens, resetSeconds: l.resetSeconds(now, periods[tightest]!), policy: l.rule.policy };
  }

  /** Per-source buckets held by policy `namespace/name` (0 for a shared bucket): memory stays bounded. */
  sourcesTracked(policy: string): number {
    return this.limits.get(policy)?.sources() ?? 0;
  }

  private collect(list: readonly Limit[] | undefined, stamp: number): void {
    if (!list) return;
    for (const l of list) {
      if (l.stamp === stamp) continue;
      l.stamp = stamp;
      this.inPlay.push(l);
    }
  }
}

/**
 * Envoy's local_ratelimit response headers, its `enable_x_ratelimit_headers: DRAFT_VERSION_03`
 * (draft-ietf-httpapi-ratelimit-headers-03): the bucket's size, what is left, seconds to the next
 * fill; on a 429 also `retry-after` (RFC 9110 section 10.2.3, seconds) and Envoy's `x-envoy-ratelimited`.
 */
export function rateLimitHeaders(v: RateLimitVerdict, out: OutgoingHttpHeaders): void {
  out['x-ratelimit-limit'] = String(v.limit);
  out['x-ratelimit-remaining'] = String(v.remaining);
  out['x-ratelimit-reset'] = String(v.resetSeconds);
  if (v.limited) {
    out['retry-after'] = String(Math.max(1, v.resetSeconds));
    out['x-envoy-ratelimited'] = 'true';
  }
}
