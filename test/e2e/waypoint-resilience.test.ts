// The waypoint's resilience and telemetry on the local cluster, through real clients in a pod of the
// mesh: a flaky backend made healthy by a route's retries, a circuit breaker tripping (503 with flag
// UO) and letting requests through again, an always-failing endpoint ejected by outlier detection and
// returned after its ejection time, a 50% abort fault, and Istio's request metrics on the waypoint's
// 15020 counting exactly what was sent, checked by promtool. The waypoint runs two event loops, which
// count the circuit breaker, the errors in a row and the ejections together.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambitOk, applyAndWait, eventually, leftovers } from './helpers.js';
import { inClient, ns, podLog, statuses, tally, waypointCurrent, waypointMetrics, waypointPodName, upBehindWaypoint } from './waypoint-helpers.js';

let vips = new Map<string, string>();
const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-resilience-'));
/** The aborts the fault test counted at the client, which Prometheus must come to hold too. */
let aborted = 0;
let waypointPod = '';
const waypointLog = () => podLog(waypointPod);

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('set-up: the conformance namespace behind a waypoint', async () => {
  vips = await upBehindWaypoint(['mesh.yaml'], { workers: 2 });
  await eventually('the backends to answer through the waypoint', async () => (await inClient(`curl -sf -m 2 http://${vips.get('echo-v1')}/ && curl -sf -m 2 http://${vips.get('outlier')}/?x || true; curl -sf -m 2 http://${vips.get('echo-v2')}/`)).code === 0, 30_000);
  waypointPod = await waypointPodName();
});

test('a flaky backend (half its answers 503) is made healthy by an HTTPRoute retry, and Istio does not retry 503 by default', async () => {
  const before = tally(await statuses(`http://${vips.get('flaky')}/`, 100));
  assert.ok((before[503] ?? 0) >= 25 && (before[503] ?? 0) <= 75, `without a retry about half fail: ${JSON.stringify(before)}`);
  await applyAndWait(
    dir,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: flaky-retry, namespace: ${ns} }
spec:
  parentRefs: [{ group: "", kind: Service, name: flaky, port: 80 }]
  rules:
  - backendRefs: [{ name: flaky, port: 80 }]
    retry: { attempts: 4, codes: [503], backoff: 10ms }
`,
  );
  await waypointCurrent();
  const after = tally(await statuses(`http://${vips.get('flaky')}/`, 100));
  // Five tries each at 50%: about 3 in 100 still fail.
  assert.ok((after[200] ?? 0) >= 90, `with 4 retries on 503 nearly all succeed: ${JSON.stringify(after)}`);
  assert.match(await waypointLog(), /"response_flags":"URX"/, 'the access log shows retried requests');
});

test('a circuit breaker (maxConnections 1, 1 pending) trips with 503 UO under 12 concurrent slow (2 s) requests, then lets requests through', async () => {
  await applyAndWait(
    dir,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: echo-v1-breaker, namespace: ${ns} }
spec:
  host: echo-v1
  trafficPolicy:
    connectionPool:
      tcp: { maxConnections: 1 }
      http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 }
`,
  );
  await waypointCurrent();
  const codes = tally(await statuses(`http://${vips.get('echo-v1')}/slow?delay=2s`, 12, 12));
  assert.ok((codes[503] ?? 0) >= 5, `most of 12 concurrent requests overflow: ${JSON.stringify(codes)}`);
  assert.ok((codes[200] ?? 0) >= 1, `and at least the first goes through: ${JSON.stringify(codes)}`);
  const metrics = await waypointMetrics();
  assert.match(metrics, new RegExp(`istio_requests_total\\{[^}]*destination_service_name="echo-v1"[^}]*response_code="503"[^}]*response_flags="UO"`));
  const calm = tally(await statuses(`http://${vips.get('echo-v1')}/`, 5));
  assert.equal(calm, { 200: 5 }, 'one at a time, every request passes');
});

test('outlier detection ejects an endpoint after 3 consecutive 5xx and returns it after the ejection time', async () => {
  await applyAndWait(
    dir,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: outlier, namespace: ${ns} }
spec:
  host: outlier
  trafficPolicy:
    # Outlier detection turns locality preference on (Istio's default): off, so that both endpoints
    # take turns wherever the client runs.
    loadBalancer: { simple: ROUND_ROBIN, localityLbSetting: { enabled: false } }
    outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 15s, maxEjectionPercent: 100 }
`,
  );
  await waypointCurrent();
  // Round robin over two endpoints: the sick one fails every other request until its third failure ejects it.
  const first = await statuses(`http://${vips.get('outlier')}/`, 20);
  const failures = first.filter((c) => c === 503).length;
  assert.is(failures, 3, `exactly 3 failures before the ejection: ${first.join(' ')}`);
  assert.equal(first.slice(-10), Array(10).fill(200), 'once ejected, only the healthy endpoint answers');
  assert.match(await waypointLog(), /outlier detection: ejected/);
  // After the ejection time (15 s, long enough that a slow machine's 20 requests all fall inside it)
  // and a sweep (1 s), the sick endpoint is back and fails again.
  await eventually('the ejected endpoint to return', async () => (await waypointLog()).includes('outlier detection: returned'), 40_000);
  const later = await statuses(`http://${vips.get('outlier')}/`, 4);
  assert.ok(later.includes(503), `the returned endpoint gets requests again: ${later.join(' ')}`);
});

test('a 50% abort fault (FaultInjection by an ExtensionRef filter) answers about half the requests 503 with flag FI, and the metrics count exactly what the client saw', async () => {
  await applyAndWait(
    dir,
    `apiVersion: ambit.dev/v1alpha1
kind: FaultInjection
metadata: { name: half-abort, namespace: ${ns} }
spec:
  abort: { httpStatus: 503, percentage: { value: 50 } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo-v2-fault, namespace: ${ns} }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo-v2, port: 80 }]
  rules:
  - filters: [{ type: ExtensionRef, extensionRef: { group: ambit.dev, kind: FaultInjection, name: half-abort } }]
    backendRefs: [{ name: echo-v2, port: 80 }]
`,
  );
  await waypointCurrent();
  const before = await waypointMetrics();
  const count = (text: string, code: string, flags: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('istio_requests_total{') && l.includes('destination_service_name="echo-v2"') && l.includes(`response_code="${code}"`) && l.includes(`response_flags="${flags}"`))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
  const codes = tally(await statuses(`http://${vips.get('echo-v2')}/`, 200));
  assert.ok((codes[503] ?? 0) >= 70 && (codes[503] ?? 0) <= 130, `about half aborted: ${JSON.stringify(codes)}`);
  assert.is((codes[503] ?? 0) + (codes[200] ?? 0), 200);
  aborted = codes[503] ?? 0;
  const after = await waypointMetrics();
  assert.is(count(after, '503', 'FI') - count(before, '503', 'FI'), codes[503], 'istio_requests_total counts every abort, flag FI');
  assert.is(count(after, '200', '-') - count(before, '200', '-'), codes[200], 'and every success');
  const file = join(dir, 'waypoint-metrics.txt');
  promtoolClean(after, file);
});

test("the cluster's Prometheus scrapes the waypoint (its pod asks to be scraped, as Istio's do)", async () => {
  const url = `http://10.250.0.254:9090/prometheus/api/v1/query?query=${encodeURIComponent('sum(istio_requests_total{reporter="waypoint",response_flags="FI"})')}`;
  let last = 0;
  // Scrapes come every 5 s: until one was taken after the fault test's last request.
  await eventually(
    `Prometheus to hold the ${aborted} aborted requests the client saw`,
    async () => {
      const out = execFileSync('nsenter', ['--net=/run/netns/ambit-control', '--', 'curl', '-sS', url], { encoding: 'utf8' });
      const r = (JSON.parse(out) as { data: { result: { value: [number, string] }[] } }).data.result[0];
      last = r ? Number(r.value[1]) : 0;
      return last === aborted;
    },
    20_000,
  ).catch((err: Error) => assert.unreachable(`${err.message}; Prometheus says ${last}`));
  assert.ok(aborted > 0);
});

/** promtool reports only Istio's own name for the duration histogram (milliseconds, not seconds). */
function promtoolClean(text: string, file: string): void {
  let out: string;
  try {
    out = execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  } catch (err) {
    out = String((err as { stdout?: string }).stdout ?? '') + String((err as { stderr?: string }).stderr ?? '');
  }
  const problems = out.split('\n').filter((l) => l.trim() && !l.includes('istio_request_duration_milliseconds use base unit "seconds"'));
  assert.equal(problems, [], `promtool check metrics (${file}): ${out}`);
}

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leftovers(), []);
});

test.run();
