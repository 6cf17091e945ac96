// The waypoint's access log as an operator reads it: one JSON line per request on its own stream,
// with Istio's default JSON keys (null where unknown, as Envoy writes them), Istio's cluster name,
// and the real client, backend and trace that Istio's waypoint lines leave out.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { AccessLog, type AccessRecord, upstreamCluster } from '../../../waypoint/telemetry/access-log.js';
import type { WorkloadEntry } from '../../../shared/protocol/config.js';

const web: WorkloadEntry = { name: 'web-7d9f-abc', namespace: 'shop', ip: '10.1.0.4', node: 'n1', serviceAccount: 'web', owner: 'Deployment/web' };
const reviews: WorkloadEntry = { name: 'reviews-v2-5c7-xyz', namespace: 'shop', ip: '10.1.1.7', node: 'n2', serviceAccount: 'reviews', owner: 'Deployment/reviews-v2' };

/** An access log writing to memory, and the lines it wrote, each parsed (a line that is not JSON fails the test). */
function capture(o: { trustDomain?: string } = {}): { log: AccessLog; lines: string[]; parsed: () => Record<string, unknown>[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _e, done) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { log: new AccessLog(stream, o), lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const served: AccessRecord = {
  startTime: Date.parse('2026-03-01T10:00:00.123Z'),
  method: 'GET',
  path: '/reviews/0?x=1',
  httpVersion: 'HTTP/1.1',
  authority: 'reviews.shop:9080',
  requestId: '6d0c2d0e-8a4e-4c39-9d6f-2b1d5c0ce001',
  userAgent: 'curl/8.5.0',
  forwardedFor: '10.1.0.4',
  routeName: 'httproute/shop/reviews/rule/0/match/0',
  upstreamHost: '10.1.1.7:9080',
  servicePort: 9080,
  subset: 'v2',
  upstreamServiceTimeMs: 11.6,
  responseCodeDetails: 'via_upstream',
  downstreamRemoteAddress: '10.1.0.4:48122',
  downstreamLocalAddress: '10.96.0.20:9080',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  source: web,
  sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/web',
  destination: reviews,
  service: { name: 'reviews', namespace: 'shop' },
  protocol: 'http',
  responseCode: 200,
  responseFlags: '-',
  durationMs: 12.4,
  requestBytes: 0,
  responseBytes: 358,
};

test('a served request is one JSON line with Istio\'s default keys, the real client and backend, and its trace', async () => {
  const { log, lines, parsed } = capture();
  log.write(served);
  await log.flush();
  assert.is(lines.length, 1);
  assert.equal(parsed()[0], {
    log: 'access',
    start_time: '2026-03-01T10:00:00.123Z',
    method: 'GET',
    path: '/reviews/0?x=1',
    protocol: 'HTTP/1.1',
    response_code: 200,
    response_flags: '-',
    response_code_details: 'via_upstream',
    bytes_received: 0,
    bytes_sent: 358,
    duration: 12,
    upstream_service_time: '12',
    x_forwarded_for: '10.1.0.4',
    user_agent: 'curl/8.5.0',
    request_id: '6d0c2d0e-8a4e-4c39-9d6f-2b1d5c0ce001',
    authority: 'reviews.shop:9080',
    upstream_host: '10.1.1.7:9080',
    upstream_cluster: 'outbound|9080|v2|reviews.shop.svc.cluster.local',
    upstream_transport_failure_reason: null,
    downstream_local_address: '10.96.0.20:9080',
    downstream_remote_address: '10.1.0.4:48122',
    route_name: 'httproute/shop/reviews/rule/0/match/0',
    reporter: 'waypoint',
    source_workload: 'shop/web-7d9f-abc',
    source_principal: 'cluster.local/ns/shop/sa/web',
    destination_workload: 'shop/reviews-v2-5c7-xyz',
    destination_principal: 'cluster.local/ns/shop/sa/reviews',
    destination_service: 'shop/reviews',
    request_protocol: 'http',
    grpc_status: null,
    connection_security_policy: 'mutual_tls',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  });
});

test('a request no route matched has nulls where there was no backend, and its flag', async () => {
  const { log, parsed } = capture({ trustDomain: 'example.org' });
  log.write({
    startTime: Date.now(),
    method: 'POST',
    path: '/nowhere',
    httpVersion: 'HTTP/2',
    authority: 'reviews.shop:9080',
    sourcePrincipal: 'example.org/ns/legacy/sa/default',
    service: { name: 'reviews', namespace: 'shop' },
    protocol: 'http',
    responseCode: 404,
    responseFlags: 'NR',
    responseCodeDetails: 'route_not_found',
    durationMs: 0.3,
    requestBytes: 17,
    responseBytes: 0,
  });
  // A gRPC request to a backend whose identity the record does not give: the trust domain names it.
  log.write({ ...served, protocol: 'grpc', grpcStatus: 14, responseCode: 200, sourcePrincipal: undefined, security: 'none', traceId: undefined, servicePort: undefined });
  await log.flush();
  const [noRoute, grpc] = parsed();
  assert.is(noRoute!.response_code, 404);
  assert.is(noRoute!.response_flags, 'NR');
  assert.is(noRoute!.protocol, 'HTTP/2');
  assert.is(noRoute!.bytes_received, 17);
  for (const key of ['upstream_host', 'upstream_cluster', 'destination_workload', 'destination_principal', 'source_workload', 'request_id', 'user_agent', 'trace_id', 'upstream_service_time']) {
    assert.is(noRoute![key], null, key);
  }
  assert.is(noRoute!.source_principal, 'example.org/ns/legacy/sa/default');
  assert.is(grpc!.grpc_status, 14);
  assert.is(grpc!.request_protocol, 'grpc');
  assert.is(grpc!.destination_principal, 'example.org/ns/shop/sa/reviews');
  assert.is(grpc!.connection_security_policy, 'none');
  assert.is(grpc!.upstream_cluster, null, 'without the Service port there is no cluster name');
});

test('upstream_cluster is Istio\'s outbound cluster name, with an empty subset when none was chosen', () => {
  assert.is(upstreamCluster({ name: 'ratings', namespace: 'default' }, 9080), 'outbound|9080||ratings.default.svc.cluster.local');
  assert.is(upstreamCluster({ name: 'ratings', namespace: 'default' }, 9080, 'v1'), 'outbound|9080|v1|ratings.default.svc.cluster.local');
});

test('header values with quotes, backslashes and newlines stay one valid JSON line', async () => {
  const { log, lines, parsed } = capture();
  log.write({ ...served, userAgent: 'evil"\\\n{"a":1}', path: '/a"b' });
  await log.flush();
  assert.is(lines.length, 1);
  assert.is(parsed()[0]!.user_agent, 'evil"\\\n{"a":1}');
  assert.is(parsed()[0]!.path, '/a"b');
});

/** A file-like stream that takes `delayMs` per write and is full past `highWaterMark`: every chunk it was handed, in order. */
function slowStream(delayMs: number, highWaterMark: number): { stream: Writable; chunks: string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    highWaterMark,
    write(chunk: Buffer, _e, done) {
      chunks.push(chunk.toString());
      setTimeout(done, delayMs);
    },
  });
  return { stream, chunks };
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

test('the lines of one event-loop turn reach the stream as one write', async () => {
  const { stream, chunks } = slowStream(0, 1 << 20);
  const log = new AccessLog(stream);
  for (let i = 0; i < 20; i++) log.write({ ...served, requestId: `a${i}` });
  await turn();
  for (let i = 0; i < 20; i++) log.write({ ...served, requestId: `b${i}` });
  await log.close();
  assert.is(chunks.length, 2);
  assert.equal(chunks.join('').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { request_id: string }).request_id), [...Array.from({ length: 20 }, (_, i) => `a${i}`), ...Array.from({ length: 20 }, (_, i) => `b${i}`)]);
});

/**
 * A stream full after its first chunk, whose write completes only when the test releases it; the
 * request ids of every line written, in order; and a close that releases each later write in turn.
 */
function heldStream() {
  const chunks: string[] = [];
  let pending: (() => void) | undefined;
  const stream = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _e, done) {
      chunks.push(chunk.toString());
      pending = done;
    },
  });
  return {
    stream,
    chunks,
    release() {
      const r = pending!;
      pending = undefined;
      r();
    },
    ids: () => chunks.join('').split('\n').filter(Boolean).map((l) => Number((JSON.parse(l) as { request_id: string }).request_id)),
    async closeReleasing(log: AccessLog) {
      const closing = log.close();
      // Each later write completes at once, so that the stream can finish.
      while (pending) {
        const r: () => void = pending;
        pending = undefined;
        r();
        await turn();
      }
      await closing;
    },
  };
}

test('while the stream is busy, lines wait and go together once it drains; closing writes every line', async () => {
  const held = heldStream();
  const { stream, chunks } = held;
  const log = new AccessLog(stream);
  log.write({ ...served, requestId: '0' });
  await turn();
  assert.is(chunks.length, 1, 'the first turn\'s line went');
  // Busy: many turns of lines, and none of them is handed over.
  for (let i = 1; i <= 20; i++) {
    log.write({ ...served, requestId: String(i) });
    await turn();
  }
  assert.is(chunks.length, 1, 'nothing more while the stream is full');
  const drained = once(stream, 'drain');
  held.release();
  await drained;
  await turn();
  assert.is(chunks.length, 2, 'the waiting lines in one write after the drain');
  log.write({ ...served, requestId: '21' });
  await held.closeReleasing(log);
  assert.equal(held.ids(), Array.from({ length: 22 }, (_, i) => i), 'every line, once, in order');
});

test('while the stream stays busy, lines past the bound are dropped and counted, and those kept still go in order', async () => {
  const held = heldStream();
  const stream = held.stream;
  // Room for three lines (and a half) while the stream is busy.
  const one = capture();
  one.log.write({ ...served, requestId: '1' });
  await one.log.close();
  const log = new AccessLog(stream, { maxWaitingChars: Math.floor(3.5 * (one.lines[0]!.length + 1)) });
  log.write({ ...served, requestId: '0' });
  await turn();
  for (let i = 1; i <= 10; i++) log.write({ ...served, requestId: String(i) });
  assert.is(log.dropped, 7, 'three kept, seven dropped');
  await held.closeReleasing(log);
  assert.equal(held.ids(), [0, 1, 2, 3], 'the first lines kept, whole, in order');
});

test.run();
