// The connection pool limits of one destination Service (DestinationRule connectionPool), counted
// as Envoy's circuit breakers count them: connections, requests waiting for a connection, requests in
// flight, and retries in flight. A try that would pass a limit gets an Overflow, which the proxy
// answers with 503 and response flag UO (upstream overflow); a retry that would pass maxRetries is
// simply not made, and the last response goes back. Opening and reusing connections is the proxy's.
//
// The order a proxy follows, as Envoy's HTTP/1 pool does: tryRequest (http2MaxRequests, which
// Envoy applies to every protocol); then reuse an idle connection, or tryConnection to open one
// (maxConnections), or, at that limit, tryPending to wait for one (http1MaxPendingRequests) and 503 UO
// when that overflows too. A connection that has served maxRequestsPerConnection requests is closed
// (connectionSpent). Every successful try* is paired with its release*.

import { giveBack, slotWidth, takeBelow } from './shared-counters.js';
import { unlimited } from './types.js';

export interface ConnectionPoolLimits {
  maxConnections: number;
  http1MaxPendingRequests: number;
  http2MaxRequests: number;
  maxRetries: number;
  /** 0: no limit (Istio's default; Envoy caps it at 2^29). 1 turns keep-alive off. */
  maxRequestsPerConnection: number;
}

/** Istio's defaults when no DestinationRule sets them: in effect no limit (2^32-1). */
export const istioConnectionPoolDefaults: Readonly<ConnectionPoolLimits> = {
  maxConnections: unlimited,
  http1MaxPendingRequests: unlimited,
  http2MaxRequests: unlimited,
  maxRetries: unlimited,
  maxRequestsPerConnection: 0,
};

export type Limit = 'maxConnections' | 'http1MaxPendingRequests' | 'http2MaxRequests' | 'maxRetries';

export interface Overflow {
  readonly ok: false;
  readonly limit: Limit;
  /** Envoy's response flag for the access log: UO, upstream overflow. */
  readonly responseFlag: 'UO';
  readonly status: 503;
}
export interface Admitted {
  readonly ok: true;
}
export type Admission = Admitted | Overflow;

// One object per outcome, so admission allocates nothing.
const admitted: Admitted = { ok: true };
const overflowOf = (limit: Limit): Overflow => Object.freeze({ ok: false, limit, responseFlag: 'UO', status: 503 });
const overflows: Record<Limit, Overflow> = {
  maxConnections: overflowOf('maxConnections'),
  http1MaxPendingRequests: overflowOf('http1MaxPendingRequests'),
  http2MaxRequests: overflowOf('http2MaxRequests'),
  maxRetries: overflowOf('maxRetries'),
};

/** The breaker's fields in its slot (shared-counters.ts): what is open, waiting, in flight, retrying. */
const CONNECTIONS = 0;
const PENDING = 1;
const REQUESTS = 2;
const RETRIES = 3;
/** Requests in flight that hold a connection or wait for one: the forwarder's count against maxConnections. */
const ACTIVE = 4;

export class CircuitBreaker {
  /** Envoy's upstream_cx_overflow, upstream_rq_pending_overflow, upstream_rq_overflow (counted as UO), upstream_rq_retry_overflow: this thread's. */
  readonly overflows: Record<Limit, number> = { maxConnections: 0, http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRetries: 0 };

  /**
   * `counts`: the destination's slot in the waypoint's shared counters, so that every event loop
   * counts against the same limits, as Envoy's workers do; a breaker of its own without it.
   */
  constructor(
    readonly limits: Readonly<ConnectionPoolLimits> = istioConnectionPoolDefaults,
    private readonly counts: Int32Array = new Int32Array(slotWidth),
  ) {}

  get connections(): number {
    return Atomics.load(this.counts, CONNECTIONS);
  }

  get pending(): number {
    return Atomics.load(this.counts, PENDING);
  }

  get requests(): number {
    return Atomics.load(this.counts, REQUESTS);
  }

  get retries(): number {
    return Atomics.load(this.counts, RETRIES);
  }

  tryConnection(): Admission {
    return takeBelow(this.counts, CONNECTIONS, this.limits.maxConnections) ? admitted : this.overflow('maxConnections');
  }

  releaseConnection(): void {
    giveBack(this.counts, CONNECTIONS);
  }

  tryPending(): Admission {
    return takeBelow(this.counts, PENDING, this.limits.http1MaxPendingRequests) ? admitted : this.overflow('http1MaxPendingRequests');
  }

  releasePending(): void {
    giveBack(this.counts, PENDING);
  }

  tryRequest(): Admission {
    return takeBelow(this.counts, REQUESTS, this.limits.http2MaxRequests) ? admitted : this.overflow('http2MaxRequests');
  }

  releaseRequest(): void {
    giveBack(this.counts, REQUESTS);
  }

  tryRetry(): Admission {
    return takeBelow(this.counts, RETRIES, this.limits.maxRetries) ? admitted : this.overflow('maxRetries');
  }

  releaseRetry(): void {
    giveBack(this.counts, RETRIES);
  }

  /** A request starts using (or waiting for) a connection; answers how many do now, this one included. */
  enter(): number {
    return Atomics.add(this.counts, ACTIVE, 1) + 1;
  }

  leave(): void {
    giveBack(this.counts, ACTIVE);
  }

  /** Whether a connection that has served `served` requests must now be closed. */
  connectionSpent(served: number): boolean {
    const max = this.limits.maxRequestsPerConnection;
    return max > 0 && served >= max;
  }

  private overflow(limit: Limit): Overflow {
    this.overflows[limit]++;
    return overflows[limit];
  }
}
