// The waypoint's tracing as a collector and a backend see it: a real OTLP/HTTP receiver on
// loopback gets the waypoint's spans in the client's trace, parented to the client's span, naming
// the real source and destination workloads; the backend's request carries the context on in W3C
// form and in the B3 form the client used; no context starts a trace; shutdown delivers what is
// queued; with tracing off nothing is created and headers pass as they came.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTracer, type HttpTracer } from '../../../shared/telemetry/tracing.js';
import type { WorkloadEntry } from '../../../shared/protocol/config.js';

const web: WorkloadEntry = { name: 'web-7d9f-abc', namespace: 'shop', ip: '10.1.0.4', node: 'n1', serviceAccount: 'web', owner: 'Deployment/web' };
const reviews: WorkloadEntry = { name: 'reviews-v2-5c7-xyz', namespace: 'shop', ip: '10.1.1.7', node: 'n2', serviceAccount: 'reviews', owner: 'Deployment/reviews-v2' };

interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  status?: { code?: number };
  attributes: Record<string, unknown>;
  service: unknown;
}

/** An OTLP/HTTP traces receiver: every span it was sent, flattened, and the content types it saw. */
const received: ReceivedSpan[] = [];
const contentTypes = new Set<string>();
let arrived: (() => void) | undefined;
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    contentTypes.add(String(req.headers['content-type']));
    const body = JSON.parse(Buffer.concat(chunks).toString()) as {
      resourceSpans: { resource: { attributes: Attr[] }; scopeSpans: { spans: (Omit<ReceivedSpan, 'attributes' | 'service'> & { attributes: Attr[] })[] }[] }[];
    };
    for (const rs of body.resourceSpans) {
      const service = attributes(rs.resource.attributes)['service.name'];
      for (const ss of rs.scopeSpans) for (const s of ss.spans) received.push({ ...s, attributes: attributes(s.attributes), service });
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    arrived?.();
  });
});
receiver.listen(0, '127.0.0.1');
await once(receiver, 'listening');
const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/traces`;

interface Attr {
  key: string;
  value: { stringValue?: string; intValue?: number | string; boolValue?: boolean; doubleValue?: number };
}
function attributes(list: Attr[]): Record<string, unknown> {
  return Object.fromEntries(list.map((a) => [a.key, a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : (a.value.boolValue ?? a.value.doubleValue))]));
}

/** Waits until the receiver holds `n` spans of `traceId`; fails after 10 s rather than hang the run. */
async function spansOf(traceId: string, n: number): Promise<ReceivedSpan[]> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const spans = received.filter((s) => s.traceId === traceId);
    if (spans.length >= n) return spans;
    if (Date.now() > deadline) throw new Error(`${spans.length} of ${n} spans of trace ${traceId} arrived`);
    await new Promise<void>((resolve) => {
      arrived = resolve;
      setTimeout(resolve, 1000).unref();
    });
  }
}

const request = { method: 'GET', path: '/reviews/0?x=1', authority: 'reviews.shop:9080', httpVersion: 'HTTP/1.1', peerAddress: '10.1.0.4', userAgent: 'curl/8.5.0', requestId: 'req-1', source: web, sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/web', service: { name: 'reviews', namespace: 'shop' }, servicePort: 9080 };
const clientTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
const clientSpan = '00f067aa0ba902b7';

/** One request through the waypoint: the server span, one upstream attempt, the headers the backend gets. */
function proxy(tracer: HttpTracer, incoming: IncomingHttpHeaders): { outgoing: OutgoingHttpHeaders; traceId: string | undefined } {
  const span = tracer.startServer(incoming, request);
  // The proxy copies the client's headers, then the tracer writes its own context over them.
  const outgoing: OutgoingHttpHeaders = { ...incoming };
  const attempt = span.child({ upstreamCluster: 'outbound|9080|v2|reviews.shop.svc.cluster.local', upstreamHost: '10.1.1.7:9080', destination: reviews, attempt: 1 });
  attempt.injectInto(outgoing);
  attempt.end({ responseCode: 200 });
  span.end({ responseCode: 200, responseFlags: '-', destination: reviews, destinationPrincipal: 'spiffe://cluster.local/ns/shop/sa/reviews', upstreamCluster: 'outbound|9080|v2|reviews.shop.svc.cluster.local', upstreamHost: '10.1.1.7:9080', requestBytes: 0, responseBytes: 358 });
  return { outgoing, traceId: span.traceId };
}

/** traceparent's trace ID, span ID and flags. */
function traceparent(h: OutgoingHttpHeaders): { traceId: string; spanId: string; flags: string } {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(h.traceparent));
  assert.ok(m, `traceparent ${String(h.traceparent)}`);
  return { traceId: m[1]!, spanId: m[2]!, flags: m[3]! };
}

test('a request with traceparent: the waypoint\'s spans join the client\'s trace under the client\'s span, and name the real workloads', async () => {
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', namespace: 'shop', exportIntervalMs: 50 });
  const { outgoing, traceId } = proxy(tracer, { traceparent: `00-${clientTrace}-${clientSpan}-01`, tracestate: 'vendor=abc' });
  assert.is(traceId, clientTrace);
  const [server, attempt] = (await spansOf(clientTrace, 2)).sort((a, b) => a.kind - b.kind);
  // SpanKind in OTLP: 2 server, 3 client.
  assert.is(server!.kind, 2);
  assert.is(server!.parentSpanId, clientSpan);
  assert.is(attempt!.kind, 3);
  assert.is(attempt!.parentSpanId, server!.spanId);
  assert.is(server!.service, 'waypoint.shop');
  assert.is(server!.name, 'reviews.shop.svc.cluster.local:9080/*');
  assert.equal(
    {
      source: server!.attributes['istio.source_workload'],
      sourceNamespace: server!.attributes['istio.source_namespace'],
      sourcePrincipal: server!.attributes['istio.source_principal'],
      destination: server!.attributes['istio.destination_workload'],
      destinationPrincipal: server!.attributes['istio.destination_principal'],
      namespace: server!.attributes['istio.namespace'],
      cluster: server!.attributes.upstream_cluster,
      method: server!.attributes['http.method'],
      url: server!.attributes['http.url'],
      status: server!.attributes['http.status_code'],
      semconvStatus: server!.attributes['http.response.status_code'],
      peer: server!.attributes['peer.address'],
    },
    {
      source: 'web',
      sourceNamespace: 'shop',
      sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/web',
      destination: 'reviews-v2',
      destinationPrincipal: 'spiffe://cluster.local/ns/shop/sa/reviews',
      namespace: 'shop',
      cluster: 'outbound|9080|v2|reviews.shop.svc.cluster.local',
      method: 'GET',
      url: 'http://reviews.shop:9080/reviews/0?x=1',
      status: 200,
      semconvStatus: 200,
      peer: '10.1.0.4',
    },
  );
  assert.is(attempt!.attributes['istio.destination_workload'], 'reviews-v2');
  assert.is(attempt!.attributes['server.address'], '10.1.1.7');
  // The backend's parent is the attempt; the trace and its state go on; no B3 is invented.
  const out = traceparent(outgoing);
  assert.equal(out, { traceId: clientTrace, spanId: attempt!.spanId, flags: '01' });
  assert.is(outgoing.tracestate, 'vendor=abc');
  assert.is(outgoing.b3, undefined);
  assert.is(outgoing['x-b3-traceid'], undefined);
  assert.ok([...contentTypes].every((t) => t.startsWith('application/json')), [...contentTypes].join());
  await tracer.shutdown();
});

test('B3 multi-header in: the backend gets x-b3-* and traceparent of the same trace, and the client\'s parent ID is not passed on', async () => {
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', exportIntervalMs: 50 });
  const trace = '80f198ee56343ba864fe8b2a57d3eff7';
  const { outgoing } = proxy(tracer, { 'x-b3-traceid': trace, 'x-b3-spanid': 'e457b5a2e4d86bd1', 'x-b3-parentspanid': '05e3ac9a4f6e3b90', 'x-b3-sampled': '1' });
  const [server, attempt] = (await spansOf(trace, 2)).sort((a, b) => a.kind - b.kind);
  assert.is(server!.parentSpanId, 'e457b5a2e4d86bd1');
  assert.is(outgoing['x-b3-traceid'], trace);
  assert.is(outgoing['x-b3-spanid'], attempt!.spanId);
  assert.is(outgoing['x-b3-sampled'], '1');
  assert.is(outgoing['x-b3-parentspanid'], undefined);
  assert.equal(traceparent(outgoing), { traceId: trace, spanId: attempt!.spanId, flags: '01' });
  await tracer.shutdown();
});

test('B3 single header in: the backend gets a b3 header and traceparent of the same trace', async () => {
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', exportIntervalMs: 50 });
  const trace = 'a3ce929d0e0e47364bf92f3577b34da6';
  const { outgoing } = proxy(tracer, { b3: `${trace}-e457b5a2e4d86bd1-1` });
  const [server, attempt] = (await spansOf(trace, 2)).sort((a, b) => a.kind - b.kind);
  assert.is(server!.parentSpanId, 'e457b5a2e4d86bd1');
  assert.is(outgoing.b3, `${trace}-${attempt!.spanId}-1`);
  assert.is(outgoing['x-b3-traceid'], undefined);
  assert.equal(traceparent(outgoing), { traceId: trace, spanId: attempt!.spanId, flags: '01' });
  await tracer.shutdown();
});

test('a request without trace context starts a new trace whose root is the waypoint\'s span', async () => {
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', exportIntervalMs: 50 });
  const { outgoing, traceId } = proxy(tracer, {});
  const out = traceparent(outgoing);
  assert.is(out.traceId, traceId);
  assert.is.not(out.traceId, '0'.repeat(32));
  const spans = await spansOf(out.traceId, 2);
  const server = spans.find((s) => s.kind === 2)!;
  assert.ok(!server.parentSpanId, `root span has parent ${server.parentSpanId}`);
  await tracer.shutdown();
});

test('a failed upstream marks the server span as an error with the response flags', async () => {
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', exportIntervalMs: 50 });
  const span = tracer.startServer({}, request);
  const attempt = span.child({ upstreamHost: '10.1.1.7:9080', destination: reviews });
  attempt.end({ error: 'connection refused' });
  span.end({ responseCode: 503, responseFlags: 'UF' });
  const spans = await spansOf(span.traceId!, 2);
  const server = spans.find((s) => s.kind === 2)!;
  const client = spans.find((s) => s.kind === 3)!;
  // OTLP status code 2 is ERROR.
  assert.is(server.status?.code, 2);
  assert.is(server.attributes.response_flags, 'UF');
  assert.is(client.status?.code, 2);
  assert.is(client.attributes['error.type'], 'connection refused');
  await tracer.shutdown();
});

test('shutdown delivers the spans still queued', async () => {
  // An interval far beyond the test: only shutdown can send them.
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', exportIntervalMs: 600_000 });
  const ids = Array.from({ length: 5 }, () => proxy(tracer, {}).traceId!);
  assert.is(received.filter((s) => ids.includes(s.traceId)).length, 0);
  await tracer.shutdown();
  assert.is(received.filter((s) => ids.includes(s.traceId)).length, 10);
  assert.is(tracer.counts.spansExported, 10);
  assert.is(tracer.counts.spansFailed, 0);
});

test('the export queue is bounded: past it spans are dropped, not held', async () => {
  const tracer = await createTracer({ endpoint, serviceName: 'waypoint.shop', exportIntervalMs: 600_000, maxQueueSize: 4 });
  const ids = Array.from({ length: 50 }, () => proxy(tracer, {}).traceId!);
  await tracer.shutdown();
  const delivered = received.filter((s) => ids.includes(s.traceId)).length;
  assert.ok(delivered < 100, `${delivered} of 100 spans delivered through a queue of 4`);
  assert.ok(delivered >= 4, `${delivered} delivered`);
});

test('a collector that is down counts failed spans and does not throw into the proxy', async () => {
  const down = createServer();
  down.listen(0, '127.0.0.1');
  await once(down, 'listening');
  const port = (down.address() as AddressInfo).port;
  down.close();
  await once(down, 'close');
  const tracer = await createTracer({ endpoint: `http://127.0.0.1:${port}/v1/traces`, serviceName: 'waypoint.shop', exportIntervalMs: 600_000, exportTimeoutMs: 300 });
  proxy(tracer, {});
  const started = Date.now();
  await tracer.shutdown();
  assert.ok(Date.now() - started < 5000, 'shutdown waits no longer than the export timeout allows');
  assert.is(tracer.counts.spansExported, 0);
  assert.is(tracer.counts.spansFailed, 2);
});

test('with tracing off nothing is created per request, and trace headers pass as they came', async () => {
  const tracer = await createTracer({ serviceName: 'waypoint.shop' });
  assert.is(tracer.enabled, false);
  const incoming = { traceparent: `00-${clientTrace}-${clientSpan}-01`, 'x-b3-traceid': clientTrace, 'x-b3-spanid': clientSpan };
  const a = tracer.startServer(incoming, request);
  const b = tracer.startServer({}, request);
  assert.is(a, b, 'one shared no-op span');
  assert.is(a.child({}), a);
  assert.is(a.traceId, undefined);
  const outgoing: OutgoingHttpHeaders = { ...incoming };
  a.injectInto(outgoing);
  a.end({ responseCode: 200 });
  assert.equal(outgoing, incoming);
});

test.after(() => {
  receiver.close();
});

test.run();
