// The query API's `connections` and `denials` topics, end to end inside one process: a plain `ws`
// client against the real query API server, a connection tracked by the real ConnectionTable, and
// denials through the real inbound path (HBONE server and pool on loopback, handleTunnel; a
// plaintext connection refused under STRICT, handlePlaintext). Clients
// that did not ask for these topics receive none of them, and the API listens on the data path's
// channels only while some client wants the topic.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import diagnostics_channel from 'node:diagnostics_channel';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { EventLog } from '../../../agent/api/events.js';
import { createAdminServer } from '../../../agent/api/server.js';
import { Resolver } from '../../../agent/proxy/resolve.js';
import { ConnectionTable, socketBytes, type ConnectionInfo } from '../../../agent/proxy/connections.js';
import { handlePlaintext, handleTunnel, type InboundContext } from '../../../agent/proxy/inbound.js';
import { join } from '../../../agent/proxy/outbound.js';
import { Authorizer, PeerAuthenticator } from '../../../shared/policy/index.js';
import { echoServer, fixture, rejection, until } from '../proxy/helpers.js';
import { stateWith } from '../../helpers/state.js';

// This node (n1) holds shop/db-1 at 127.0.0.1; the HBONE pool of the fixture presents shop/web's
// SVID, and 10.0.0.7 is a workload of shop/web, 10.0.0.8 one of shop/other.
const state = stateWith('n1', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'workload/shop/web-1', value: { ip: '10.0.0.7', node: 'n2', serviceAccount: 'web', owner: 'Deployment/web' } },
  { key: 'workload/shop/other-1', value: { ip: '10.0.0.8', node: 'n2', serviceAccount: 'other', owner: 'Deployment/other' } },
  { key: 'workload/shop/db-1', value: { ip: '127.0.0.1', node: 'n1', serviceAccount: 'db', owner: 'Deployment/db', labels: { app: 'db' } } },
]);
const web = state.workloads.get('workload/shop/web-1')!;
const db = state.workloads.get('workload/shop/db-1')!;
const silent = pino({ level: 'silent' });
const connections = new ConnectionTable({ opened: () => undefined, closed: () => undefined });
const authorizer = new Authorizer();
const peerAuthentication = new PeerAuthenticator();
const ctx: InboundContext = {
  resolver: new Resolver(state),
  authorizer,
  peerAuthentication,
  connections,
  // 127.0.0.1 stands for this node's one captured pod; denied CONNECTs never dial it.
  localPod: (ip) => (ip === '127.0.0.1' ? { workload: db, nsFd: -1 } : undefined),
  trustDomain: 'cluster.local',
  log: silent,
  access: silent,
  denied: () => undefined,
  failed: () => undefined,
};
const events = new EventLog();
const api = createAdminServer({ state, events, token: 'not-used-on-loopback', log: silent, controller: () => ({ connected: true }) });
let url = '';

interface Message {
  id?: number;
  result?: unknown;
  topic?: string;
  time?: string;
  data?: Record<string, unknown>;
}

interface Client {
  ws: WebSocket;
  messages: Message[];
  /** Sends a request and resolves with its answer. */
  call(method: string, params?: unknown): Promise<Message>;
  close(): Promise<void>;
}

let nextId = 1;
async function client(): Promise<Client> {
  const ws = new WebSocket(url);
  const messages: Message[] = [];
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Message));
  await once(ws, 'open');
  return {
    ws,
    messages,
    async call(method, params) {
      const id = nextId++;
      ws.send(JSON.stringify({ id, method, ...(params ? { params } : {}) }));
      await until(() => messages.some((m) => m.id === id));
      return messages.find((m) => m.id === id)!;
    },
    async close() {
      if (ws.readyState === WebSocket.CLOSED) return;
      ws.close();
      await once(ws, 'close');
    },
  };
}

const of = (c: Client, topic: string) => c.messages.filter((m) => m.topic === topic);

/**
 * A proxied connection as the data path makes one: the app connects to a listener, which dials the
 * destination (an echo server), tracks the pair in the ConnectionTable and joins them; the app
 * sends `text`, half-closes, reads the echo and closes.
 */
async function proxiedConnection(info: ConnectionInfo, text: string): Promise<string> {
  const echo = await echoServer();
  const proxy = createServer({ allowHalfOpen: true }, (accepted: Socket) => {
    accepted.on('error', () => undefined);
    const upstream = connect({ port: echo.port, host: '127.0.0.1', allowHalfOpen: true });
    upstream.on('error', () => undefined);
    upstream.once('connect', () => {
      connections.track({ ...info, destination: { ...info.destination, port: echo.port } }, accepted, upstream, socketBytes(upstream));
      join(accepted, upstream);
    });
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  const app = connect({ port: (proxy.address() as AddressInfo).port, host: '127.0.0.1' });
  await once(app, 'connect');
  app.end(text);
  let answer = '';
  for await (const chunk of app) answer += (chunk as Buffer).toString();
  await until(() => connections.size === 0);
  proxy.close();
  await echo.close();
  return answer;
}

test.before(async () => {
  api.listen(0, '127.0.0.1');
  await once(api, 'listening');
  url = `ws://127.0.0.1:${(api.address() as AddressInfo).port}/`;
});

test.after(async () => {
  api.close();
  api.closeAllConnections();
});

test('a subscriber to connections and denials sees a connection opened and closed, and denials by policy and by Forwarded address, with identities and decisions; other clients see none', async () => {
  const watcher = await client();
  const everything = await client();
  const configOnly = await client();
  const silentClient = await client();
  const others = [configOnly, silentClient];
  try {
    assert.equal((await watcher.call('subscribe', { topics: ['connections', 'denials'] })).result, { subscribed: ['connections', 'denials'] });
    await everything.call('subscribe');
    await configOnly.call('subscribe', { topics: ['config'] });

    // An allowed connection: opened, then closed with its bytes and duration.
    const info: ConnectionInfo = {
      reporter: 'destination',
      source: { ip: web.ip, port: 40000, workload: web, principal: 'cluster.local/ns/shop/sa/web' },
      destination: { ip: db.ip, port: 0, workload: db, principal: 'cluster.local/ns/shop/sa/db' },
      security: 'mutual_tls',
      decision: 'ALLOW policy shop/allow-web rule 0',
    };
    assert.is(await proxiedConnection(info, 'hello'), 'hello');
    await until(() => of(watcher, 'connections').length === 2);
    const [opened, closed] = of(watcher, 'connections');
    const identities = {
      reporter: 'destination',
      source: '10.0.0.7:40000',
      source_workload: 'shop/web-1',
      source_principal: 'cluster.local/ns/shop/sa/web',
      destination_workload: 'shop/db-1',
      destination_principal: 'cluster.local/ns/shop/sa/db',
      connection_security_policy: 'mutual_tls',
      decision: 'ALLOW policy shop/allow-web rule 0',
    };
    assert.ok(opened!.time && closed!.time, 'the envelope of the other topics: {topic, time, data}');
    assert.is(opened!.data!.event, 'opened');
    assert.is(closed!.data!.event, 'closed');
    assert.is(opened!.data!.id, closed!.data!.id, 'one id from open to close');
    for (const m of [opened!, closed!]) {
      for (const [k, v] of Object.entries(identities)) assert.is(m.data![k], v, `${String(m.data!.event)}: ${k}`);
      assert.match(String(m.data!.destination), /^127\.0\.0\.1:\d+$/);
    }
    assert.is(closed!.data!.bytes_sent, 5);
    assert.is(closed!.data!.bytes_received, 5);
    assert.type(closed!.data!.duration_ms, 'number');
    assert.is(opened!.data!.bytes_sent, undefined, 'bytes are reported at close');

    // A DENY policy on the peer's namespace: denied by that policy's rule 0.
    authorizer.update([{ kind: 'AuthorizationPolicy', name: 'no-shop', namespace: 'shop', spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['shop'] } }] }] } }]);
    const f = await fixture({ onTunnel: (t) => handleTunnel(ctx, t) });
    try {
      await rejection(f.pool.connect(f.request({ authority: '127.0.0.1:5432', headers: { forwarded: 'for=10.0.0.7' } })));
      authorizer.update([]);
      // shop/web's agent claims the address of a shop/other workload.
      await rejection(f.pool.connect(f.request({ authority: '127.0.0.1:5432', headers: { forwarded: 'for=10.0.0.8' } })));
    } finally {
      authorizer.update([]);
      await f.close();
    }
    await until(() => of(watcher, 'denials').length === 2);
    const [byPolicy, byAddress] = of(watcher, 'denials').map((m) => m.data!);
    assert.equal(
      { event: byPolicy!.event, code: byPolicy!.code, reason: byPolicy!.reason, policy: byPolicy!.policy, rule: byPolicy!.rule },
      { event: 'denied', code: 'policy', reason: 'DENY policy shop/no-shop rule 0', policy: 'shop/no-shop', rule: 0 },
    );
    assert.equal(
      { source: byPolicy!.source, source_workload: byPolicy!.source_workload, source_principal: byPolicy!.source_principal, destination: byPolicy!.destination, destination_workload: byPolicy!.destination_workload, destination_principal: byPolicy!.destination_principal },
      { source: '10.0.0.7', source_workload: 'shop/web-1', source_principal: 'cluster.local/ns/shop/sa/web', destination: '127.0.0.1:5432', destination_workload: 'shop/db-1', destination_principal: 'cluster.local/ns/shop/sa/db' },
    );
    assert.is(byAddress!.code, 'source-address-not-of-peer');
    assert.is(byAddress!.source_principal, 'cluster.local/ns/shop/sa/web');
    assert.is(byAddress!.source, '10.0.0.8', 'the address it claimed');
    assert.is(byAddress!.source_workload, undefined, 'not attributed to the workload whose address was claimed');
    assert.is(byAddress!.destination, '127.0.0.1:5432');
    assert.match(String(byAddress!.reason), 'Forwarded address 10.0.0.8 is not a workload of cluster.local/ns/shop/sa/web');

    // A client subscribed to every topic gets the same; the others get nothing of them. Events are
    // sent as they happen, so an answer asked for now comes after any that were sent to them.
    await until(() => of(everything, 'connections').length === 2 && of(everything, 'denials').length === 2);
    for (const c of others) {
      await c.call('version');
      assert.equal([...of(c, 'connections'), ...of(c, 'denials')], []);
    }
  } finally {
    for (const c of [watcher, everything, ...others]) await c.close();
  }
});

test('a plaintext connection refused under mTLS STRICT is a denial naming the PeerAuthentication', async () => {
  const watcher = await client();
  peerAuthentication.update([{ kind: 'PeerAuthentication', name: 'strict', namespace: 'shop', spec: { mtls: { mode: 'STRICT' } } }]);
  // A pod's 15006 as the capture hands it over: the original destination is db-1's port 5432.
  const listener = createServer((s) => handlePlaintext(ctx, { workload: db, nsFd: -1 }, s, () => ({ ip: db.ip, port: 5432 })));
  try {
    await watcher.call('subscribe', { topics: ['denials'] });
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const app = connect({ port: (listener.address() as AddressInfo).port, host: '127.0.0.1' });
    // Refused with a reset, as a denied connection looks to the app.
    await new Promise((closed) => app.on('error', () => undefined).once('close', closed));
    await until(() => of(watcher, 'denials').length === 1);
    const d = of(watcher, 'denials')[0]!.data!;
    assert.is(d.code, 'mtls-strict');
    assert.is(d.reason, 'plaintext refused: mTLS mode STRICT (PeerAuthentication shop/strict)');
    assert.is(d.connection_security_policy, 'unknown');
    assert.match(String(d.source), /^127\.0\.0\.1:\d+$/);
    assert.is(d.destination, '127.0.0.1:5432');
    assert.is(d.destination_workload, 'shop/db-1');
    assert.is(d.policy, undefined, 'no AuthorizationPolicy decided');
  } finally {
    peerAuthentication.update([]);
    listener.close();
    await watcher.close();
  }
});

test("the query API listens on the data path's channels only while a client wants the topic", async () => {
  const listening = () => ['opened', 'closed', 'denied'].map((n) => diagnostics_channel.hasSubscribers(`ambit:connection:${n}`));
  assert.equal(listening(), [false, false, false], 'nobody subscribed: the data path publishes nothing');
  const a = await client();
  const b = await client();
  await a.call('subscribe', { topics: ['denials'] });
  assert.equal(listening(), [false, false, true]);
  await b.call('subscribe', { topics: ['connections', 'denials'] });
  assert.equal(listening(), [true, true, true]);
  // Subscribing again replaces the topics.
  await b.call('subscribe', { topics: ['config'] });
  assert.equal(listening(), [false, false, true]);
  await a.close();
  await until(() => !listening()[2]);
  assert.equal(listening(), [false, false, false]);
  await b.close();
});

test.run();
