// The outbound plain-TCP path (a destination outside the mesh) through handleOutbound, with real
// sockets on loopback and the agent's socket path in this process's own namespace: a refused
// destination resets the app's connection at once and is counted; a good one carries bytes and
// leaves the connection table when it ends; a pod leaving the mesh goes in plain TCP.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { Resolver } from '../../../agent/proxy/resolve.js';
import { ConnectionTable } from '../../../agent/proxy/connections.js';
import { handleOutbound, tunnelFailureFlag, type OutboundContext, type SourcePod } from '../../../agent/proxy/outbound.js';
import { HboneConnectFailed, HboneConnectRefused, HbonePeerUntrusted } from '../../../shared/hbone/protocol.js';
import type { HbonePool } from '../../../shared/hbone/pool.js';
import type { CertificateManager } from '../../../agent/identity/manager.js';
import { closeFd, openNetns } from '../../../native/netns.js';
import { closedPort, echoServer, until } from './helpers.js';
import { stateWith } from '../../helpers/state.js';

const state = stateWith('n1', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'namespace/leaving', value: { name: 'leaving' } },
  { key: 'node/n1', value: { ip: '10.250.0.1' } },
  { key: 'workload/shop/web-1', value: { ip: '10.0.0.7', node: 'n1', serviceAccount: 'web', owner: 'Deployment/web' } },
  // An enrolled destination on loopback, and a pod whose namespace just left the mesh.
  { key: 'workload/shop/db-1', value: { ip: '127.0.0.2', node: 'n1', serviceAccount: 'db', owner: 'Deployment/db' } },
  { key: 'workload/leaving/app-1', value: { ip: '10.0.0.9', node: 'n1', serviceAccount: 'app', owner: 'Deployment/app' } },
]);
const podNs = openNetns('/proc/self/ns/net');
const failed: string[] = [];
let closedConnections = 0;
const ctx: OutboundContext = {
  resolver: new Resolver(state),
  // The plain path uses neither.
  pool: undefined as unknown as HbonePool,
  certificates: undefined as unknown as CertificateManager,
  connections: new ConnectionTable({ opened: () => undefined, closed: () => closedConnections++ }),
  trustDomain: 'cluster.local',
  log: pino({ level: 'silent' }),
  failed: (r) => failed.push(r),
  enrolled: (w) => state.isEnrolled(w),
};

/** The pod's outbound listener (its 15001), with the original destination fixed to `port` on loopback. */
async function listener(port: number, source = 'workload/shop/web-1', ip = '127.0.0.1'): Promise<Server> {
  const pod: SourcePod = { workload: state.workloads.get(source)!, nsFd: podNs, destinationOf: () => ({ ip, port }) };
  const server = createServer({ allowHalfOpen: true }, (s) => handleOutbound(ctx, pod, s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}


test.after(() => closeFd(podNs));

test('a plain-TCP destination that refuses resets the app\'s connection at once and is counted', async () => {
  const server = await listener(await closedPort());
  try {
    const app: Socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    const ending = new Promise<string | undefined>((resolve) => {
      app.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
      app.once('close', () => resolve('closed without a reset'));
    });
    assert.is(await ending, 'ECONNRESET', 'a refused destination looks refused to the app, not like an empty answer');
    await until(() => failed.length > 0);
    assert.equal(failed, ['connect']);
    assert.is(ctx.connections.size, 0);
  } finally {
    server.close();
    failed.length = 0;
  }
});

test('a plain-TCP destination that answers carries bytes, and the connection leaves the table at its end', async () => {
  const echo = await echoServer();
  const server = await listener(echo.port);
  try {
    const app: Socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    app.end('through the agent');
    const chunks: Buffer[] = [];
    for await (const c of app) chunks.push(c as Buffer);
    assert.is(Buffer.concat(chunks).toString(), 'through the agent');
    await until(() => closedConnections === 1);
    assert.is(ctx.connections.size, 0);
    assert.equal(failed, []);
  } finally {
    server.close();
    await echo.close();
  }
});

test('a pod leaving the mesh, still redirected for a moment, reaches an enrolled destination in plain TCP at once', async () => {
  // Its certificate is gone with its enrollment; waiting for one would hang the connection.
  const db = createServer((c) => c.pipe(c)).listen(0, '127.0.0.2');
  await once(db, 'listening');
  const server = await listener((db.address() as AddressInfo).port, 'workload/leaving/app-1', '127.0.0.2');
  try {
    const app: Socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
    app.end('leaving');
    const chunks: Buffer[] = [];
    for await (const c of app) chunks.push(c as Buffer);
    assert.is(Buffer.concat(chunks).toString(), 'leaving');
    await until(() => closedConnections === 2);
    assert.equal(failed, []);
  } finally {
    server.close();
    db.close();
  }
});

test('a failed tunnel is flagged as ztunnel flags its cause', () => {
  assert.is(tunnelFailureFlag(new HboneConnectRefused(403, '10.0.0.8:80', '10.250.0.2:15008')), 'CONNECT', 'the destination reports the DENY; the source, that it could not connect');
  assert.is(tunnelFailureFlag(new HboneConnectFailed('tcp', 'refused')), 'CONNECT');
  assert.is(tunnelFailureFlag(new HbonePeerUntrusted('wrong-identity', 'not the expected server')), 'TLS_FAILURE');
  assert.is(tunnelFailureFlag(new HboneConnectFailed('tls', 'handshake failed')), 'TLS_FAILURE');
  assert.is(tunnelFailureFlag(new HboneConnectFailed('session', 'session failed')), 'H2_HANDSHAKE_FAILURE');
  assert.is(tunnelFailureFlag(new HboneConnectFailed('credentials', 'no certificate')), 'IDENTITY_ERROR');
});

test.run();
