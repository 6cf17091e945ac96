// The waypoint's Istio HTTP metrics as a Prometheus scrape shows them: the full label set of a
// request between two known workloads, its outcome labels (code, gRPC status, flags), Envoy's
// buckets for duration and sizes, what is `unknown` when the waypoint does not know it, series that
// survive a configuration push, and nothing that promtool's linter rejects.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { istioBuckets, type RequestRecord, WaypointMetrics } from '../../../waypoint/telemetry/metrics.js';
import type { WorkloadEntry } from '../../../shared/protocol/config.js';

const web: WorkloadEntry = { name: 'web-7d9f-abc', namespace: 'shop', ip: '10.1.0.4', node: 'n1', serviceAccount: 'web', owner: 'Deployment/web', canonicalService: 'webshop', canonicalRevision: 'v1' };
const reviews: WorkloadEntry = { name: 'reviews-v2-5c7-xyz', namespace: 'shop', ip: '10.1.1.7', node: 'n2', serviceAccount: 'reviews', owner: 'Deployment/reviews-v2', canonicalService: 'reviews', canonicalRevision: 'v2' };

function ok(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    source: web,
    sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/web',
    destination: reviews,
    service: { name: 'reviews', namespace: 'shop' },
    protocol: 'http',
    responseCode: 200,
    responseFlags: '-',
    durationMs: 7,
    requestBytes: 0,
    responseBytes: 1200,
    ...over,
  };
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The samples named `name` whose labels include `match`. */
function select(samples: Sample[], name: string, match: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

async function scrape(m: WaypointMetrics): Promise<Sample[]> {
  return parse(await m.registry.metrics());
}

test('a request between two known workloads counts in istio_requests_total with Istio\'s full label set for reporter="waypoint"', async () => {
  const m = new WaypointMetrics({ cluster: 'east' });
  for (let i = 0; i < 3; i++) m.record(ok());
  const [requests, ...others] = select(await scrape(m), 'istio_requests_total');
  assert.is(others.length, 0);
  assert.is(requests!.value, 3);
  assert.equal(requests!.labels, {
    reporter: 'waypoint',
    source_workload: 'web',
    source_canonical_service: 'webshop',
    source_canonical_revision: 'v1',
    source_workload_namespace: 'shop',
    source_principal: 'spiffe://cluster.local/ns/shop/sa/web',
    source_app: 'webshop',
    source_version: 'v1',
    source_cluster: 'east',
    destination_service: 'reviews.shop.svc.cluster.local',
    destination_service_namespace: 'shop',
    destination_service_name: 'reviews',
    destination_workload: 'reviews-v2',
    destination_canonical_service: 'reviews',
    destination_canonical_revision: 'v2',
    destination_workload_namespace: 'shop',
    destination_principal: 'spiffe://cluster.local/ns/shop/sa/reviews',
    destination_app: 'reviews',
    destination_version: 'v2',
    destination_cluster: 'east',
    request_protocol: 'http',
    response_code: '200',
    grpc_response_status: '',
    response_flags: '-',
    connection_security_policy: 'mutual_tls',
  });
});

test('each outcome is its own series: a 503 with UF beside the 200s, queryable by code and flags', async () => {
  const m = new WaypointMetrics();
  m.record(ok());
  m.record(ok({ responseCode: 503, responseFlags: 'UF', destination: undefined, responseBytes: 91 }));
  m.record(ok({ responseCode: 503, responseFlags: 'UF', destination: undefined, responseBytes: 91 }));
  m.record(ok({ responseCode: 404, responseFlags: 'NR', destination: undefined, service: undefined }));
  const samples = await scrape(m);
  assert.is(select(samples, 'istio_requests_total', { response_code: '200', response_flags: '-' })[0]?.value, 1);
  const failed = select(samples, 'istio_requests_total', { response_code: '503', response_flags: 'UF' });
  assert.is(failed.length, 1);
  assert.is(failed[0]!.value, 2);
  // No backend was chosen: the destination workload is unknown, the Service is still named.
  assert.is(failed[0]!.labels.destination_workload, 'unknown');
  assert.is(failed[0]!.labels.destination_principal, 'unknown');
  assert.is(failed[0]!.labels.destination_service_name, 'reviews');
  const noRoute = select(samples, 'istio_requests_total', { response_code: '404', response_flags: 'NR' })[0]!;
  assert.is(noRoute.labels.destination_service, 'unknown');
  assert.is(m.seriesCount, 3);
});

test('gRPC requests say grpc and their grpc-status; the HTTP status stays in response_code', async () => {
  const m = new WaypointMetrics();
  m.record(ok({ protocol: 'grpc', grpcStatus: 0 }));
  m.record(ok({ protocol: 'grpc', grpcStatus: 14 }));
  const samples = await scrape(m);
  const grpc = select(samples, 'istio_requests_total', { request_protocol: 'grpc' });
  assert.equal(grpc.map((s) => [s.labels.response_code, s.labels.grpc_response_status, s.value]).sort(), [
    ['200', '0', 1],
    ['200', '14', 1],
  ]);
});

test('a grpc-status outside the spec counts under its own value, apart from every other outcome', async () => {
  const m = new WaypointMetrics();
  m.record(ok({ protocol: 'grpc', grpcStatus: 32, responseCode: 200 }));
  m.record(ok({ protocol: 'grpc', grpcStatus: 0, responseCode: 201 }));
  m.record(ok({ protocol: 'grpc', grpcStatus: 32, responseCode: 200 }));
  m.record(ok({ protocol: 'grpc', grpcStatus: 31 }));
  m.record(ok({ protocol: 'grpc' }));
  const grpc = select(await scrape(m), 'istio_requests_total', { request_protocol: 'grpc' });
  assert.equal(grpc.map((s) => [s.labels.response_code, s.labels.grpc_response_status, s.value]).sort(), [
    ['200', '', 1],
    ['200', '31', 1],
    ['200', '32', 2],
    ['201', '0', 1],
  ]);
});

test('durations and sizes fall in Envoy\'s default buckets, with sum and count', async () => {
  const m = new WaypointMetrics();
  m.record(ok({ durationMs: 7, requestBytes: 0, responseBytes: 1200 }));
  m.record(ok({ durationMs: 120, requestBytes: 300, responseBytes: 50 }));
  m.record(ok({ durationMs: 4_000_000, requestBytes: 0, responseBytes: 0 }));
  const samples = await scrape(m);
  const le = (name: string) => Object.fromEntries(select(samples, `${name}_bucket`).map((s) => [s.labels.le, s.value]));
  const duration = le('istio_request_duration_milliseconds');
  assert.equal(select(samples, 'istio_request_duration_milliseconds_bucket').map((s) => s.labels.le), [...istioBuckets.map(String), '+Inf']);
  assert.is(duration['5'], 0);
  assert.is(duration['10'], 1);
  assert.is(duration['100'], 1);
  assert.is(duration['250'], 2);
  assert.is(duration['3600000'], 2);
  assert.is(duration['+Inf'], 3);
  assert.is(select(samples, 'istio_request_duration_milliseconds_sum')[0]!.value, 4_000_127);
  assert.is(select(samples, 'istio_request_duration_milliseconds_count')[0]!.value, 3);
  const requestBytes = le('istio_request_bytes');
  assert.is(requestBytes['0.5'], 2, 'bodiless requests are in the first bucket');
  assert.is(requestBytes['500'], 3);
  const responseBytes = le('istio_response_bytes');
  assert.is(responseBytes['50'], 2);
  assert.is(responseBytes['1000'], 2);
  assert.is(responseBytes['2500'], 3);
  assert.is(select(samples, 'istio_response_bytes_sum')[0]!.value, 1250);
  // The histograms carry the same labels as the counter.
  assert.is(select(samples, 'istio_response_bytes_count', { destination_workload: 'reviews-v2', reporter: 'waypoint' })[0]!.value, 3);
});

test('a client the waypoint cannot place is unknown, but the identity mutual TLS proved is still its principal', async () => {
  const m = new WaypointMetrics();
  m.record(ok({ source: undefined, sourcePrincipal: 'cluster.local/ns/legacy/sa/default' }));
  m.record(ok({ source: undefined, sourcePrincipal: undefined, security: 'none', destinationPrincipal: 'spiffe://cluster.local/ns/shop/sa/reviews-v2' }));
  const samples = await scrape(m);
  const proved = select(samples, 'istio_requests_total', { connection_security_policy: 'mutual_tls' })[0]!;
  assert.is(proved.labels.source_workload, 'unknown');
  assert.is(proved.labels.source_workload_namespace, 'unknown');
  assert.is(proved.labels.source_cluster, 'unknown');
  assert.is(proved.labels.source_principal, 'spiffe://cluster.local/ns/legacy/sa/default');
  const plain = select(samples, 'istio_requests_total', { connection_security_policy: 'none' })[0]!;
  assert.is(plain.labels.source_principal, 'unknown');
  assert.is(plain.labels.destination_principal, 'spiffe://cluster.local/ns/shop/sa/reviews-v2', 'a principal given overrides the derived one');
});

test('a configuration push that replaces the workload entries keeps counting in the same series; a new revision starts its own', async () => {
  const m = new WaypointMetrics();
  m.record(ok());
  m.record(ok({ source: { ...web }, destination: { ...reviews } }));
  assert.is(m.seriesCount, 1);
  m.record(ok({ destination: { ...reviews, canonicalRevision: 'v3' } }));
  const samples = await scrape(m);
  assert.is(select(samples, 'istio_requests_total', { destination_version: 'v2' })[0]!.value, 2);
  assert.is(select(samples, 'istio_requests_total', { destination_version: 'v3' })[0]!.value, 1);
});

test('promtool finds nothing to fix in the scrape but Istio\'s own unit, and istio_build names the waypoint', async () => {
  const m = new WaypointMetrics();
  m.record(ok());
  m.record(ok({ protocol: 'grpc', grpcStatus: 2, responseFlags: 'URX,UF', responseCode: 503 }));
  const text = await m.registry.metrics();
  assert.match(text, /# TYPE istio_requests_total counter/);
  assert.match(text, /# TYPE istio_request_duration_milliseconds histogram/);
  assert.match(text, /istio_build\{component="ambit-waypoint",tag="[^"]+"\} 1/);
  const lint = execFileSync('sh', ['-c', 'promtool check metrics 2>&1; true'], { input: text, encoding: 'utf8' });
  // Istio names its duration in milliseconds; dashboards query that name, so it stays.
  assert.is(lint.trim(), 'istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"');
});

test.run();
