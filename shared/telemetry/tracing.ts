// Distributed tracing for HTTP hops (the waypoint's, and the sample apps' client and server spans):
// the waypoint continues the client's trace (W3C traceparent/tracestate,
// or B3 single or multi header), records a server span per request and a client span per upstream
// attempt, names the real source and destination workloads on them, and passes the context on.
// Spans go over OTLP/HTTP (JSON) in batches from a bounded queue (otlp-tracer.ts). Without an
// endpoint OpenTelemetry is never loaded (it costs a waypoint about 10 MB): there is no provider,
// exporter or timer, every call returns one shared no-op span, and the proxy forwards the client's
// trace headers untouched.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { WorkloadEntry } from '../protocol/config.js';

export interface TracingOptions {
  /** The OTLP/HTTP traces URL (`http://10.0.0.5:4318/v1/traces`); undefined turns tracing off. */
  endpoint?: string;
  /** The resource's service.name, e.g. `waypoint.shop`. */
  serviceName: string;
  /** The waypoint's own namespace, Istio's `istio.namespace`. */
  namespace?: string;
  /** The share of new traces recorded, 0 to 1 (default 1). A client's decision is always kept. */
  sampling?: number;
  /** Spans held for export at most; past it new spans are dropped, never the proxy's memory (default 2048). */
  maxQueueSize?: number;
  /** How often a batch leaves, in milliseconds (default 1000). */
  exportIntervalMs?: number;
  /**
   * How long one export may take, retries included (the exporter retries a refused connection with
   * backoff), in milliseconds (default 10000); it bounds how long shutdown waits for a collector that is down.
   */
  exportTimeoutMs?: number;
}

/** What the waypoint knows of a request when it arrives. */
export interface ServerRequest {
  method: string;
  /** The path and query as sent. */
  path: string;
  authority: string;
  scheme?: 'http' | 'https';
  /** `HTTP/1.1`, `HTTP/2`. */
  httpVersion?: string;
  /** The client's address (the HBONE CONNECT's source). */
  peerAddress?: string;
  userAgent?: string;
  requestId?: string;
  source?: WorkloadEntry;
  /** The identity the client proved, with or without `spiffe://`. */
  sourcePrincipal?: string;
  service?: { name: string; namespace: string };
  servicePort?: number;
}

/** What the waypoint knows once the response has ended. */
export interface ServerOutcome {
  responseCode: number;
  responseFlags?: string;
  grpcStatus?: number;
  /** The backend that answered last. */
  destination?: WorkloadEntry;
  destinationPrincipal?: string;
  upstreamCluster?: string;
  upstreamHost?: string;
  requestBytes?: number;
  responseBytes?: number;
  routeName?: string;
}

/** One upstream attempt (the first try, a retry, a mirror). */
export interface UpstreamAttempt {
  upstreamCluster?: string;
  /** The backend's `ip:port`. */
  upstreamHost?: string;
  destination?: WorkloadEntry;
  /** 1 for the first try. */
  attempt?: number;
}

/** A span as the proxy handles it; with tracing off, one shared object that does nothing. */
export interface HttpSpan {
  /** The trace's ID (32 hex digits), for the access log; undefined with tracing off. */
  readonly traceId: string | undefined;
  /** A client span for one upstream attempt, child of this one. */
  child(a: UpstreamAttempt): HttpSpan;
  /** Writes this span's context into a request's headers: traceparent always, B3 as the client sent it. */
  injectInto(headers: OutgoingHttpHeaders): void;
  /** Ends the span; `error` marks a failed attempt (reset, timeout) that has no response code. */
  end(o: Partial<ServerOutcome> & { error?: string }): void;
}

/** Spans for a process's HTTP hops; with tracing off, one that creates nothing. */
export interface HttpTracer {
  readonly enabled: boolean;
  readonly counts: TracingCounts;
  /**
   * The server span of a request: it continues the trace in `headers` (traceparent first, then B3)
   * with the client's span as parent, or starts a new trace.
   */
  startServer(headers: IncomingHttpHeaders, r: ServerRequest): HttpSpan;
  /** A client span that starts a trace (an app calling out); inject it into the request's headers. */
  startClient(a: UpstreamAttempt): HttpSpan;
  /**
   * Exports what is queued and stops; spans ended after this are dropped. A collector that cannot
   * take them does not fail the process's exit: they count in `counts.spansFailed`.
   */
  shutdown(): Promise<void>;
  /** Exports what is queued now (a drain before exit); failures count as in shutdown. */
  flush(): Promise<void>;
}

/** Counts kept by the exporter, for the waypoint's own metrics. */
export interface TracingCounts {
  spansExported: number;
  spansFailed: number;
  exportRequests: number;
}

const noSpan: HttpSpan = Object.freeze({
  traceId: undefined,
  child: () => noSpan,
  injectInto: () => undefined,
  end: () => undefined,
});

const off: HttpTracer = Object.freeze({
  enabled: false,
  counts: Object.freeze({ spansExported: 0, spansFailed: 0, exportRequests: 0 }),
  startServer: () => noSpan,
  startClient: () => noSpan,
  shutdown: () => Promise.resolve(),
  flush: () => Promise.resolve(),
});

/** The tracer for `o`: OpenTelemetry's, loaded now, when an endpoint is given; else the one that does nothing. */
export async function createTracer(o: TracingOptions): Promise<HttpTracer> {
  if (o.endpoint === undefined) return off;
  const { OtlpTracer } = await import('./otlp-tracer.js');
  return new OtlpTracer(o);
}
