// The tracer of tracing.ts with OpenTelemetry behind it, loaded only when a traces endpoint is
// configured: spans in the client's trace (W3C first, then B3), their context written on in W3C form
// and in the B3 form the client used, exported over OTLP/HTTP in batches from a bounded queue.

import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { defaultTextMapGetter, defaultTextMapSetter, ROOT_CONTEXT, type Context, type Span, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, ParentBasedSampler, type ReadableSpan, type SpanExporter, TraceIdRatioBasedSampler, TracerProvider } from '@opentelemetry/sdk-trace';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { serviceHostname, type WorkloadEntry } from '../protocol/config.js';
import { workloadName } from '../resources/canonical.js';
import { principalLabel } from './labels.js';
import type { HttpSpan, HttpTracer, ServerOutcome, ServerRequest, TracingCounts, TracingOptions, UpstreamAttempt } from './tracing.js';

/** How the client sent B3, so the backend receives the same. */
type B3Form = 'none' | 'single' | 'multi';

export class OtlpTracer implements HttpTracer {
  readonly enabled = true;
  readonly counts: TracingCounts = { spansExported: 0, spansFailed: 0, exportRequests: 0 };
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;
  private readonly w3c = new W3CTraceContextPropagator();
  private readonly b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
  private readonly b3Multi = new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER });

  /** `o.endpoint` is set: createTracer gives the no-op tracer otherwise. */
  constructor(private readonly o: TracingOptions) {
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

  startServer(headers: IncomingHttpHeaders, r: ServerRequest): HttpSpan {
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
          ...workloadAttributes('source', r.source, r.sourcePrincipal),
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

  startClient(a: UpstreamAttempt): HttpSpan {
    return this.startAttempt(ROOT_CONTEXT, a, 'none');
  }

  /** @internal A client span under `parent`, for RecordingSpan.child. */
  startAttempt(parent: Context, a: UpstreamAttempt, b3: B3Form): HttpSpan {
    const span = this.tracer.startSpan(
      a.upstreamCluster ?? 'upstream',
      {
        kind: SpanKind.CLIENT,
        attributes: {
          upstream_cluster: a.upstreamCluster,
          'upstream.address': a.upstreamHost,
          'server.address': hostOf(a.upstreamHost),
          'server.port': portOf(a.upstreamHost),
          'http.request.resend_count': a.attempt && a.attempt > 1 ? a.attempt - 1 : undefined,
          ...workloadAttributes('destination', a.destination, undefined),
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

  async shutdown(): Promise<void> {
    await this.provider.shutdown().catch(() => undefined);
  }

  async flush(): Promise<void> {
    await this.provider.forceFlush().catch(() => undefined);
  }
}

class RecordingSpan implements HttpSpan {
  constructor(
    private readonly tracer: OtlpTracer,
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
        ...workloadAttributes('destination', o.destination, o.destinationPrincipal),
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

/** Istio's tags naming one end's workload: `istio.source_*` or `istio.destination_*`. */
function workloadAttributes(end: 'source' | 'destination', w: WorkloadEntry | undefined, principal: string | undefined) {
  return {
    [`istio.${end}_workload`]: w ? workloadName(w.owner, w.name) : undefined,
    [`istio.${end}_namespace`]: w?.namespace,
    [`istio.${end}_pod`]: w?.name,
    [`istio.${end}_principal`]: principal ? principalLabel(principal) : undefined,
  };
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
