// Istio's TCP metrics as a scrape of the agent's registry shows them, through the real node proxy
// (its HBONE listener, its plaintext and outbound handlers, its connection table) on loopback, the
// pod standing in this process's own namespace: the exact label set of an allowed mTLS connection,
// of a plaintext one, of a denied and of a failed one; byte directions as Istio names them; the
// Service guessed for a CONNECT to a pod; a connection a policy change ends; open sockets. Needs root.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { createSecureContext } from 'node:tls';
import { pino } from 'pino';
import { NodeProxy } from '../../../agent/proxy/proxy.js';
import { AgentMetrics } from '../../../agent/telemetry/metrics.js';
import type { CapturedPod } from '../../../agent/capture/manager.js';
import type { CertificateManager } from '../../../agent/identity/manager.js';
import { HbonePool } from '../../../shared/hbone/pool.js';
import { HboneConnectRefused } from '../../../shared/hbone/protocol.js';
import { closeFd, openNetns } from '../../../native/netns.js';
import { toPem } from '../../../shared/identity/x509.js';
import type { WireEntry } from '../../../shared/protocol/config.js';
import { api, bundle, closedPort, readAll, rejection, root, until, web } from '../proxy/helpers.js';
import { stateWith } from '../../helpers/state.js';

const request = 'q'.repeat(1000);
const response = 'r'.repeat(10);

/** The pod's app: reads the whole request, then answers with `response` and closes. */
async function app(host = '127.0.0.1'): Promise<{ port: number; server: Server }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.resume();
    s.once('end', () => s.end(response));
  });
  server.listen(0, host);
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, server };
}

const pod = await app();
const podNs = openNetns('/proc/self/ns/net');
// shop/db-v3's pod at 127.0.0.1 on this node (n1), behind two Services: `admin` (another port,
// first by name) and `db`, whose port 5432 targets the app's port. shop/web-1 is on n2, with only
// what the controller sends of a pod of another node: no labels, its canonical names. Every address
// is a loopback one, so that the agent's transparent dial from the client's address stays on lo.
const state = stateWith('n1', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'node/n1', value: { name: 'n1', ip: '127.0.0.1' } },
  { key: 'trustbundle/cluster.local', value: { trustDomain: 'cluster.local', roots: [toPem(root.der, 'CERTIFICATE')] } },
  { key: 'workload/shop/web-1', value: { ip: '127.0.0.4', node: 'n2', serviceAccount: 'web', owner: 'Deployment/web', canonicalService: 'webshop', canonicalRevision: 'v1' } },
  { key: 'workload/shop/db-1', value: { ip: '127.0.0.1', node: 'n1', serviceAccount: 'db', owner: 'Deployment/db-v3', labels: { app: 'db', version: 'v3' }, canonicalService: 'db', canonicalRevision: 'v3' } },
  // A plaintext client outside the mesh, and its address.
  { key: 'workload/legacy/client-1', value: { ip: '127.0.0.2', node: 'n1', serviceAccount: 'default', owner: 'Deployment/client' } },
  { key: 'service/shop/admin', value: { clusterIP: '10.96.0.9', ports: [{ port: 9000, targetPort: 9000 }], endpoints: [{ ip: '127.0.0.1', node: 'n1', ports: { '9000': 9000 } }] } },
  { key: 'service/shop/db', value: { clusterIP: '10.96.0.10', ports: [{ port: 5432, targetPort: pod.port }], endpoints: [{ ip: '127.0.0.1', node: 'n1', ports: { '5432': pod.port } }] } },
]);

/** Where the capture says a connection was headed; each test points it. */
let headedTo = { ip: '127.0.0.1', port: pod.port };
const captured: CapturedPod = {
  key: 'shop/db-1',
  workload: state.workloads.get('workload/shop/db-1')!,
  nsFd: podNs,
  netns: '/proc/self/ns/net',
  redirect: { how: 'installed', source: { mode: 'iptables' }, outboundDestination: () => headedTo, inboundDestination: () => headedTo, remove: () => undefined, finish: () => undefined },
};
const serverContext = createSecureContext({ key: api.keyPem, cert: api.certPem });
const certificates = { forServerName: () => ({ secureContext: serverContext }), get: () => undefined, waitFor: async () => undefined } as unknown as CertificateManager;

const accessLines: Record<string, unknown>[] = [];
const access = pino(new Writable({ write: (chunk: Buffer, _e, done) => done(void accessLines.push(JSON.parse(chunk.toString()) as Record<string, unknown>)) }));
const proxy = new NodeProxy({
  state,
  certificates,
  trustDomain: 'cluster.local',
  rootNamespace: 'istio-system',
  podAt: (ip) => (ip === '127.0.0.1' ? captured : undefined),
  log: pino({ level: 'silent' }),
  access,
  events: { opened: (c) => metrics.connectionOpened(c), closed: (c) => metrics.connectionClosed(c), refused: (c, flags) => metrics.connectionRefused(c, flags) },
});
// Wired as agent/main.ts wires them: the proxy's events feed the metrics, which read its table and sockets.
const metrics: AgentMetrics = new AgentMetrics({
  cluster: 'Kubernetes',
  trustDomain: 'cluster.local',
  connections: proxy.connections,
  health: () => ({ capturedPods: 1, configVersion: state.version, controllerConnected: true, certificates: 0 }),
  counters: () => ({}),
  sockets: () => proxy.openSockets,
});
await proxy.listen('127.0.0.1', 0);
const hbonePort = (proxy.server.server.address() as AddressInfo).port;

/** The pod's 15006 and 15001: the capture's listeners, handing sockets to the proxy. */
async function listener(handle: (s: Socket) => void): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, handle);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}
const inbound15006 = await listener((s) => proxy.handlers.inbound(captured, s));
const outbound15001 = await listener((s) => proxy.handlers.outbound(captured, s));

type Sample = { labels: Record<string, string>; value: number };

/** The samples of one metric in a real scrape of the registry. */
async function scrape(name: string): Promise<Sample[]> {
  const text = await metrics.registry.metrics();
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.lastIndexOf('}'));
    const labels: Record<string, string> = {};
    for (const m of body.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]!] = m[2]!;
    out.push({ labels, value: Number(line.slice(line.lastIndexOf(' ') + 1)) });
  }
  return out;
}

async function only(name: string, where: Record<string, string>): Promise<Sample> {
  const found = (await scrape(name)).filter((s) => Object.entries(where).every(([k, v]) => s.labels[k] === v));
  assert.is(found.length, 1, `${name} ${JSON.stringify(where)}: ${found.length} series`);
  return found[0]!;
}

/** A request through the tunnel as the client's agent sends it, and the answer. */
async function tunnel(pool: HbonePool, authority: string, forwarded: string): Promise<string> {
  const stream = await pool.connect({ identity: web.uri, key: web.keyPem, cert: web.certPem, nodeAddress: '127.0.0.1', nodePort: hbonePort, servername: 'db.shop.sa.cluster.local', authority, headers: { forwarded } });
  stream.end(request);
  return readAll(stream);
}

/** A plaintext request from `from`, through the socket handed to `server`; the answer or the error code. */
async function plain(server: Server, from = '127.0.0.2'): Promise<string> {
  const s = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', localAddress: from, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.end(request);
  return new Promise((resolve) => {
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.once('close', () => resolve(Buffer.concat(chunks).toString()));
  });
}

function pushPolicies(upserts: WireEntry[], deletes: string[] = []): void {
  state.apply({ type: 'config', full: false, from: state.version, to: state.version + 1, upserts, deletes });
}

const db = {
  destination_workload: 'db-v3',
  destination_canonical_service: 'db',
  destination_canonical_revision: 'v3',
  destination_workload_namespace: 'shop',
  destination_principal: 'spiffe://cluster.local/ns/shop/sa/db',
  destination_app: 'db',
  destination_version: 'v3',
  destination_cluster: 'Kubernetes',
  destination_service: 'db.shop.svc.cluster.local',
  destination_service_namespace: 'shop',
  destination_service_name: 'db',
};
const webSource = {
  source_workload: 'web',
  source_canonical_service: 'webshop',
  source_canonical_revision: 'v1',
  source_workload_namespace: 'shop',
  source_principal: 'spiffe://cluster.local/ns/shop/sa/web',
  source_app: 'webshop',
  source_version: 'v1',
  source_cluster: 'Kubernetes',
};

test.after(async () => {
  inbound15006.close();
  outbound15001.close();
  pod.server.close();
  await proxy.close(100);
  closeFd(podNs);
});

test.after.each(() => {
  headedTo = { ip: '127.0.0.1', port: pod.port };
  accessLines.length = 0;
});

test('open sockets are counted per reporter while a client holds one, and not after', async () => {
  // An app on a port that is no Service's, so that this connection has series of its own.
  const other = await app();
  headedTo = { ip: '127.0.0.1', port: other.port };
  const s = connect({ port: (inbound15006.address() as AddressInfo).port, host: '127.0.0.1', localAddress: '127.0.0.2' });
  await until(() => proxy.connections.size === 1);
  assert.is((await only('istio_tcp_sockets_open', { reporter: 'destination' })).value, 1);
  assert.is((await only('istio_tcp_sockets_open', { reporter: 'source' })).value, 0);
  s.destroy();
  await until(() => proxy.openSockets.destination === 0 && proxy.connections.size === 0);
  assert.is((await only('istio_tcp_sockets_open', { reporter: 'destination' })).value, 0);
  other.server.close();
});

test('an allowed mTLS connection: every label as ztunnel sets it, the Service named by the client, received = request bytes', async () => {
  const pool = new HbonePool({ trustBundle: () => bundle });
  try {
    assert.is(await tunnel(pool, `127.0.0.1:${pod.port}`, 'for=127.0.0.4;host=db.shop.svc.cluster.local'), response);
    await until(() => proxy.connections.size === 0);
    const labels = { reporter: 'destination', ...webSource, ...db, request_protocol: 'tcp', response_flags: '-', connection_security_policy: 'mutual_tls' };
    const opened = await only('istio_tcp_connections_opened_total', { reporter: 'destination', connection_security_policy: 'mutual_tls' });
    assert.equal(opened.labels, labels);
    assert.is(opened.value, 1);
    assert.is((await only('istio_tcp_connections_closed_total', labels)).value, 1);
    // Istio's directions: the request (client to server) is received, the answer sent.
    assert.is((await only('istio_tcp_received_bytes_total', labels)).value, request.length);
    assert.is((await only('istio_tcp_sent_bytes_total', labels)).value, response.length);
    const line = accessLines.find((l) => l.event === 'closed')!;
    assert.is(line.bytes_received, request.length, 'the access log names directions the same way');
    assert.is(line.bytes_sent, response.length);
    assert.is(line.response_flags, '-');
  } finally {
    pool.close();
  }
});

test('a CONNECT naming no Service is counted under the pod\'s Service whose target port it is, not the pod address', async () => {
  const pool = new HbonePool({ trustBundle: () => bundle });
  try {
    const before = (await only('istio_tcp_connections_closed_total', { connection_security_policy: 'mutual_tls', response_flags: '-' })).value;
    await tunnel(pool, `127.0.0.1:${pod.port}`, 'for=127.0.0.4');
    await until(() => proxy.connections.size === 0);
    const closed = await only('istio_tcp_connections_closed_total', { connection_security_policy: 'mutual_tls', response_flags: '-' });
    assert.is(closed.labels.destination_service, 'db.shop.svc.cluster.local', 'not shop/admin, whose port is another');
    assert.is(closed.value, before + 1);
    // A host that is none of the pod's Services is not believed.
    await tunnel(pool, `127.0.0.1:${pod.port}`, 'for=127.0.0.4;host=payments.bank.svc.cluster.local');
    await until(() => proxy.connections.size === 0);
    assert.is((await only('istio_tcp_connections_closed_total', { connection_security_policy: 'mutual_tls', response_flags: '-' })).value, before + 2);
  } finally {
    pool.close();
  }
});

test('a plaintext connection: connection_security_policy and source_principal are unknown, the destination still named', async () => {
  assert.is(await plain(inbound15006), response);
  await until(() => proxy.connections.size === 0);
  const opened = await only('istio_tcp_connections_opened_total', { connection_security_policy: 'unknown', reporter: 'destination', destination_service_name: 'db' });
  assert.equal(opened.labels, {
    reporter: 'destination',
    source_workload: 'client',
    source_canonical_service: 'client',
    source_canonical_revision: 'latest',
    source_workload_namespace: 'legacy',
    source_principal: 'unknown',
    source_app: 'client',
    source_version: 'latest',
    source_cluster: 'Kubernetes',
    ...db,
    request_protocol: 'tcp',
    response_flags: '-',
    connection_security_policy: 'unknown',
  });
  assert.is((await only('istio_tcp_received_bytes_total', opened.labels)).value, request.length);
  assert.is((await only('istio_tcp_sent_bytes_total', opened.labels)).value, response.length);
});

test('a denied connection is opened and closed with response_flags DENY and the labels known then, in the metrics and the access log', async () => {
  pushPolicies([{ key: 'policy/AuthorizationPolicy/shop/no-web', value: { kind: 'AuthorizationPolicy', name: 'no-web', namespace: 'shop', spec: { action: 'DENY', rules: [{ from: [{ source: { principals: ['cluster.local/ns/shop/sa/web'] } }] }] } } }]);
  const pool = new HbonePool({ trustBundle: () => bundle });
  try {
    const err = await rejection(tunnel(pool, `127.0.0.1:${pod.port}`, 'for=127.0.0.4;host=db.shop.svc.cluster.local'));
    assert.is((err as HboneConnectRefused).status, 403);
    const labels = { reporter: 'destination', ...webSource, ...db, request_protocol: 'tcp', response_flags: 'DENY', connection_security_policy: 'mutual_tls' };
    const opened = await only('istio_tcp_connections_opened_total', { response_flags: 'DENY' });
    assert.equal(opened.labels, labels);
    assert.is(opened.value, 1);
    assert.is((await only('istio_tcp_connections_closed_total', labels)).value, 1);
    assert.is((await only('istio_tcp_connections_failed_total', labels)).value, 1);
    assert.equal((await scrape('istio_tcp_received_bytes_total')).filter((s) => s.labels.response_flags === 'DENY'), [], 'no bytes crossed');
    const line = accessLines.find((l) => l.event === 'denied')!;
    assert.is(line.response_flags, 'DENY');
    assert.match(String(line.reason), /shop\/no-web/);
  } finally {
    pool.close();
    pushPolicies([], ['policy/AuthorizationPolicy/shop/no-web']);
  }
});

test('plaintext refused under STRICT is a DENY too, with security unknown', async () => {
  pushPolicies([{ key: 'policy/PeerAuthentication/shop/strict', value: { kind: 'PeerAuthentication', name: 'strict', namespace: 'shop', spec: { mtls: { mode: 'STRICT' } } } }]);
  try {
    assert.is(await plain(inbound15006), 'ECONNRESET');
    await until(() => accessLines.some((l) => l.event === 'denied'));
    const closed = await only('istio_tcp_connections_closed_total', { response_flags: 'DENY', connection_security_policy: 'unknown' });
    assert.is(closed.labels.source_workload, 'client');
    assert.is(closed.labels.source_principal, 'unknown');
    assert.is(closed.labels.destination_service, 'db.shop.svc.cluster.local');
    assert.is((await only('istio_tcp_connections_opened_total', closed.labels)).value, 1);
  } finally {
    pushPolicies([], ['policy/PeerAuthentication/shop/strict']);
  }
});

test('a connection the pod refuses is opened and closed with response_flags CONNECT, inbound and outbound', async () => {
  const port = await closedPort();
  headedTo = { ip: '127.0.0.1', port };
  const pool = new HbonePool({ trustBundle: () => bundle });
  try {
    // Inbound: the CONNECT is answered 503; the destination records CONNECT.
    const err = await rejection(tunnel(pool, `127.0.0.1:${port}`, 'for=127.0.0.4'));
    assert.is((err as HboneConnectRefused).status, 503);
    const inbound = await only('istio_tcp_connections_closed_total', { reporter: 'destination', response_flags: 'CONNECT' });
    assert.equal(inbound.labels, { reporter: 'destination', ...webSource, ...Object.fromEntries(Object.entries(db).map(([k, v]) => [k, k.startsWith('destination_service') ? 'unknown' : v])), request_protocol: 'tcp', response_flags: 'CONNECT', connection_security_policy: 'mutual_tls' });
    assert.is((await only('istio_tcp_connections_opened_total', inbound.labels)).value, 1);
    // Outbound: the pod's connection to an address outside the mesh that refuses; the source records CONNECT.
    headedTo = { ip: '127.0.0.3', port };
    assert.is(await plain(outbound15001, '127.0.0.1'), 'ECONNRESET');
    await until(() => accessLines.some((l) => l.event === 'failed' && l.reporter === 'source'));
    const outbound = await only('istio_tcp_connections_closed_total', { reporter: 'source', response_flags: 'CONNECT' });
    assert.equal(outbound.labels, {
      reporter: 'source',
      source_workload: 'db-v3',
      source_canonical_service: 'db',
      source_canonical_revision: 'v3',
      source_workload_namespace: 'shop',
      source_principal: 'unknown',
      source_app: 'db',
      source_version: 'v3',
      source_cluster: 'Kubernetes',
      destination_service: 'unknown',
      destination_service_namespace: 'unknown',
      destination_service_name: 'unknown',
      destination_workload: 'unknown',
      destination_canonical_service: 'unknown',
      destination_canonical_revision: 'unknown',
      destination_workload_namespace: 'unknown',
      destination_principal: 'unknown',
      destination_app: 'unknown',
      destination_version: 'unknown',
      destination_cluster: 'unknown',
      request_protocol: 'tcp',
      response_flags: 'CONNECT',
      connection_security_policy: 'unknown',
    });
    assert.is((await only('istio_tcp_connections_opened_total', outbound.labels)).value, 1);
    assert.is((await only('istio_tcp_connections_failed_total', outbound.labels)).value, 1);
    assert.is(proxy.counters([captured]).find((c) => c.direction === 'outbound')!.failed, 1, 'the pod\'s own counters see it too');
  } finally {
    pool.close();
  }
});

test('an outbound connection counts the request as received and the answer as sent, at the source too', async () => {
  const app2 = await app('127.0.0.3');
  headedTo = { ip: '127.0.0.3', port: app2.port };
  try {
    // 127.0.0.3 is no workload: passthrough, reached at 127.0.0.3 through loopback.
    assert.is(await plain(outbound15001, '127.0.0.1'), response);
    await until(() => proxy.connections.size === 0);
    const where = { reporter: 'source', response_flags: '-' };
    assert.is((await only('istio_tcp_received_bytes_total', where)).value, request.length);
    assert.is((await only('istio_tcp_sent_bytes_total', where)).value, response.length);
    const pods = proxy.counters([captured]).find((c) => c.direction === 'outbound')!;
    assert.equal([pods.received, pods.sent], [request.length, response.length], 'the query API names them the same way');
  } finally {
    app2.server.close();
  }
});

test('a connection a policy change ends opened with `-` and closes with DENY, its bytes where it opened', async () => {
  const slow = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined);
    s.write(response);
  });
  slow.listen(0, '127.0.0.1');
  await once(slow, 'listening');
  headedTo = { ip: '127.0.0.1', port: (slow.address() as AddressInfo).port };
  try {
    const s = connect({ port: (inbound15006.address() as AddressInfo).port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    s.on('error', () => undefined);
    await once(s, 'data');
    const denials = async () => (await scrape('istio_tcp_connections_closed_total')).filter((x) => x.labels.connection_security_policy === 'unknown' && x.labels.response_flags === 'DENY' && x.labels.destination_service_name === 'unknown');
    assert.equal(await denials(), []);
    pushPolicies([{ key: 'policy/AuthorizationPolicy/shop/no-legacy', value: { kind: 'AuthorizationPolicy', name: 'no-legacy', namespace: 'shop', spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['127.0.0.2/32'] } }] }] } } }]);
    await until(() => proxy.connections.size === 0);
    // The slow app's port is no Service's: destination_service_name unknown tells this series apart.
    const closed = await denials();
    assert.is(closed.length, 1);
    assert.is(closed[0]!.value, 1);
    const sent = await only('istio_tcp_sent_bytes_total', { ...closed[0]!.labels, response_flags: '-' });
    assert.ok(sent.value >= response.length, 'the bytes stay with the series the connection opened in');
  } finally {
    slow.close();
    pushPolicies([], ['policy/AuthorizationPolicy/shop/no-legacy']);
  }
});

test.run();
