// Outlier detection for one Service, as Envoy does it for Istio's DestinationRule outlierDetection:
// consecutive 5xx and consecutive gateway errors, counted per endpoint as results arrive, eject an
// endpoint at once; a sweep every `interval` returns those whose ejection time is over. Which endpoint
// a request then goes to is balancer.ts's (it reads isEjected and `version`, and owns panic mode).
//
// Defaults are what Istio leaves to Envoy when a DestinationRule sets outlierDetection: 5 consecutive
// 5xx, gateway errors off (Envoy enforces them 0% unless Istio's consecutiveGatewayErrors is set),
// interval 10s, baseEjectionTime 30s, maxEjectionPercent 10, minHealthPercent 0 (no panic), and
// Envoy's max_ejection_time 300s. Without outlierDetection there is no detector at all (policy.ts).

import { as64, giveBack, type SharedCounters, slotWidth } from './shared-counters.js';
import type { Clock, UpstreamResult } from './types.js';

export interface OutlierConfig {
  /** 0 turns it off. */
  consecutive5xxErrors: number;
  /** 502, 503, 504 and (unless split) connect failures, resets and timeouts; 0 turns it off. */
  consecutiveGatewayErrors: number;
  /** Count failures the proxy saw itself (connect failure, timeout) apart from the responses. */
  splitExternalLocalOriginErrors: boolean;
  /** With the split on: how many such failures in a row eject; 0 turns it off. */
  consecutiveLocalOriginFailures: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  /** Envoy's max_ejection_time: the longest an ejection grows to (never below the base). */
  maxEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export const istioOutlierDefaults: Readonly<OutlierConfig> = {
  consecutive5xxErrors: 5,
  consecutiveGatewayErrors: 0,
  splitExternalLocalOriginErrors: false,
  consecutiveLocalOriginFailures: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
};

export type EjectionReason = 'consecutive-5xx' | 'consecutive-gateway-errors' | 'consecutive-local-origin-failures';

/** What the proxy counts and logs: Envoy's ejections_enforced_*, ejections_overflow, and returns. */
export type OutlierEvent =
  | { type: 'ejected'; key: string; reason: EjectionReason; at: number; forMs: number; timesEjected: number }
  /** The endpoint met the threshold, but ejecting it would pass maxEjectionPercent. */
  | { type: 'overflow'; key: string; reason: EjectionReason; at: number }
  | { type: 'returned'; key: string; at: number; ejectedMs: number };

// An endpoint's fields in its slot (shared-counters.ts), so that with workers every event loop counts
// the same errors in a row and sees the same ejections, as Envoy's workers report to one detector.
const C5XX = 0;
const GATEWAY = 1;
const LOCAL = 2;
/** 0 in service, 1 being ejected (by one event loop, the others leave it be), 2 ejected. */
const STATE = 3;
/** Envoy's ejection backoff multiplier: ejections in a row, less one for each interval spent healthy. */
const MULTIPLIER = 4;
const FOR_MS = 5;
/** In the 64-bit view: when it was ejected (milliseconds of the detector's clock). */
const AT64 = 3;
// The Service's fields: the version of the ejected set, and the last interval swept.
const VERSION = 0;
const SWEPT = 1;

interface Monitor {
  f: Int32Array;
  at: BigInt64Array;
}

function monitorOf(f: Int32Array): Monitor {
  return { f, at: as64(f) };
}

export class OutlierDetector {
  private readonly monitors = new Map<string, Monitor>();
  private readonly service: Int32Array;
  readonly counters = { ejected: 0, overflow: 0, returned: 0 };

  /**
   * `shared`: the waypoint's shared counters and this Service's name in them (`namespace/name/port`),
   * when it has workers: every event loop's detector then counts and ejects the same endpoints, and
   * one sweeps each interval. Without it the detector is this thread's alone.
   */
  constructor(
    readonly config: Readonly<OutlierConfig>,
    private readonly clock: Clock,
    private readonly listener?: (event: OutlierEvent) => void,
    private readonly shared?: { counters: SharedCounters; scope: string },
  ) {
    this.service = shared ? shared.counters.slot(`outlier ${shared.scope}`) : new Int32Array(slotWidth);
  }

  /** Changes whenever an endpoint is ejected or returns (balancer.ts recomputes its view). */
  get version(): number {
    return Atomics.load(this.service, VERSION);
  }

  /** The Service's endpoints now (ip:port); those that left take their ejection with them. */
  setEndpoints(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [key, m] of this.monitors) {
      if (keep.has(key)) continue;
      // The first event loop to see it leave returns it (a pod given its address later starts afresh).
      if (Atomics.compareExchange(m.f, STATE, 2, 0) === 2) {
        this.clearErrors(m);
        Atomics.add(this.service, VERSION, 1);
      }
      this.monitors.delete(key);
    }
    for (const key of keep) if (!this.monitors.has(key)) this.monitors.set(key, monitorOf(this.shared ? this.shared.counters.slot(`outlier ${this.shared.scope} ${key}`) : new Int32Array(slotWidth)));
  }

  isEjected(key: string): boolean {
    const m = this.monitors.get(key);
    return m !== undefined && Atomics.load(m.f, STATE) === 2;
  }

  get ejectedCount(): number {
    let n = 0;
    for (const m of this.monitors.values()) if (Atomics.load(m.f, STATE) === 2) n++;
    return n;
  }

  /** One try's result at endpoint `key`; answers the ejection (or overflow) it caused, if any. */
  report(key: string, result: UpstreamResult): OutlierEvent | undefined {
    const m = this.monitors.get(key);
    // Envoy ignores results from an endpoint already ejected (requests that were in flight).
    if (!m || Atomics.load(m.f, STATE) !== 0) return undefined;
    const c = this.config;
    const f = m.f;
    let status: number;
    if (typeof result === 'number') {
      status = result;
      Atomics.store(f, LOCAL, 0);
    } else if (c.splitExternalLocalOriginErrors && result !== 'reset') {
      // Failures of the proxy's own (connecting, waiting) count apart from the endpoint's answers.
      const local = Atomics.add(f, LOCAL, 1) + 1;
      if (c.consecutiveLocalOriginFailures > 0 && local >= c.consecutiveLocalOriginFailures) return this.tryEject(key, m, 'consecutive-local-origin-failures');
      return undefined;
    } else {
      // Unsplit, Envoy maps them to responses: a timeout to 504, anything else to 503.
      status = result === 'timeout' ? 504 : 503;
    }
    if (status < 500 || status > 599) {
      Atomics.store(f, C5XX, 0);
      Atomics.store(f, GATEWAY, 0);
      return undefined;
    }
    const in5xx = Atomics.add(f, C5XX, 1) + 1;
    let inGateway = 0;
    if (status >= 502 && status <= 504) inGateway = Atomics.add(f, GATEWAY, 1) + 1;
    else Atomics.store(f, GATEWAY, 0);
    if (c.consecutiveGatewayErrors > 0 && inGateway >= c.consecutiveGatewayErrors) return this.tryEject(key, m, 'consecutive-gateway-errors');
    if (c.consecutive5xxErrors > 0 && in5xx >= c.consecutive5xxErrors) return this.tryEject(key, m, 'consecutive-5xx');
    return undefined;
  }

  /**
   * The interval sweep: returns endpoints whose ejection time is over, and lowers the multiplier of
   * those that stayed in service for the whole interval. The proxy calls it every `intervalMs`.
   */
  sweep(): OutlierEvent[] {
    const now = this.clock();
    // With workers, one event loop sweeps each interval (the multiplier drops once per interval).
    if (this.shared) {
      const interval = Math.floor(now / this.config.intervalMs) % 0x7fffffff;
      const last = Atomics.load(this.service, SWEPT);
      if (last === interval || Atomics.compareExchange(this.service, SWEPT, last, interval) !== last) return [];
    }
    const events: OutlierEvent[] = [];
    for (const [key, m] of this.monitors) {
      const f = m.f;
      const state = Atomics.load(f, STATE);
      // One being ejected (by another loop, which sets its multiplier now) is left to it.
      if (state !== 2) {
        if (state === 0) giveBack(f, MULTIPLIER);
        continue;
      }
      const ejectedMs = now - Number(Atomics.load(m.at, AT64));
      if (ejectedMs < Atomics.load(f, FOR_MS) || Atomics.compareExchange(f, STATE, 2, 0) !== 2) continue;
      this.clearErrors(m);
      Atomics.add(this.service, VERSION, 1);
      this.counters.returned++;
      events.push(this.emit({ type: 'returned', key, at: now, ejectedMs }));
    }
    return events;
  }

  private tryEject(key: string, m: Monitor, reason: EjectionReason): OutlierEvent | undefined {
    const now = this.clock();
    const f = m.f;
    // Another event loop is ejecting it already.
    if (Atomics.compareExchange(f, STATE, 0, 1) !== 0) return undefined;
    // Counted again from zero either way, so an endpoint kept in by the cap is tried again after as many errors.
    this.clearErrors(m);
    // Envoy's rule: eject while the share already ejected is below the cap, so the first always goes.
    // Those another event loop is ejecting at this moment count too: two loops ejecting at once
    // cannot pass the cap together (at worst both hold back, and the next errors try again).
    if ((this.othersOut(m) * 100) / this.monitors.size >= this.config.maxEjectionPercent) {
      Atomics.store(f, STATE, 0);
      this.counters.overflow++;
      return this.emit({ type: 'overflow', key, reason, at: now });
    }
    const base = this.config.baseEjectionTimeMs;
    const longest = Math.max(base, this.config.maxEjectionTimeMs);
    let multiplier = Atomics.load(f, MULTIPLIER);
    if (base * multiplier < longest) multiplier++;
    Atomics.store(f, MULTIPLIER, multiplier);
    // At most 2^31-1 ms (24.8 days), the field's range.
    const forMs = Math.min(base * multiplier, longest, 0x7fffffff);
    Atomics.store(f, FOR_MS, forMs);
    Atomics.store(m.at, AT64, BigInt(Math.round(now)));
    Atomics.store(f, STATE, 2);
    Atomics.add(this.service, VERSION, 1);
    this.counters.ejected++;
    return this.emit({ type: 'ejected', key, reason, at: now, forMs, timesEjected: multiplier });
  }

  /** Endpoints other than `m` ejected or being ejected. */
  private othersOut(m: Monitor): number {
    let n = 0;
    for (const o of this.monitors.values()) if (o !== m && Atomics.load(o.f, STATE) !== 0) n++;
    return n;
  }

  private clearErrors(m: Monitor): void {
    Atomics.store(m.f, C5XX, 0);
    Atomics.store(m.f, GATEWAY, 0);
    Atomics.store(m.f, LOCAL, 0);
  }

  private emit(event: OutlierEvent): OutlierEvent {
    this.listener?.(event);
    return event;
  }
}
