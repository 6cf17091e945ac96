// The inbound side's dial to the pod, through a real HBONE server and pool on loopback and the
// agent's own socket path (tcpSocketIn in this process's namespace, standing in for the pod's):
// a pod port that refuses or never answers is answered 503 at once and counted; a tunnel without a
// Forwarded header is authorized by the peer's real address; a client that resets its CONNECT
// before the pod accepts leaves neither a dial nor a connection-table entry behind.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { type AddressInfo, connect as tcpConnect, createServer } from 'node:net';
import { pino } from 'pino';
import { Resolver } from '../../../agent/proxy/resolve.js';
import { ConnectionTable, type TrackedConnection } from '../../../agent/proxy/connections.js';
import { handlePlaintext, handleTunnel, type InboundContext } from '../../../agent/proxy/inbound.js';
import { HboneConnectRefused } from '../../../shared/hbone/protocol.js';
import { closeFd, listenerIn, openNetns } from '../../../native/netns.js';
import { Authorizer, PeerAuthenticator } from '../../../shared/policy/index.js';
import { closedPort, echoServer, fixture, rawSession, readAll, rejection, until, web } from './helpers.js';
import { stateWith } from '../../helpers/state.js';

// The pool presents shop/web's SVID; 10.0.0.7 is a workload of shop/web. The captured pod is
// shop/db at 127.0.0.1, "inside" this process's own network namespace.
const state = stateWith('n1', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'workload/shop/web-1', value: { ip: '10.0.0.7', node: 'n2', serviceAccount: 'web', owner: 'Deployment/web' } },
  { key: 'workload/shop/db-1', value: { ip: '127.0.0.1', node: 'n1', serviceAccount: 'db', owner: 'Deployment/db', labels: { app: 'db' } } },
]);
const podNs = openNetns('/proc/self/ns/net');
const denied: string[] = [];
const failed: string[] = [];
const closed: TrackedConnection[] = [];
const authorizer = new Authorizer();
const connections = new ConnectionTable({ opened: () => undefined, closed: (c) => closed.push(c) });
const ctx: InboundContext = {
  resolver: new Resolver(state),
  authorizer,
  peerAuthentication: new PeerAuthenticator(),
  connections,
  localPod: (ip) => (ip === '127.0.0.1' ? { workload: state.workloads.get('workload/shop/db-1')!, nsFd: podNs } : undefined),
  trustDomain: 'cluster.local',
  log: pino({ level: 'silent' }),
  access: pino({ level: 'silent' }),
  denied: (r) => denied.push(r),
  failed: (r) => failed.push(r),
};

test.after.each(() => {
  denied.length = 0;
  failed.length = 0;
  closed.length = 0;
  authorizer.update([]);
  delete ctx.podConnectTimeoutMs;
});
test.after(() => closeFd(podNs));


/**
 * A pod that never accepts: a listener nobody accepts on, backlog 0, its one queue slot taken. The
 * kernel drops further SYNs, so a dial to it stays in SYN-SENT, as one to a pod being torn down.
 */
async function stalledPod(): Promise<{ port: number; close(): void }> {
  const port = await closedPort();
  const fd = listenerIn(podNs, '127.0.0.1', port, {}, 0);
  const filler = tcpConnect(port, '127.0.0.1');
  filler.on('error', () => undefined);
  await once(filler, 'connect');
  return {
    port,
    close() {
      filler.destroy();
      closeFd(fd);
    },
  };
}

/** Sockets of this host still trying to connect to `port`. */
function dialsTo(port: number): number {
  return execFileSync('ss', ['-tnH', 'state', 'syn-sent', 'dport', '=', `:${port}`], { encoding: 'utf8' }).split('\n').filter((l) => l.trim()).length;
}

async function refusal(f: Awaited<ReturnType<typeof fixture>>, authority: string): Promise<number> {
  const err = await rejection(f.pool.connect(f.request({ authority })));
  assert.instance(err, HboneConnectRefused, err.message);
  return (err as HboneConnectRefused).status;
}

test('a CONNECT to a pod port where nothing listens is answered 503 at once and counted', async () => {
  // The pool's own timeout is the client giving up; the answer must come long before it.
  // Far from both the pod connect timeout and the client's, so "at once" holds on a slow machine too.
  ctx.podConnectTimeoutMs = 30_000;
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t), pool: { connectTimeoutMs: 30_000 } });
  try {
    const port = await closedPort();
    const started = performance.now();
    assert.is(await refusal(f, `127.0.0.1:${port}`), 503);
    assert.ok(performance.now() - started < 10_000, `answered in ${Math.round(performance.now() - started)} ms`);
    assert.equal(failed, ['connect-pod']);
    assert.is(connections.size, 0);
  } finally {
    await f.close();
  }
});

test('a plaintext connection to a pod port where nothing listens is reset at once and counted', async () => {
  const port = await closedPort();
  const pod = { workload: state.workloads.get('workload/shop/db-1')!, nsFd: podNs };
  // The pod's 15006, with the original destination fixed to the closed port.
  const server = createServer({ allowHalfOpen: true }, (s) => handlePlaintext(ctx, pod, s, () => ({ ip: '127.0.0.1', port })));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const app = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1');
    const ending = new Promise<string | undefined>((resolve) => {
      app.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
      app.once('close', () => resolve('closed without a reset'));
    });
    assert.is(await ending, 'ECONNRESET');
    await until(() => failed.length > 0);
    assert.equal(failed, ['connect-pod']);
    assert.is(connections.size, 0);
  } finally {
    server.close();
  }
});

test('a pod that does not accept within the connect timeout is answered 503, and the dial is abandoned', async () => {
  ctx.podConnectTimeoutMs = 200;
  const pod = await stalledPod();
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t), pool: { connectTimeoutMs: 3000 } });
  try {
    assert.is(await refusal(f, `127.0.0.1:${pod.port}`), 503);
    assert.equal(failed, ['connect-pod']);
    assert.is(dialsTo(pod.port), 0);
  } finally {
    await f.close();
    pod.close();
  }
});

test('a CONNECT without a Forwarded header is authorized by the peer\'s real address and still carries traffic', async () => {
  const echo = await echoServer();
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  try {
    const stream = await f.pool.connect(f.request({ authority: `127.0.0.1:${echo.port}` }));
    stream.end('no forwarded header');
    assert.is(await readAll(stream), 'no forwarded header');
    await until(() => closed.length === 1);
    assert.is(closed[0]!.source.ip, '127.0.0.1', 'the source is the peer node, not 0.0.0.0');
  } finally {
    await f.close();
    await echo.close();
  }
});

test('without a Forwarded header, a DENY on ipBlocks covering the peer\'s address refuses the tunnel', async () => {
  authorizer.update([{ kind: 'AuthorizationPolicy', name: 'no-node', namespace: 'shop', spec: { action: 'DENY', rules: [{ from: [{ source: { ipBlocks: ['127.0.0.1/32'] } }] }] } }]);
  const echo = await echoServer();
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  try {
    assert.is(await refusal(f, `127.0.0.1:${echo.port}`), 403);
    assert.equal(denied, ['policy']);
  } finally {
    await f.close();
    await echo.close();
  }
});

test('without a Forwarded header, an ALLOW on notIpBlocks excluding the peer\'s address does not let the tunnel in', async () => {
  authorizer.update([{ kind: 'AuthorizationPolicy', name: 'not-loopback', namespace: 'shop', spec: { action: 'ALLOW', rules: [{ from: [{ source: { notIpBlocks: ['127.0.0.0/8'] } }] }] } }]);
  const echo = await echoServer();
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  try {
    assert.is(await refusal(f, `127.0.0.1:${echo.port}`), 403);
    assert.equal(denied, ['policy-default']);
  } finally {
    await f.close();
    await echo.close();
  }
});

test('a client that resets its CONNECT before the pod accepts leaves no dial and no tracked connection', async () => {
  const pod = await stalledPod();
  const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
  const session = await rawSession(f.port, web);
  try {
    const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${pod.port}` }, { endStream: false });
    stream.on('error', () => undefined);
    await until(() => dialsTo(pod.port) === 1);
    stream.close(http2.constants.NGHTTP2_CANCEL);
    // Well within the pod connect timeout: it is the reset that ends the dial.
    await until(() => dialsTo(pod.port) === 0, 1000);
    assert.is(connections.size, 0);
    assert.equal(failed, []);
  } finally {
    session.destroy();
    await f.close();
    pod.close();
  }
});

test.run();
