// Outlier detection for one Service, as Envoy does it for Istio's DestinationRule outlierDetection:
// consecutive 5xx and consecutive gateway errors, counted per endpoint as results arrive, eject an
// endpoint at once; a sweep every `interval` returns those whose ejection time is over. Which endpoint
// a request then goes to is balancer.ts's (it reads isEjected and `version`, and owns panic mode).
//
// Defaults are what Istio leaves to Envoy when a DestinationRule sets outlierDetection: 5 consecutive
// 5xx, gateway errors off (Envoy enforces them 0% unless Istio's consecutiveGatewayErrors is set),
// interval 10s, baseEjectionTime 30s, maxEjectionPercent 10, minHealthPercent 0 (no panic), and
// Envoy's max_ejection_time 300s. Without outlierDetection there is no detector at all (policy.ts).

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

class Monitor {
  consecutive5xx = 0;
  consecutiveGateway = 0;
  consecutiveLocal = 0;
  /** Set while ejected. */
  ejectedAt: number | undefined;
  ejectedForMs = 0;
  /** Envoy's ejection backoff multiplier: ejections in a row, less one for each interval spent healthy. */
  multiplier = 0;
}

export class OutlierDetector {
  private readonly monitors = new Map<string, Monitor>();
  private active = 0;
  /** Changes whenever an endpoint is ejected or returns (balancer.ts recomputes its view). */
  version = 0;
  readonly counters = { ejected: 0, overflow: 0, returned: 0 };

  constructor(
    readonly config: Readonly<OutlierConfig>,
    private readonly clock: Clock,
    private readonly listener?: (event: OutlierEvent) => void,
  ) {}

  /** The Service's endpoints now (ip:port); those that left take their ejection with them. */
  setEndpoints(keys: Iterable<string>): void {
    const keep = new Set(keys);
    for (const [key, m] of this.monitors) {
      if (keep.has(key)) continue;
      if (m.ejectedAt !== undefined) {
        this.active--;
        this.version++;
      }
      this.monitors.delete(key);
    }
    for (const key of keep) if (!this.monitors.has(key)) this.monitors.set(key, new Monitor());
  }

  isEjected(key: string): boolean {
    return this.monitors.get(key)?.ejectedAt !== undefined;
  }

  get ejectedCount(): number {
    return this.active;
  }

  /** One try's result at endpoint `key`; answers the ejection (or overflow) it caused, if any. */
  report(key: string, result: UpstreamResult): OutlierEvent | undefined {
    const m = this.monitors.get(key);
    // Envoy ignores results from an endpoint already ejected (requests that were in flight).
    if (!m || m.ejectedAt !== undefined) return undefined;
    const c = this.config;
    let status: number;
    if (typeof result === 'number') {
      status = result;
      m.consecutiveLocal = 0;
    } else if (c.splitExternalLocalOriginErrors && result !== 'reset') {
      // Failures of the proxy's own (connecting, waiting) count apart from the endpoint's answers.
      m.consecutiveLocal++;
      if (c.consecutiveLocalOriginFailures > 0 && m.consecutiveLocal >= c.consecutiveLocalOriginFailures) return this.tryEject(key, m, 'consecutive-local-origin-failures');
      return undefined;
    } else {
      // Unsplit, Envoy maps them to responses: a timeout to 504, anything else to 503.
      status = result === 'timeout' ? 504 : 503;
    }
    if (status < 500 || status > 599) {
      m.consecutive5xx = 0;
      m.consecutiveGateway = 0;
      return undefined;
    }
    m.consecutive5xx++;
    if (status >= 502 && status <= 504) m.consecutiveGateway++;
    else m.consecutiveGateway = 0;
    if (c.consecutiveGatewayErrors > 0 && m.consecutiveGateway >= c.consecutiveGatewayErrors) return this.tryEject(key, m, 'consecutive-gateway-errors');
    if (c.consecutive5xxErrors > 0 && m.consecutive5xx >= c.consecutive5xxErrors) return this.tryEject(key, m, 'consecutive-5xx');
    return undefined;
  }

  /**
   * The interval sweep: returns endpoints whose ejection time is over, and lowers the multiplier of
   * those that stayed in service for the whole interval. The proxy calls it every `intervalMs`.
   */
  sweep(): OutlierEvent[] {
    const now = this.clock();
    const events: OutlierEvent[] = [];
    for (const [key, m] of this.monitors) {
      if (m.ejectedAt === undefined) {
        if (m.multiplier > 0) m.multiplier--;
        continue;
      }
      if (now - m.ejectedAt < m.ejectedForMs) continue;
      const ejectedMs = now - m.ejectedAt;
      m.ejectedAt = undefined;
      m.consecutive5xx = m.consecutiveGateway = m.consecutiveLocal = 0;
      this.active--;
      this.version++;
      this.counters.returned++;
      events.push(this.emit({ type: 'returned', key, at: now, ejectedMs }));
    }
    return events;
  }

  private tryEject(key: string, m: Monitor, reason: EjectionReason): OutlierEvent {
    const now = this.clock();
    // Counted again from zero either way, so an endpoint kept in by the cap is tried again after as many errors.
    m.consecutive5xx = m.consecutiveGateway = m.consecutiveLocal = 0;
    // Envoy's rule: eject while the share already ejected is below the cap, so the first always goes.
    if ((this.active * 100) / this.monitors.size >= this.config.maxEjectionPercent) {
      this.counters.overflow++;
      return this.emit({ type: 'overflow', key, reason, at: now });
    }
    const base = this.config.baseEjectionTimeMs;
    const longest = Math.max(base, this.config.maxEjectionTimeMs);
    if (base * m.multiplier < longest) m.multiplier++;
    m.ejectedAt = now;
    m.ejectedForMs = Math.min(base * m.multiplier, longest);
    this.active++;
    this.version++;
    this.counters.ejected++;
    return this.emit({ type: 'ejected', key, reason, at: now, forMs: m.ejectedForMs, timesEjected: m.multiplier });
  }

  private emit(event: OutlierEvent): OutlierEvent {
    this.listener?.(event);
    return event;
  }
}
