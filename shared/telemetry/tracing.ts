// Distributed tracing for HTTP hops (the waypoint's, and the sample apps' client and server spans):
// the waypoint continues the client's trace (W3C traceparent/tracestate,
// or B3 single or multi header), records a server span per request and a client span per upstream
// attempt, names the real source and destination workloads on them, and passes the context on.
// Spans go over OTLP/HTTP (JSON) in batches from a bounded queue. Without an endpoint there is no
// provider, exporter or timer, and a request creates nothing: every call returns one shared no-op
// span, and the proxy forwards the client's trace headers untouched.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, type Context, type Span, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, type ReadableSpan, type SpanExporter, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { serviceHostname, type WorkloadEntry } from '../protocol/config.js';
import { workloadName } from '../resources/canonical.js';

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

const noSpan: HttpSpan = Object.freeze({
  traceId: undefined,
  child: () => noSpan,
  injectInto: () => undefined,
  end: () => undefined,
});

/** How the client sent B3, so the backend receives the same. */
type B3Form = 'none' | 'single' | 'multi';

/** Counts kept by the exporter, for the waypoint's own metrics. */
export interface TracingCounts {
  spansExported: number;
  spansFailed: number;
  exportRequests: number;
}

export class HttpTracer {
  readonly enabled: boolean;
  readonly counts: TracingCounts = { spansExported: 0, spansFailed: 0, exportRequests: 0 };
  private readonly provider?: TracerProvider;
  private readonly tracer?: Tracer;
  private readonly w3c = new W3CTraceContextPropagator();
  private readonly b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
  private readonly b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });

  constructor(private readonly o: TracingOptions) {
    this.enabled = o.endpoint !== undefined;
    if (!this.enabled) return;
    const timeout = o.exportTimeoutMs ?? 10_000;
    const exporter = countingExporter(new OTLPTraceExporter({ url: o.endpoint, timeoutMillis: timeout }), this.counts);
    // A provider of our own, never the global one: the waypoint's code asks this object for spans.
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': o.serviceName, ...(o.namespace ? { 'service.namespace': o.namespace } : {}) }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(o.sampling ?? 1) }),
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          maxQueueSize: o.maxQueueSize ?? 2048,
          maxExportBatchSize: Math.min(512, o.maxQueueSize ?? 2048),
          scheduledDelayMillis: o.exportIntervalMs ?? 1000,
          exportTimeoutMillis: timeout,
        }),
      ],
    });
    this.tracer = this.provider.getTracer('ambit-waypoint');
  }

  /**
   * The server span of a request: it continues the trace in `headers` (traceparent first, then B3)
   * with the client's span as parent, or starts a new trace.
   */
  startServer(headers: IncomingHttpHeaders, r: ServerRequest): HttpSpan {
    if (!this.tracer) return noSpan;
    let parent: Context = ROOT_CONTEXT;
    if (headers.traceparent !== undefined) parent = this.w3c.extract(parent, headers, defaultTextMapGetter);
    if (!trace.getSpanContext(parent)) parent = this.b3Single.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
    const b3: B3Form = headers.b3 !== undefined ? 'single' : headers['x-b3-traceid'] !== undefined ? 'multi' : 'none';
    const host = r.service ? serviceHostname(r.service) : undefined;
    const url = `${r.scheme ?? 'http'}://${r.authority}${r.path}`;
    const span = this.tracer.startSpan(
      // Envoy's operation name for a route to a Service (its decorator), else the authority.
      `${host && r.servicePort ? `${host}:${r.servicePort}` : r.authority}/*`,
      {
        kind: SpanKind.SERVER,
        attributes: {
          // Istio's (Envoy's) tag names, which Jaeger and Kiali users search by.
          'http.method': r.method,
          'http.url': url,
          'http.protocol': r.httpVersion,
          'peer.address': r.peerAddress,
          user_agent: r.userAgent,
          'guid:x-request-id': r.requestId,
          component: 'proxy',
          'istio.namespace': this.o.namespace,
          ...sourceAttributes(r.source, r.sourcePrincipal),
          'istio.destination_service': host,
          // OpenTelemetry's semantic conventions for the same facts.
          'http.request.method': r.method,
          'url.full': url,
          'url.path': pathOnly(r.path),
          'url.scheme': r.scheme ?? 'http',
          'server.address': r.authority,
          'network.protocol.version': r.httpVersion?.replace(/^HTTP\//, ''),
          'client.address': r.peerAddress,
          'user_agent.original': r.userAgent,
        },
      },
      parent,
    );
    return new RecordingSpan(this, span, trace.setSpan(parent, span), b3);
  }

  /** A client span that starts a trace (an app calling out); inject it into the request's headers. */
  startClient(a: UpstreamAttempt): HttpSpan {
    if (!this.tracer) return noSpan;
    return this.startAttempt(ROOT_CONTEXT, a, 'none');
  }

  /** @internal A client span under `parent`, for RecordingSpan.child. */
  startAttempt(parent: Context, a: UpstreamAttempt, b3: B3Form): HttpSpan {
    const span = this.tracer!.startSpan(
      a.upstreamCluster ?? 'upstream',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          upstream_cluster: a.upstreamCluster,
          'upstream.address': a.upstreamHost,
          'server.address': hostOf(a.upstreamHost),
          'server.port': portOf(a.upstreamHost),
          'http.request.resend_count': a.attempt && a.attempt > 1 ? a.attempt - 1 : undefined,
          ...destinationAttributes(a.destination, undefined),
        },
      },
      parent,
    );
    return new RecordingSpan(this, span, trace.setSpan(parent, span), b3);
  }

  /** @internal Writes `context` into headers in W3C form, and in the B3 form the client used. */
  inject(context: Context, headers: OutgoingHttpHeaders, b3: B3Form): void {
    this.w3c.inject(context, headers, defaultTextMapSetter);
    if (b3 === 'single') this.b3Single.inject(context, headers, defaultTextMapSetter);
    if (b3 === 'multi') {
      // The client's parent is not ours: a copied x-b3-parentspanid would misplace the span.
      delete headers['x-b3-parentspanid'];
      this.b3Multi.inject(context, headers, defaultTextMapSetter);
    }
  }

  /**
   * Exports what is queued and stops; spans ended after this are dropped. A collector that cannot
   * take them does not fail the waypoint's exit: they count in `counts.spansFailed`.
   */
  async shutdown(): Promise<void> {
    await this.provider?.shutdown().catch(() => undefined);
  }

  /** Exports what is queued now (a drain before exit); failures count as in shutdown. */
  async flush(): Promise<void> {
    await this.provider?.forceFlush().catch(() => undefined);
  }
}

class RecordingSpan implements HttpSpan {
  constructor(
    private readonly tracer: HttpTracer,
    private readonly span: Span,
    private readonly context: Context,
    private readonly b3: B3Form,
  ) {}

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  child(a: UpstreamAttempt): HttpSpan {
    return this.tracer.startAttempt(this.context, a, this.b3);
  }

  injectInto(headers: OutgoingHttpHeaders): void {
    this.tracer.inject(this.context, headers, this.b3);
  }

  end(o: Partial<ServerOutcome> & { error?: string }): void {
    const span = this.span;
    if (span.isRecording()) {
      span.setAttributes({
        'http.status_code': o.responseCode,
        'http.response.status_code': o.responseCode,
        response_flags: o.responseFlags,
        'rpc.grpc.status_code': o.grpcStatus,
        upstream_cluster: o.upstreamCluster,
        'upstream.address': o.upstreamHost,
        request_size: o.requestBytes,
        response_size: o.responseBytes,
        'http.route': o.routeName,
        ...destinationAttributes(o.destination, o.destinationPrincipal),
      });
      // A server span fails on 5xx only (semantic conventions); no response at all is a failure too.
      if (o.error !== undefined || o.responseCode === 0 || (o.responseCode !== undefined && o.responseCode >= 500)) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: o.error ?? o.responseFlags });
        if (o.error !== undefined) span.setAttribute('error.type', o.error);
      }
    }
    span.end();
  }
}

function sourceAttributes(w: WorkloadEntry | undefined, sourcePrincipal: string | undefined) {
  return {
    'istio.source_workload': w ? workloadName(w.owner, w.name) : undefined,
    'istio.source_namespace': w?.namespace,
    'istio.source_pod': w?.name,
    'istio.source_principal': sourcePrincipal ? withScheme(sourcePrincipal) : undefined,
  };
}

function destinationAttributes(w: WorkloadEntry | undefined, destinationPrincipal: string | undefined) {
  return {
    'istio.destination_workload': w ? workloadName(w.owner, w.name) : undefined,
    'istio.destination_namespace': w?.namespace,
    'istio.destination_pod': w?.name,
    'istio.destination_principal': destinationPrincipal ? withScheme(destinationPrincipal) : undefined,
  };
}

function withScheme(p: string): string {
  return p.startsWith('spiffe://') ? p : `spiffe://${p}`;
}

function pathOnly(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
}

function hostOf(hostPort: string | undefined): string | undefined {
  if (!hostPort) return undefined;
  const colon = hostPort.lastIndexOf(':');
  return colon < 0 ? hostPort : hostPort.slice(0, colon);
}

function portOf(hostPort: string | undefined): number | undefined {
  const colon = hostPort?.lastIndexOf(':') ?? -1;
  return colon < 0 ? undefined : Number(hostPort!.slice(colon + 1));
}

/** The exporter, counting what it sent and what failed, so an unreachable collector shows in the metrics. */
function countingExporter(inner: SpanExporter, counts: TracingCounts): SpanExporter {
  return {
    export(spans: ReadableSpan[], done) {
      counts.exportRequests++;
      inner.export(spans, (result) => {
        // ExportResultCode.SUCCESS is 0.
        if (result.code === 0) counts.spansExported += spans.length;
        else counts.spansFailed += spans.length;
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
}
