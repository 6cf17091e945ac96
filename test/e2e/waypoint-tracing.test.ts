// One trace across the mesh: a client in a pod starts it (a client span), the waypoint continues it
// (a server span naming the real source and destination workloads, and a client span for its try to
// the backend), and the backend ends it (a server span), all sent over OTLP/HTTP to a receiver this
// test runs on the control-plane host (10.250.0.254:4318, a namespace of the local cluster), sharing
// one trace ID, each span the child of the one before.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenAt } from '../../shared/net/listen.js';
import { ambit, ambitOk, eventually, leftovers } from './helpers.js';

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: { stringValue?: string; intValue?: number | string } }[];
  service: string;
}

const received: OtlpSpan[] = [];
const receiver = createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8').on('data', (c: string) => (body += c));
  req.on('end', () => {
    try {
      const doc = JSON.parse(body) as { resourceSpans: { resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: { spans: Omit<OtlpSpan, 'service'>[] }[] }[] };
      for (const rs of doc.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
        for (const ss of rs.scopeSpans) for (const s of ss.spans) received.push({ ...s, service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    } catch {
      res.writeHead(400).end();
    }
  });
});
const traces = 'http://10.250.0.254:4318/v1/traces';
const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-tracing-'));
const attr = (s: OtlpSpan, key: string) => s.attributes.find((a) => a.key === key)?.value.stringValue;

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('a client span, the waypoint\'s server and client spans and the backend\'s server span share one trace, each the child of the one before', async () => {
  await ambitOk(['up', '--no-samples']);
  await listenAt(receiver, { host: '10.250.0.254', port: 4318, netns: '/run/netns/ambit-control' }, 'the test\'s OTLP receiver', '-');
  const file = join(dir, 'traced.yaml');
  writeFileSync(
    file,
    `apiVersion: v1
kind: Namespace
metadata: { name: traced, labels: { ambit.dev/dataplane-mode: ambient, istio.io/use-waypoint: waypoint } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: waypoint, namespace: traced, annotations: { ambit.dev/otlp-traces-endpoint: "${traces}" } }
spec:
  gatewayClassName: ambit-waypoint
  listeners: [{ name: mesh, port: 15008, protocol: HBONE }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: backend, namespace: traced }
spec:
  selector: { matchLabels: { app: backend } }
  template:
    metadata: { labels: { app: backend } }
    spec:
      containers:
        - { name: echo, command: [ambit, sample, echo, --version, v1, --port, "8080", --otlp, "${traces}"], ports: [{ containerPort: 8080, name: http }] }
---
apiVersion: v1
kind: Service
metadata: { name: backend, namespace: traced }
spec:
  selector: { app: backend }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: traced }
spec:
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      containers: [{ name: client, command: [sleep, infinity] }]
`,
  );
  await ambitOk(['apply', '-f', file]);
  await eventually('the backend to answer through the waypoint', async () => (await ambit(['exec', '-n', 'traced', 'deploy/client', '--', 'curl', '-sf', '-m', '2', 'http://backend.traced/'])).code === 0, 30_000);
  const r = JSON.parse(await ambitOk(['exec', '-n', 'traced', 'deploy/client', '--', 'ambit', 'sample', 'load', 'http://backend.traced/traced', '--count', '1', '--otlp', traces])) as { ok: number; traceIds: string[] };
  assert.is(r.ok, 1);
  const traceId = r.traceIds[0]!;
  const spans = await eventually('four spans of the trace at the receiver', async () => {
    const mine = received.filter((s) => s.traceId === traceId);
    return mine.length >= 4 ? mine : undefined;
  }, 20_000);
  const client = spans.find((s) => s.service === 'load-client')!;
  const waypointServer = spans.find((s) => s.service === 'waypoint.traced' && s.kind === 2)!;
  const waypointTry = spans.find((s) => s.service === 'waypoint.traced' && s.kind === 3)!;
  const backend = spans.find((s) => s.service === 'echo-v1' && s.kind === 2)!;
  assert.ok(client && waypointServer && waypointTry && backend, `spans: ${spans.map((s) => `${s.service}/${s.kind}`).join(', ')}`);
  assert.is(client.parentSpanId || undefined, undefined, 'the client starts the trace');
  assert.is(waypointServer.parentSpanId, client.spanId, "the waypoint's server span is the client's child");
  assert.is(waypointTry.parentSpanId, waypointServer.spanId, 'its try is the server span\'s child');
  assert.is(backend.parentSpanId, waypointTry.spanId, "the backend's span is the try's child");
  // The real workloads, not the waypoint itself (what Istio's waypoints get wrong).
  assert.is(attr(waypointServer, 'istio.source_workload'), 'client');
  assert.is(attr(waypointServer, 'istio.source_principal'), 'spiffe://cluster.local/ns/traced/sa/default');
  assert.is(attr(waypointTry, 'istio.destination_workload'), 'backend');
});

test('ambit down leaves nothing behind', async () => {
  receiver.close();
  await ambitOk(['down']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leftovers(), []);
});

test.run();
