// The dashboard's topology from Prometheus answers: bodies shaped as `/api/v1/query` returns them
// (vector results, values as [time, "string"]), through the same parsing the client does, into the
// graph the UI draws. Both reporters of one connection count once; denials make an edge red.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { type QueryName, topologyFrom, topologyQueries, validWindow } from '../../../controller/dashboard/topology.js';
import type { PromSample, PromVectorResponse } from '../../../controller/dashboard/prometheus.js';

const t = 1733030000.123;
const edge = (o: Record<string, string>) => ({
  source_workload: 'client',
  source_workload_namespace: 'client',
  destination_workload: 'web-v1',
  destination_workload_namespace: 'shop',
  destination_service_name: 'web',
  destination_service_namespace: 'shop',
  connection_security_policy: 'mutual_tls',
  ...o,
});

/** A body as Prometheus sends it, read the way PrometheusClient reads it. */
function answer(result: { metric: Record<string, string>; value: string }[]): PromSample[] {
  const text = JSON.stringify({ status: 'success', data: { resultType: 'vector', result: result.map((r) => ({ metric: r.metric, value: [t, r.value] })) } });
  const body = JSON.parse(text) as PromVectorResponse;
  return body.data!.result;
}

function results(o: Partial<Record<QueryName, PromSample[]>>): Record<QueryName, PromSample[]> {
  return { opened: [], closed: [], sent: [], received: [], deniedByAgents: [], ...o };
}

test('both reporters of the same connections count once: the larger rate, not the sum', () => {
  const g = topologyFrom(
    results({
      opened: answer([
        { metric: edge({ reporter: 'source', response_flags: '-' }), value: '0.2' },
        { metric: edge({ reporter: 'destination', response_flags: '-' }), value: '0.19' },
      ]),
      sent: answer([
        { metric: edge({ reporter: 'source' }), value: '1500' },
        { metric: edge({ reporter: 'destination' }), value: '1480' },
      ]),
      received: answer([{ metric: edge({ reporter: 'destination' }), value: '9000' }]),
    }),
    { window: '1m', time: new Date(t * 1000) },
  );
  assert.equal(g.nodes.map((n) => n.id), ['client/client', 'shop/web-v1']);
  assert.is(g.edges.length, 1);
  const e = g.edges[0]!;
  assert.is(e.source, 'client/client');
  assert.is(e.target, 'shop/web-v1');
  assert.equal(e.services, ['web.shop']);
  assert.is(e.connectionsPerSecond, 0.2);
  assert.is(e.sentBytesPerSecond, 1500);
  assert.is(e.receivedBytesPerSecond, 9000);
  assert.is(e.security, 'mtls');
  assert.is(e.state, 'ok');
});

test('the reporters need not agree on the Service: one edge per workload pair, naming the Services either saw', () => {
  const g = topologyFrom(
    results({
      opened: answer([
        { metric: edge({ reporter: 'source', response_flags: '-' }), value: '0.3' },
        { metric: edge({ reporter: 'destination', response_flags: '-', destination_service_name: 'unknown', destination_service_namespace: 'unknown' }), value: '0.3' },
        { metric: edge({ reporter: 'destination', response_flags: 'DENY', destination_service_name: 'unknown', destination_service_namespace: 'unknown' }), value: '0.1' },
      ]),
    }),
    { window: '1m', time: new Date() },
  );
  assert.is(g.edges.length, 1);
  assert.equal(g.edges[0]!.services, ['web.shop']);
  assert.is(g.edges[0]!.connectionsPerSecond, 0.3);
  assert.is(g.edges[0]!.state, 'denied');
});

test('a DENY on an edge makes it denied, counted once whether the agent reports it opened, closed or both', () => {
  const denied = edge({ source_workload: 'bad', source_workload_namespace: 'callers', reporter: 'destination', response_flags: 'DENY' });
  const g = topologyFrom(
    results({
      opened: answer([
        { metric: edge({ reporter: 'destination', response_flags: '-' }), value: '0.5' },
        { metric: denied, value: '0.25' },
      ]),
      closed: answer([
        { metric: denied, value: '0.25' },
        { metric: edge({ reporter: 'destination', response_flags: '-' }), value: '0.5' },
      ]),
      deniedByAgents: answer([{ metric: {}, value: '0.25' }]),
    }),
    { window: '1m', time: new Date() },
  );
  const bad = g.edges.find((e) => e.source === 'callers/bad')!;
  assert.is(bad.state, 'denied');
  assert.is(bad.deniedPerSecond, 0.25);
  assert.is(bad.connectionsPerSecond, 0, 'denied connections are not counted as served');
  assert.is(g.edges.find((e) => e.source === 'client/client')!.state, 'ok');
  assert.is(g.deniedPerSecond, 0.25);
});

test("a denial the destination reports as DENY and the source as a refused tunnel (CONNECT) is a denial, not a failure too", () => {
  const g = topologyFrom(
    results({
      opened: answer([
        { metric: edge({ reporter: 'destination', response_flags: 'DENY' }), value: '0.66' },
        { metric: edge({ reporter: 'source', response_flags: 'CONNECT' }), value: '0.67' },
      ]),
    }),
    { window: '1m', time: new Date() },
  );
  assert.is(g.edges[0]!.deniedPerSecond, 0.66);
  assert.is(g.edges[0]!.failedPerSecond, 0, 'the skew between the two scrapes is not a failure');
  assert.is(g.edges[0]!.state, 'denied');
});

test('failures (CONNECT, TLS_FAILURE, ...) mark an edge failing, never served; plaintext from outside the mesh comes from "unknown"', () => {
  const g = topologyFrom(
    results({
      opened: answer([
        { metric: edge({ reporter: 'source', response_flags: 'CONNECT' }), value: '0.1' },
        { metric: edge({ reporter: 'source', response_flags: 'TLS_FAILURE' }), value: '0.05' },
        { metric: edge({ source_workload: 'unknown', source_workload_namespace: 'unknown', reporter: 'destination', response_flags: '-', connection_security_policy: 'unknown' }), value: '1' },
      ]),
    }),
    { window: '1m', time: new Date() },
  );
  const failing = g.edges.find((e) => e.source === 'client/client')!;
  assert.is(failing.state, 'failing');
  assert.ok(Math.abs(failing.failedPerSecond - 0.15) < 1e-9, 'CONNECT and TLS_FAILURE add up');
  assert.is(failing.connectionsPerSecond, 0);
  const plain = g.edges.find((e) => e.source === 'unknown')!;
  assert.is(plain.security, 'plaintext');
  assert.equal(g.nodes.find((n) => n.id === 'unknown')?.kind, 'unknown');
});

test('edges idle over the window are left out; known workloads show anyway, with their enrollment; NaN reads as 0', () => {
  const g = topologyFrom(
    results({
      opened: answer([{ metric: edge({ reporter: 'destination', response_flags: '-' }), value: '0' }]),
      sent: answer([{ metric: edge({ reporter: 'destination' }), value: 'NaN' }]),
    }),
    { window: '5m', time: new Date(), known: [{ namespace: 'shop', name: 'web-v1', inMesh: true }, { namespace: 'legacy', name: 'db', inMesh: false }] },
  );
  assert.is(g.edges.length, 0);
  assert.equal(g.nodes, [
    { id: 'legacy/db', namespace: 'legacy', name: 'db', kind: 'workload', inMesh: false },
    { id: 'shop/web-v1', namespace: 'shop', name: 'web-v1', kind: 'workload', inMesh: true },
  ]);
  assert.is(g.window, '5m');
});

test("an edge with mTLS and plaintext connections is mixed; a pod dialled directly names no Service", () => {
  const direct = { destination_service_name: 'unknown', destination_service_namespace: 'unknown' };
  const g = topologyFrom(
    results({
      opened: answer([
        { metric: edge({ ...direct, reporter: 'destination', response_flags: '-' }), value: '1' },
        { metric: edge({ ...direct, reporter: 'destination', response_flags: '-', connection_security_policy: 'unknown' }), value: '1' },
      ]),
    }),
    { window: '1m', time: new Date() },
  );
  assert.is(g.edges[0]!.security, 'mixed');
  assert.equal(g.edges[0]!.services, []);
  assert.is(g.edges[0]!.connectionsPerSecond, 2, 'series of one reporter add up');
});

test('the queries group by Istio edge labels and the reporter, over the asked window; windows are bounded', () => {
  const q = topologyQueries('30s');
  assert.match(q.opened, /^sum by \(reporter, source_workload, source_workload_namespace, destination_workload, destination_workload_namespace, destination_service_name, destination_service_namespace, connection_security_policy, response_flags\) \(rate\(istio_tcp_connections_opened_total\[30s\]\)\)$/);
  assert.match(q.received, 'istio_tcp_received_bytes_total[30s]');
  assert.ok(validWindow('1m') && validWindow('10s') && validWindow('1h'));
  assert.not.ok(validWindow('5s') || validWindow('2h') || validWindow('1m) or vector(1') || validWindow(''));
});

test.run();
