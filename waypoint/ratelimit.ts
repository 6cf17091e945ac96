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
import { as64, type SharedCounters } from './upstream/shared-counters.js';

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

/**
 * A bucket: its tokens and the fill period they were last counted in. With workers it is one 64-bit
 * cell of the shared table instead, so that a take is one compare-and-swap: the period plus one in
 * the high 32 bits (0: never used, so full), the tokens in the low 32 (maxTokens is at most 2^32-1).
 * A period is never moved back: a loop whose clock read an earlier one than the cell holds counts no
 * fill (else the fill would be credited twice).
 */
type LocalBucket = { tokens: number; period: number };
type Bucket = LocalBucket | BigInt64Array;
const low32 = 0xffffffffn;

/** One LocalRateLimit's buckets. Kept across updates while its bucket parameters are unchanged. */
class Limit {
  rule: CompiledRateLimit;
  private shared: Bucket | undefined;
  private readonly bySource = new Map<string, Bucket>();
  /** Which take() last looked at it: a limit attached twice (Service and route) is charged once. */
  stamp = 0;
  /** Fill periods count from here, as Envoy's fill timer starts with the filter's configuration. */
  private readonly epoch: number;

  constructor(
    rule: CompiledRateLimit,
    readonly fingerprint: string,
    epoch: number,
    private readonly maxSources: number,
    /** The waypoint's shared counters when it has workers: every event loop charges the same buckets. */
    private readonly counters: SharedCounters | undefined,
  ) {
    this.rule = rule;
    // With workers, the first event loop to take this configuration sets the epoch for all.
    const cell = counters && as64(counters.slot(`ratelimit ${rule.policy} ${fingerprint} epoch`));
    if (cell) Atomics.compareExchange(cell, 0, 0n, BigInt(Math.round(epoch)) + 1n);
    this.epoch = cell ? Number(Atomics.load(cell, 0) - 1n) : epoch;
  }

  /** The bucket of `source` (of everyone, without perSource). */
  bucket(source: string): Bucket {
    if (!this.rule.perSource) return (this.shared ??= this.cell(''));
    let b = this.bySource.get(source);
    if (b) {
      // Most recent last, so the first key is the least recently used.
      this.bySource.delete(source);
      this.bySource.set(source, b);
    } else {
      // A new bucket starts full; one idle for a fill or more would have refilled anyway, so the
      // sources evicted first (least recent) lose little or nothing. A shared bucket stays in the
      // shared table; this thread only forgets where.
      b = this.cell(source);
      this.bySource.set(source, b);
      if (this.bySource.size > this.maxSources) this.bySource.delete(this.bySource.keys().next().value!);
    }
    return b;
  }

  private cell(source: string): Bucket {
    return this.counters ? as64(this.counters.slot(`ratelimit ${this.rule.policy} ${this.fingerprint} ${source}`)) : { tokens: this.rule.bucket.maxTokens, period: -1 };
  }

  /** The tokens `b` holds in `period`, its fills since it was last counted added. */
  tokens(b: Bucket, period: number): number {
    if (!(b instanceof BigInt64Array)) return this.refilled(b.tokens, b.period, period);
    const cell = Atomics.load(b, 0);
    return cell === 0n ? this.rule.bucket.maxTokens : this.refilled(Number(cell & low32), Number(cell >> 32n) - 1, period);
  }

  /** Takes a token from `b` in `period`; answers the tokens left, or -1 when it had none. */
  charge(b: Bucket, period: number): number {
    return this.add(b, period, -1);
  }

  /** Gives back a token charged in `period` (another bucket of the same request had none). */
  refund(b: Bucket, period: number): void {
    this.add(b, period, 1);
  }

  /** Adds `delta` to the bucket's tokens in `period` (within 0 and maxTokens); -1 when a take finds none. */
  private add(b: Bucket, period: number, delta: 1 | -1): number {
    const max = this.rule.bucket.maxTokens;
    if (!(b instanceof BigInt64Array)) {
      const tokens = this.refilled(b.tokens, b.period, period);
      if (tokens + delta < 0) return -1;
      b.tokens = Math.min(max, tokens + delta);
      b.period = Math.max(b.period, period);
      return b.tokens;
    }
    for (;;) {
      const was = Atomics.load(b, 0);
      const counted = was === 0n ? period : Number(was >> 32n) - 1;
      const tokens = was === 0n ? max : this.refilled(Number(was & low32), counted, period);
      if (tokens + delta < 0) return -1;
      const left = Math.min(max, tokens + delta);
      if (Atomics.compareExchange(b, 0, was, (BigInt(Math.max(counted, period) + 1) << 32n) | BigInt(left)) === was) return left;
    }
  }

  private refilled(tokens: number, counted: number, period: number): number {
    const { maxTokens, tokensPerFill } = this.rule.bucket;
    return period > counted ? Math.min(maxTokens, tokens + (period - counted) * tokensPerFill) : tokens;
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
      /** Milliseconds, the same in every thread of the process (the time origin and monotonic time since); tests inject their own. */
      now?: () => number;
      /** Per-source buckets kept per policy (10,000 by default). */
      maxSources?: number;
      /** With workers: the buckets every event loop charges, as Envoy's workers share a local rate limit's. */
      shared?: SharedCounters;
    },
  ) {
    this.now = o.now ?? (() => performance.timeOrigin + performance.now());
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
      } else limits.set(policy, new Limit(r.limit, print, now, this.maxSources, this.o.shared));
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
      const b = l.bucket(source);
      buckets.push(b);
      periods.push(period);
      if (l.tokens(b, period) >= 1) continue;
      const reset = l.resetSeconds(now, period);
      if (limited < 0 || reset > limitedReset) {
        limited = i;
        limitedReset = reset;
      }
    }
    // All or nothing: each bucket is charged in turn, and if one was emptied meanwhile (by another
    // event loop) those already charged get their token back.
    let tightest = -1;
    let fewest = 0;
    for (let i = 0; limited < 0 && i < inPlay.length; i++) {
      const left = inPlay[i]!.charge(buckets[i]!, periods[i]!);
      if (left < 0) {
        for (let j = 0; j < i; j++) inPlay[j]!.refund(buckets[j]!, periods[j]!);
        limited = i;
        limitedReset = inPlay[i]!.resetSeconds(now, periods[i]!);
      } else if (tightest < 0 || left < fewest) {
        tightest = i;
        fewest = left;
      }
    }
    if (limited >= 0) {
      const l = inPlay[limited]!;
      return { limited: true, limit: l.rule.bucket.maxTokens, remaining: 0, resetSeconds: limitedReset, policy: l.rule.policy };
    }
    const l = inPlay[tightest]!;
    return { limited: false, limit: l.rule.bucket.maxTokens, remaining: fewest, resetSeconds: l.resetSeconds(now, periods[tightest]!), policy: l.rule.policy };
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
