// What traffic a waypoint takes, by its Gateway's `istio.io/waypoint-for` (`ambit waypoint apply
// --for`): with the default `service`, a request to a pod's own address does not go through the
// waypoint (and is refused at the pod, which only the waypoint may reach on its Service's port); with
// `workload`, it goes through the waypoint, which forwards it to that pod, counts it in its request
// metrics and enforces the policies attached to its Gateway (not those attached to a Service, as in
// Istio); `ambit explain` shows that hop. Real curl in a pod of the mesh, a real echo backend.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, applyAndWait, eventually, inSync, leftovers, sum } from './helpers.js';
import { inClient, ns, upBehindWaypoint, waypointCurrent, waypointMetrics, waypointPodName } from './waypoint-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-waypoint-for-'));
let vips = new Map<string, string>();
let echoIp = '';
let echoPod = '';
let waypointIp = '';

/** One GET from the client pod: the status code and the body (the echo's JSON, or the waypoint's answer). */
async function get(url: string): Promise<{ code: number; body: string }> {
  const r = await inClient(`curl -s -m 5 -w '\\n%{http_code}' '${url}'`);
  const lines = r.stdout.trimEnd().split('\n');
  return { code: Number(lines.pop()), body: lines.join('\n') };
}

/** Requests the waypoint has counted to the echo-v1 pod. */
const countedAtWaypoint = async () => sum(await waypointMetrics(), 'istio_requests_total', { reporter: 'waypoint', destination_workload: 'echo-v1' });

/** `ambit waypoint apply --for`, then until every agent and the waypoint hold the change. */
async function waypointFor(value: string): Promise<void> {
  const out = await ambitOk(['waypoint', 'apply', '-n', ns, '--for', value]);
  assert.match(out, `(traffic for: ${value})`);
  await inSync();
  await waypointCurrent();
}

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('set-up: the waypoint (default: service) serves the namespace', async () => {
  vips = await upBehindWaypoint(['mesh.yaml']);
  const pods = JSON.parse(await ambitOk(['get', 'pods', '-n', ns, '-o', 'json'])) as { items: { metadata: { name: string }; status: { podIP: string; phase: string } }[] };
  const echo = pods.items.find((p) => p.metadata.name.startsWith('echo-v1-') && p.status.phase === 'Running')!;
  echoIp = echo.status.podIP;
  echoPod = echo.metadata.name;
  const wp = await waypointPodName();
  waypointIp = pods.items.find((p) => p.metadata.name === wp)!.status.podIP;
  await eventually('echo-v1 to answer through the waypoint', async () => (await inClient(`curl -sf -m 2 http://${vips.get('echo-v1')}/`)).code === 0, 60_000);
});

test('a bad --for is refused, naming the flag and the values it takes, and nothing is applied', async () => {
  const r = await ambit(['waypoint', 'apply', '-n', ns, '--for', 'bogus']);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, '--for must be service, workload, all, none');
  assert.match(r.stderr, '"bogus"');
  const g = JSON.parse(await ambitOk(['get', 'gateway', 'waypoint', '-n', ns, '-o', 'json'])) as { metadata: { labels: Record<string, string> } };
  assert.is(g.metadata.labels['istio.io/waypoint-for'], 'service');
});

test('with waypoint-for service (the default), a request to the pod address does not go through the waypoint', async () => {
  const before = await countedAtWaypoint();
  const r = await get(`http://${echoIp}:8080/to-the-pod`);
  assert.is.not(r.code, 200, 'the pod answered a client that went around its waypoint');
  const e = await ambit(['explain', '-n', ns, 'deploy/client', `${echoIp}:8080`]);
  assert.not.match(e.stdout, 'at the waypoint', e.stdout);
  assert.match(e.stdout, `port 8080 is behind waypoint ${ns}/waypoint (Service ${ns}/`);
  assert.is(await countedAtWaypoint(), before, 'the waypoint saw no request');
});

test('with waypoint-for workload, a request to the pod address goes through the waypoint to that pod, counted in its metrics', async () => {
  await waypointFor('workload');
  const before = await countedAtWaypoint();
  const r = await eventually('the pod to answer through the waypoint', async () => {
    const x = await get(`http://${echoIp}:8080/to-the-pod`);
    return x.code === 200 ? x : undefined;
  }, 30_000);
  const echo = JSON.parse(r.body) as { path: string; pod: string; client: string };
  assert.is(echo.path, '/to-the-pod');
  assert.is(echo.pod, echoPod, 'the pod addressed answered');
  assert.is(echo.client, waypointIp, 'the pod was called by the waypoint');
  await eventually('the waypoint to count the request', async () => (await countedAtWaypoint()) > before, 10_000);
  const e = await ambitOk(['explain', '-n', ns, 'deploy/client', `${echoIp}:8080`]);
  assert.match(e, `uses waypoint ${ns}/waypoint for traffic addressed to it: HBONE to waypoint pod ${ns}/`);
  assert.match(e, `at the waypoint (${ns}/waypoint):`);
  assert.match(e, `addressed to pod ${ns}/${echoPod}`);
  assert.match(e, `sent over HBONE as cluster.local/ns/${ns}/sa/waypoint to ${echoIp}:8080`);
});

test('pod-addressed traffic is held to the policies attached to the waypoint Gateway, not to those attached to a Service', async () => {
  await applyAndWait(
    dir,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-forbidden, namespace: ${ns} }
spec:
  targetRefs: [{ group: gateway.networking.k8s.io, kind: Gateway, name: waypoint }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/forbidden"] } }] }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-service-only, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: echo-v1 }]
  action: DENY
  rules: [{ to: [{ operation: { paths: ["/service-only"] } }] }]
`,
  );
  await waypointCurrent();
  const denied = await get(`http://${echoIp}:8080/forbidden`);
  assert.is(denied.code, 403);
  assert.match(denied.body, 'RBAC: access denied');
  assert.is((await get(`http://${echoIp}:8080/service-only`)).code, 200, 'a policy attached to a Service does not apply to the pod addressed directly');
  assert.is((await get(`http://${echoIp}:8080/allowed`)).code, 200);
});

test('back to waypoint-for service: the pod address no longer goes through the waypoint', async () => {
  await waypointFor('service');
  const before = await countedAtWaypoint();
  await eventually('the pod address to be refused again', async () => (await get(`http://${echoIp}:8080/to-the-pod`)).code !== 200, 30_000);
  assert.is(await countedAtWaypoint(), before);
  assert.is((await get(`http://${vips.get('echo-v1')}/`)).code, 200, 'the Service still goes through the waypoint');
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leftovers(), []);
});

test.run();
