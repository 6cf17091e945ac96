// The waypoint's HTTP/1.1 requests over HBONE tunnels (waypoint/proxy/upstream.ts), through the real
// pool, HBONE server and Node's http.Agent on loopback: keep-alive POSTs reuse their tunnels with
// no reset while the backend answers before the body ends, an empty write on a tunnel calls back
// before any I/O, and a tunnel the peer resets is counted and exported.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import http2 from 'node:http2';
import { once } from 'node:events';
import { connect } from 'node:net';
import { createSecureContext } from 'node:tls';
import { Worker } from 'node:worker_threads';
import { HbonePool } from '../../../shared/hbone/pool.js';
import type { HboneServerCounters } from '../../../shared/hbone/server.js';
import { toPem } from '../../../shared/identity/x509.js';
import type { ServiceEntry, WorkloadEntry } from '../../../shared/protocol/config.js';
import { type Endpoint, Upstreams } from '../../../waypoint/proxy/upstream.js';
import { WaypointState } from '../../../waypoint/state.js';
import { WaypointMetrics } from '../../../waypoint/telemetry/metrics.js';
import { api, bundle, fixture, readAll, root, web } from '../proxy/helpers.js';
import type { TunnelPeerData, TunnelPeerPorts } from './tunnel-peer.js';

const service: ServiceEntry = { name: 'echo', namespace: 'shop', clusterIP: '10.96.0.10', ports: [{ port: 80, targetPort: 8080 }], endpoints: [] };
/** The backend pod: in an ambient namespace, so reached over HBONE, and running as api (the HBONE server's identity). */
const pod: WorkloadEntry = { name: 'echo-1', namespace: 'shop', ip: '127.0.0.1', node: 'node-1', serviceAccount: 'api', owner: 'Deployment/echo' };

/** Upstreams as the waypoint builds them, presenting web's SVID, its pool dialing `hbonePort` for node-1. */
function upstreams(hbonePort: () => number, pool = new HbonePool({ trustBundle: () => bundle, createConnection: () => connect(hbonePort(), '127.0.0.1') })) {
  const state = new WaypointState();
  state.apply({ type: 'snapshot', version: 1, trustDomain: 'cluster.local', services: [service], workloads: [pod], nodes: [{ name: 'node-1', ip: '127.0.0.1' }], namespaces: [{ name: 'shop', labels: { 'istio.io/dataplane-mode': 'ambient' } }], trustBundles: [], traffic: [], policies: [] });
  const certificate = { id: web.uri, keyPem: web.keyPem, chain: [], trustBundle: [], notAfter: new Date(Date.now() + 3600_000), secureContext: createSecureContext({ key: web.keyPem, cert: web.certPem }) };
  return { pool, upstreams: new Upstreams({ pool, state, certificate: () => certificate, trustDomain: 'cluster.local', ownIp: '127.0.0.1' }) };
}

const endpoint = (port: number): Endpoint => ({ ip: pod.ip, port, address: `${pod.ip}:${port}`, node: pod.node, workload: pod, service });

/**
 * A POST of `body` on `agent`, written as the forwarder pipes a body that arrived in two reads: the
 * head with its first half, the rest and the end a turn later. Resolves true when answered.
 */
function post(agent: http.Agent, ep: Endpoint, body: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.request({ host: ep.ip, port: ep.port, method: 'POST', path: '/', agent, headers: { 'content-length': body.length } });
    req.on('response', (res) => {
      res.resume();
      res.on('end', () => resolve(true));
    });
    req.on('error', () => resolve(false));
    req.write(body.slice(0, body.length / 2));
    setImmediate(() => {
      req.write(body.slice(body.length / 2));
      req.end();
    });
  });
}

test('keep-alive POSTs through tunnels are each answered once, on tunnels reused with no reset, when the backend answers before the body ends', async () => {
  const data: TunnelPeerData = { keyPem: api.keyPem, certPem: api.certPem, rootPem: toPem(root.der, 'CERTIFICATE') };
  const peer = new Worker(new URL('./tunnel-peer.js', import.meta.url), { workerData: data });
  const [ports] = (await once(peer, 'message')) as [TunnelPeerPorts];
  const { pool, upstreams: u } = upstreams(() => ports.hbone);
  try {
    const ep = endpoint(ports.backend);
    const agent = u.agent(ep);
    let frees = 0;
    agent.on('free', () => frees++);
    const total = 3000;
    const connections = 64;
    const body = 'x'.repeat(1024);
    let sent = 0;
    let answered = 0;
    let failed = 0;
    const client = async () => {
      while (sent < total) {
        sent++;
        if (await post(agent, ep, body)) answered++;
        else failed++;
      }
    };
    // A tunnel given to two requests at once leaves one of them unanswered: wait a while, not forever.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(Array.from({ length: connections }, client)), new Promise((r) => (timer = setTimeout(r, 15_000)))]);
    clearTimeout(timer);
    assert.is(answered, total, `${total - answered - failed} requests unanswered, ${failed} failed`);
    // One 'free' per request: a second one handed a tunnel still in use to another request.
    assert.is(frees, total);
    // The Agent opens a tunnel for a request that comes before a freed one is back in its pool (it
    // returns a tick later), so a few more than the connections; without reuse it would be thousands.
    assert.ok(pool.counters.streamsOpened < total / 10, `${pool.counters.streamsOpened} tunnels for ${total} requests`);
    assert.is(u.counters.resets, 0);
    peer.postMessage('counters');
    const [server] = (await once(peer, 'message')) as [HboneServerCounters];
    assert.is(server.streamErrors, 0);
  } finally {
    u.close();
    pool.close();
    await peer.terminate();
  }
});

test('an empty write on a tunnel with nothing pending calls back before the next I/O turn, and the bytes around it arrive in order', async () => {
  const f = await fixture();
  const { pool, upstreams: u } = upstreams(() => f.port);
  try {
    const tunnel = await u.tunnel(endpoint(f.echoPort));
    await new Promise((r) => tunnel.write('one ', r));
    const order: string[] = [];
    const turn = new Promise<void>((r) =>
      setImmediate(() => {
        order.push('next turn');
        r();
      }),
    );
    tunnel.write('', () => order.push('empty'));
    await turn;
    assert.equal(order, ['empty', 'next turn']);
    tunnel.end('two');
    assert.is(await readAll(tunnel), 'one two');
  } finally {
    u.close();
    pool.close();
    await f.close();
  }
});

test('a tunnel the peer resets counts once in ambit_waypoint_upstream_resets_total; one that ends cleanly does not', async () => {
  const { NGHTTP2_INTERNAL_ERROR } = http2.constants;
  // The peer resets a tunnel whose first bytes say so, and otherwise echoes.
  const f = await fixture({
    onTunnel: (t) => {
      t.respond(200);
      t.stream.once('data', (c: Buffer) => {
        if (c.toString() === 'reset') t.stream.close(NGHTTP2_INTERNAL_ERROR);
        else t.stream.end(c);
      });
    },
  });
  const { pool, upstreams: u } = upstreams(() => f.port);
  const metrics = new WaypointMetrics();
  metrics.watchUpstreams(u.counters);
  try {
    const clean = await u.tunnel(endpoint(f.echoPort));
    clean.end('hello');
    assert.is(await readAll(clean), 'hello');
    if (!clean.destroyed) await once(clean, 'close');
    assert.is(u.counters.resets, 0);

    const reset = await u.tunnel(endpoint(f.echoPort));
    const closed = new Promise((r) => reset.once('close', r));
    reset.on('error', () => undefined);
    reset.write('reset');
    await closed;
    assert.is(u.counters.resets, 1);
    const text = await metrics.registry.metrics();
    assert.match(text, /^ambit_waypoint_upstream_resets_total 1$/m);
    assert.match(text, /^# TYPE ambit_waypoint_upstream_resets_total counter$/m);
  } finally {
    u.close();
    pool.close();
    await f.close();
  }
});

test.run();
