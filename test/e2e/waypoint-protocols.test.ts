// gRPC and WebSocket through the waypoint on the local cluster, with real libraries in pods of the
// mesh (grpc-js, ws: `ambit sample grpc-client` and `ws-client`): unary and server-streaming calls
// counted as gRPC in Istio's metrics, a GRPCRoute choosing the backend by header and by method, an
// AuthorizationPolicy on a gRPC method answered PERMISSION_DENIED while the other method passes, a
// rate limit answered UNAVAILABLE, and a WebSocket held open, echoed and in the access log.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, applyAndWait, eventually, leftovers, sum } from './helpers.js';
import { ns, podLog, waypointCurrent, waypointMetrics, waypointPodName, upBehindWaypoint } from './waypoint-helpers.js';
import type { CallResult } from '../../samples/apps/grpc-client.js';
import type { WsClientResult } from '../../samples/apps/ws-client.js';
import type { WsEchoReply } from '../../samples/apps/ws-echo.js';

let vips = new Map<string, string>();
const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-protocols-'));

/** `ambit sample grpc-client` in the client pod, to the Service `grpc`: one result per call. */
async function grpcCalls(args: string[]): Promise<CallResult[]> {
  const r = await ambit(['exec', 'deploy/client', '-n', ns, '--', 'ambit', 'sample', 'grpc-client', '--target', `${vips.get('grpc')}:9090`, ...args], 120_000);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('{'));
  assert.ok(lines.length > 0, `grpc-client printed its calls: ${r.stdout}${r.stderr}`);
  return lines.map((l) => JSON.parse(l) as CallResult);
}

const codes = (calls: CallResult[]) => calls.map((c) => c.code);
const versions = (calls: CallResult[]) => [...new Set(calls.map((c) => c.version))].sort();

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('set-up: two versions of a gRPC service and a WebSocket echo behind the waypoint', async () => {
  vips = await upBehindWaypoint(['mesh.yaml', 'grpc.yaml', 'websocket.yaml']);
  await eventually(
    'both gRPC versions to answer through the waypoint',
    async () => {
      const r = await ambit(['exec', 'deploy/client', '-n', ns, '--', 'ambit', 'sample', 'grpc-client', '--target', `${vips.get('grpc')}:9090`, '--count', '6'], 60_000);
      return r.code === 0 && r.stdout.includes('"version":"v1"') && r.stdout.includes('"version":"v2"');
    },
    60_000,
  );
});

test('gRPC unary and server-streaming calls through the waypoint succeed and are counted as gRPC with status 0', async () => {
  const unary = await grpcCalls(['--count', '5', '--metadata', 'x-team=payments']);
  assert.equal(codes(unary), [0, 0, 0, 0, 0]);
  assert.equal(unary[0]!.metadata?.['x-team'], ['payments'], 'metadata reaches the backend');
  const stream = await grpcCalls(['--method', 'stream', '--count', '3']);
  assert.equal(codes(stream), [0, 0, 0]);
  assert.equal(
    stream.map((c) => c.messages),
    [3, 3, 3],
    'every streamed message arrives',
  );
  const metrics = await waypointMetrics();
  const ok = sum(metrics, 'istio_requests_total', { destination_service_name: 'grpc', request_protocol: 'grpc', response_code: '200', grpc_response_status: '0' });
  assert.ok(ok >= 8, `the waypoint counts the calls as gRPC with status 0 (${ok}):\n${metrics.split('\n').filter((l) => l.includes('request_protocol="grpc"')).join('\n')}`);
});

test('a GRPCRoute sends a header match and the Stream method to grpc-v2, everything else to grpc-v1', async () => {
  await applyAndWait(
    dir,
    `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: { name: grpc-canary, namespace: ${ns} }
spec:
  parentRefs: [{ group: "", kind: Service, name: grpc, port: 9090 }]
  rules:
  - matches: [{ headers: [{ name: x-canary, value: "true" }] }]
    backendRefs: [{ name: grpc-v2, port: 9090 }]
  - matches: [{ method: { service: ambit.echo.Echo, method: Stream } }]
    backendRefs: [{ name: grpc-v2, port: 9090 }]
  - backendRefs: [{ name: grpc-v1, port: 9090 }]
`,
  );
  await waypointCurrent();
  const canary = await grpcCalls(['--count', '6', '--metadata', 'x-canary=true']);
  assert.equal(codes(canary), [0, 0, 0, 0, 0, 0]);
  assert.equal(versions(canary), ['v2'], 'the header match goes to v2 only');
  const plain = await grpcCalls(['--count', '6']);
  assert.equal(codes(plain), [0, 0, 0, 0, 0, 0]);
  assert.equal(versions(plain), ['v1'], 'the rest goes to v1');
  const stream = await grpcCalls(['--method', 'stream', '--count', '4']);
  assert.equal(codes(stream), [0, 0, 0, 0]);
  assert.equal(versions(stream), ['v2'], 'the method match goes to v2');
});

test('an AuthorizationPolicy DENY on /ambit.echo.Echo/Echo answers PERMISSION_DENIED as a gRPC status, and Stream still works', async () => {
  await applyAndWait(
    dir,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-echo, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: grpc }]
  action: DENY
  rules:
  - to: [{ operation: { paths: ["/ambit.echo.Echo/Echo"] } }]
`,
  );
  await waypointCurrent();
  const denied = await grpcCalls(['--count', '3']);
  assert.equal(codes(denied), [7, 7, 7], `PERMISSION_DENIED, not a transport error: ${JSON.stringify(denied[0])}`);
  assert.is(denied[0]!.details, 'RBAC: access denied');
  const stream = await grpcCalls(['--method', 'stream', '--count', '2']);
  assert.equal(codes(stream), [0, 0], 'the other method is not denied');
  const metrics = await waypointMetrics();
  assert.ok(sum(metrics, 'istio_requests_total', { destination_service_name: 'grpc', request_protocol: 'grpc', response_code: '200', grpc_response_status: '7' }) >= 3, 'counted as Envoy counts a gRPC local reply: response_code 200, grpc status 7');
  assert.ok(sum(metrics, 'ambit_waypoint_policy_refusals_total', { kind: 'authz', policy: `${ns}/deny-echo`, response_code: '403' }) >= 3, 'the refusal counter keeps the HTTP status');
  const log = await podLog(await waypointPodName());
  assert.match(log, /"path":"\/ambit\.echo\.Echo\/Echo"[^\n]*"response_code":200[^\n]*"grpc_status":7/, 'the access log has the denied call with its gRPC status');
  await ambitOk(['delete', 'authorizationpolicy', 'deny-echo', '-n', ns]);
});

test('a LocalRateLimit past its budget answers gRPC calls UNAVAILABLE, flagged RL', async () => {
  await applyAndWait(
    dir,
    `apiVersion: ambit.dev/v1alpha1
kind: LocalRateLimit
metadata: { name: grpc-budget, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: grpc }]
  tokenBucket: { maxTokens: 3, tokensPerFill: 3, fillInterval: 60s }
`,
  );
  await waypointCurrent();
  const calls = await grpcCalls(['--method', 'stream', '--count', '5']);
  assert.equal(codes(calls), [0, 0, 0, 14, 14], `3 pass, then UNAVAILABLE: ${JSON.stringify(calls)}`);
  const metrics = await waypointMetrics();
  assert.ok(sum(metrics, 'istio_requests_total', { destination_service_name: 'grpc', request_protocol: 'grpc', grpc_response_status: '14', response_flags: 'RL' }) >= 2);
  await ambitOk(['delete', 'localratelimit', 'grpc-budget', '-n', ns]);
});

test('a WebSocket through the waypoint: messages come back from ws-echo, and the access log has the upgrade (101)', async () => {
  const r = await ambit(['exec', 'deploy/client', '-n', ns, '--', 'ambit', 'sample', 'ws-client', `ws://${vips.get('ws-echo')}:8081/chat`, '--count', '4'], 60_000);
  assert.is(r.code, 0, `ws-client: ${r.stdout}${r.stderr}`);
  const result = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{'))!) as WsClientResult;
  const replies = result.received.map((m) => JSON.parse(m) as WsEchoReply);
  assert.equal(
    replies.map((m) => m.message),
    result.sent,
  );
  assert.equal([...new Set(replies.map((m) => m.version))], ['w1']);
  assert.is(result.closeCode, 1000, 'closed cleanly');
  const line = await eventually('the upgrade in the access log', async () => (await podLog(await waypointPodName())).split('\n').find((l) => l.includes('"path":"/chat"')));
  const entry = JSON.parse(line) as Record<string, unknown>;
  assert.is(entry.response_code, 101);
  assert.is(entry.method, 'GET');
  assert.is(entry.destination_service, `${ns}/ws-echo`);
  assert.ok(Number(entry.bytes_received) > 0 && Number(entry.bytes_sent) > 0, `frame bytes both ways: ${line}`);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leftovers(), []);
});

test.run();
