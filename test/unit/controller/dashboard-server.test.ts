// The dashboard's server over real HTTP, with a real store, a stand-in Prometheus (answers shaped as
// /api/v1/query's) and a stand-in agent speaking the query API's WebSocket protocol: who may ask,
// errors as JSON with codes, explain through the agents, the event relay, and the Prometheus proxy.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import { Store } from '../../../controller/store/store.js';
import { AgentQuery } from '../../../controller/dashboard/agent-link.js';
import { EventRelay } from '../../../controller/dashboard/events.js';
import { EstimateService } from '../../../controller/dashboard/estimate.js';
import { PrometheusClient } from '../../../controller/dashboard/prometheus.js';
import { createDashboardServer } from '../../../controller/dashboard/server.js';

const token = 'dashboard-token-for-tests';
const log = pino({ level: 'silent' });
let dir = '';
let dashboard: Server;
let prometheus: Server;
let agent: WebSocketServer;
let url = '';
let prometheusSawCookie: string | undefined;

const listen = async (s: Server) => {
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  return (s.address() as AddressInfo).port;
};

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ambit-dashboard-'));
  const store = new Store(dir);
  store.commit([
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'front', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client-1', namespace: 'front', labels: { 'pod-template-hash': '5d8f7c' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'client-5d8f7c', uid: 'rs-client', controller: true }] }, spec: { nodeName: 'node-1', containers: [] }, status: { phase: 'Running', podIP: '10.244.1.5', restarts: 0 } },
    { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'web-1', namespace: 'shop', labels: { 'pod-template-hash': '5d8f7c' }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-5d8f7c', uid: 'rs-web', controller: true }] }, spec: { nodeName: 'node-2', containers: [] }, status: { phase: 'Running', podIP: '10.244.2.7', restarts: 0 } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', ports: [{ port: 80 }] } },
  ] as never);

  prometheus = createServer((req, res) => {
    prometheusSawCookie = req.headers.cookie;
    if (req.url?.startsWith('/prom/-/ready')) return void res.end('Prometheus Server is Ready.\n');
    const q = new URL(req.url!, 'http://p').searchParams.get('query') ?? '';
    const result = q.includes('istio_tcp_connections_opened_total')
      ? [{ metric: { reporter: 'destination', source_workload: 'client', source_workload_namespace: 'front', destination_workload: 'web', destination_workload_namespace: 'shop', destination_service_name: 'web', destination_service_namespace: 'shop', connection_security_policy: 'mutual_tls', response_flags: 'DENY' }, value: [1, '0.5'] }]
      : [];
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result } }));
  });
  const promPort = await listen(prometheus);

  // The agents' query API, as far as the dashboard uses it: one process plays both nodes.
  agent = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(agent, 'listening');
  agent.on('connection', (ws) =>
    ws.on('message', (data: Buffer) => {
      const req = JSON.parse(data.toString()) as { id: number; method: string };
      const reply = (result: unknown) => ws.send(JSON.stringify({ id: req.id, result }));
      if (req.method === 'explain-outbound') return reply({ captured: true, steps: ['captured'], sourcePrincipal: 'cluster.local/ns/front/sa/client', destination: { protocol: 'HBONE', target: '10.244.2.7:8080', via: '10.250.0.2:15008' } });
      if (req.method === 'explain-inbound') return reply({ allowed: false, steps: ['denied: DENY policy shop/deny-front rule 0'], decision: { allowed: false, reason: 'DENY policy shop/deny-front rule 0', policy: 'shop/deny-front', rule: 0 } });
      if (req.method === 'subscribe') {
        reply({ subscribed: ['connections', 'denials'] });
        return ws.send(JSON.stringify({ topic: 'denials', time: new Date().toISOString(), data: { event: 'denied', reason: 'DENY policy shop/deny-front rule 0' } }));
      }
      ws.send(JSON.stringify({ id: req.id, error: { code: 'UnknownMethod', message: req.method } }));
    }),
  );
  const agentPort = (agent.address() as AddressInfo).port;
  const query = new AgentQuery((node) => (node === 'node-1' || node === 'node-2' ? connect(agentPort, '127.0.0.1') : undefined));
  const agents = () => ['node-1', 'node-2'].map((node) => ({ node, connected: true, ackedVersion: store.currentRevision, sentVersion: store.currentRevision }));
  dashboard = createDashboardServer({
    // The controller hands it its informers' cache; a store read the same way stands in for it here.
    cluster: { get: (k, ns, n) => store.get(k, ns, n), list: (k, ns) => store.list(k, ns), get revision() { return store.currentRevision; } },
    agents,
    trustBundle: () => [],
    query,
    prometheus: new PrometheusClient(`http://127.0.0.1:${promPort}/prom`),
    relay: new EventRelay({ nodes: () => ['node-1'], query, log }),
    estimates: new EstimateService(join(dir, 'no-such-root')),
    log,
    token,
    uiDir: join(dir, 'no-ui'),
  });
  url = `http://127.0.0.1:${await listen(dashboard)}`;
});

test.after(() => {
  dashboard.closeAllConnections();
  dashboard.close();
  prometheus.close();
  agent.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A request from `from` (a loopback address other than 127.0.0.1 plays a remote client). */
function get(path: string, o: { from?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { localAddress: o.from ?? '127.0.0.1', headers: o.headers ?? {} }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const errorOf = (body: string) => (JSON.parse(body) as { error: { code: string; message: string } }).error;

test('loopback clients need no token; others bring it as a bearer token or through /?token= and its cookie', async () => {
  assert.is((await get('/api/policies')).status, 200);
  const refused = await get('/api/policies', { from: '127.0.0.2' });
  assert.is(refused.status, 401);
  assert.match(errorOf(refused.body).message, 'dashboard-token');
  assert.is((await get('/api/policies', { from: '127.0.0.2', headers: { authorization: `Bearer ${token}` } })).status, 200);
  assert.is((await get('/?token=wrong', { from: '127.0.0.2' })).status, 401);
  const login = await get(`/?token=${token}`, { from: '127.0.0.2' });
  assert.is(login.status, 303);
  const cookie = String((login.headers['set-cookie'] as string[])[0]).split(';')[0]!;
  assert.match(String((login.headers['set-cookie'] as string[])[0]), 'HttpOnly');
  assert.is((await get('/api/policies', { from: '127.0.0.2', headers: { cookie } })).status, 200);
});

test('a Host that is not an address is refused (DNS rebinding); errors are JSON with a code and what to do', async () => {
  const rebound = await get('/api/policies', { headers: { host: 'evil.example:15080' } });
  assert.is(rebound.status, 403);
  assert.is(errorOf(rebound.body).code, 'Forbidden');
  const ui = await get('/');
  assert.is(ui.status, 503);
  assert.match(errorOf(ui.body).message, 'npm run build:dashboard');
  assert.is(errorOf((await get('/api/topology?window=1y')).body).code, 'BadRequest');
  assert.is((await get('/assets/..%2F..%2Fetc%2Fpasswd')).status, 404);
  const estimate = await get('/api/estimate?nodes=2');
  assert.is(estimate.status, 400);
  assert.match(errorOf(estimate.body).message, 'pods is required');
  assert.is(errorOf((await get('/api/estimate?nodes=2&pods=4&services=1&rps=10')).body).code, 'FiguresUnreadable');
});

test('the topology comes from Prometheus; /prometheus/ is proxied without the dashboard cookie', async () => {
  const topo = JSON.parse((await get('/api/topology')).body) as { edges: { source: string; target: string; state: string }[]; nodes: { id: string; inMesh?: boolean }[] };
  assert.equal(topo.edges.map((e) => [e.source, e.target, e.state]), [['front/client', 'shop/web', 'denied']]);
  assert.equal(topo.nodes.find((n) => n.id === 'front/client')?.inMesh, true);
  assert.equal(topo.nodes.find((n) => n.id === 'shop/web')?.inMesh, false, 'shop is not enrolled');
  const ready = await get('/prometheus/-/ready', { headers: { cookie: `ambit_dashboard=${token}` } });
  assert.is(ready.status, 200);
  assert.match(ready.body, 'Ready');
  assert.is(prometheusSawCookie, undefined);
});

test('explain asks the source agent, then the destination agent, and answers with the lines `ambit explain` prints', async () => {
  const res = await fetch(`${url}/api/explain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'front', source: 'deploy/client', destination: 'web.shop:80' }) });
  assert.is(res.status, 200);
  const body = (await res.json()) as { verdict: string; inboundNode: string; lines: string[] };
  assert.is(body.verdict, 'denied');
  assert.is(body.inboundNode, 'node-2');
  assert.is(body.lines[0], 'front/client-1 -> web.shop:80: DENIED');
  assert.ok(body.lines.some((l) => l.includes('DENY policy shop/deny-front rule 0')));
  const form = await fetch(`${url}/api/explain`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'source=x' });
  assert.is(form.status, 415, 'a cross-site form post cannot reach it');
  const missing = await fetch(`${url}/api/explain`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ namespace: 'front', source: 'deploy/nothing', destination: 'web.shop:80' }) });
  assert.is(missing.status, 404);
});

test("the event stream relays the agents' denials as server-sent events", async () => {
  const controller = new AbortController();
  const res = await fetch(`${url}/api/events`, { signal: controller.signal });
  assert.is(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('event: mesh')) text += new TextDecoder().decode((await reader.read()).value);
  controller.abort();
  assert.match(text, 'event: relay');
  assert.match(text, '"node":"node-1"');
  assert.match(text, 'DENY policy shop/deny-front');
});

test.run();
