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

export class CircuitBreaker {
  connections = 0;
  pending = 0;
  requests = 0;
  retries = 0;
  /** Envoy's upstream_cx_overflow, upstream_rq_pending_overflow, upstream_rq_overflow (counted as UO), upstream_rq_retry_overflow. */
  readonly overflows: Record<Limit, number> = { maxConnections: 0, http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRetries: 0 };

  constructor(readonly limits: Readonly<ConnectionPoolLimits> = istioConnectionPoolDefaults) {}

  tryConnection(): Admission {
    if (this.connections >= this.limits.maxConnections) return this.overflow('maxConnections');
    this.connections++;
    return admitted;
  }

  releaseConnection(): void {
    if (this.connections > 0) this.connections--;
  }

  tryPending(): Admission {
    if (this.pending >= this.limits.http1MaxPendingRequests) return this.overflow('http1MaxPendingRequests');
    this.pending++;
    return admitted;
  }

  releasePending(): void {
    if (this.pending > 0) this.pending--;
  }

  tryRequest(): Admission {
    if (this.requests >= this.limits.http2MaxRequests) return this.overflow('http2MaxRequests');
    this.requests++;
    return admitted;
  }

  releaseRequest(): void {
    if (this.requests > 0) this.requests--;
  }

  tryRetry(): Admission {
    if (this.retries >= this.limits.maxRetries) return this.overflow('maxRetries');
    this.retries++;
    return admitted;
  }

  releaseRetry(): void {
    if (this.retries > 0) this.retries--;
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
