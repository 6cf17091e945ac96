// The forwarder as gRPC and WebSocket clients meet it: a call the waypoint refuses or answers itself
// reaches a real gRPC client (grpc-js) as a trailers-only answer with the gRPC status Envoy maps the
// HTTP status to, recorded as Envoy records it; an upgrade is checked by the same security, held
// both ways once the backend switches protocols, and recorded once, with status 101, when it ends.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http from 'node:http';
import http2 from 'node:http2';
import { Socket, type AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { Forwarder, grpcMessage, type ForwardOptions, type Plan, type RequestOutcome } from '../../../waypoint/proxy/forward.js';
import type { TunnelContext } from '../../../waypoint/proxy/ingress.js';
import type { Upstreams } from '../../../waypoint/proxy/upstream.js';
import type { Destinations } from '../../../waypoint/destinations.js';
import type { Refusal } from '../../../waypoint/security.js';
import type { ServiceEntry } from '../../../shared/protocol/config.js';
import { echoDefinition, runGrpcEcho } from '../../../samples/apps/grpc-echo.js';
import { runWsEcho } from '../../../samples/apps/ws-echo.js';

const service: ServiceEntry = { name: 'grpc', namespace: 'shop', clusterIP: '10.96.0.30', ports: [{ name: 'grpc', port: 9090, targetPort: 9090 }], endpoints: [] };
const ctx: TunnelContext = { peer: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'client' }, peerUri: 'spiffe://cluster.local/ns/shop/sa/client', sourceIp: undefined, service, port: 9090 };

interface Harness {
  port: number;
  records: RequestOutcome[];
  close(): Promise<void>;
}

/** A forwarder behind an h2c server (gRPC) and an HTTP/1.1 server (upgrades), as the ingress hands them over. */
async function forwarder(o: Partial<ForwardOptions>, h2 = true): Promise<Harness> {
  const records: RequestOutcome[] = [];
  const f = new Forwarder({ upstreams: {} as Upstreams, destinations: {} as Destinations, plan: () => ({}), workloadAt: () => undefined, record: (r) => records.push(r), ...o });
  const server = h2 ? http2.createServer() : http.createServer();
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => f.handle(req, res, ctx));
  if (!h2) server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => f.upgrade(req, socket, head, ctx));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    records,
    close: () => new Promise((r) => (server.close(() => r()), 'closeAllConnections' in server && server.closeAllConnections())),
  };
}

/** One unary call of Echo with grpc-js: the error it ends with, or null. */
function call(port: number): Promise<grpc.ServiceError | null> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const d = echoDefinition.Echo;
  return new Promise((resolve) =>
    client.makeUnaryRequest(d.path, d.requestSerialize, d.responseDeserialize, { message: 'hi' }, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err) => {
      client.close();
      resolve(err);
    }),
  );
}

/** Until `what` holds (a record is written when a response or connection ends, a turn or more later), for at most 10 s. */
const until = async (what: () => boolean) => {
  for (let i = 0; i < 2000 && !what(); i++) await new Promise((r) => setTimeout(r, 5));
};

const refusing = (r: Refusal): Partial<ForwardOptions> => ({ admit: () => r });

test('a gRPC call the AuthorizationPolicy refuses reaches a grpc-js client as PERMISSION_DENIED, recorded as Envoy does: 200 and grpc status 7', async () => {
  const h = await forwarder(refusing({ status: 403, flag: '-', message: 'RBAC: access denied' }));
  const err = await call(h.port);
  assert.is(err?.code, grpc.status.PERMISSION_DENIED, `the client sees PERMISSION_DENIED, not a transport error: ${err?.message}`);
  assert.is(err?.details, 'RBAC: access denied');
  await until(() => h.records.length > 0);
  assert.is(h.records.length, 1);
  assert.is(h.records[0]!.status, 200);
  assert.is(h.records[0]!.grpcStatus, 7);
  assert.is(h.records[0]!.protocol, 'grpc');
  await h.close();
});

test('the refusal is trailers-only: one HEADERS frame with :status 200, content-type application/grpc and grpc-status, ending the stream', async () => {
  const h = await forwarder(refusing({ status: 401, flag: '-', message: 'Jwt is expired', headers: { 'www-authenticate': 'Bearer realm="x", error="invalid_token"' } }));
  const session = http2.connect(`http://127.0.0.1:${h.port}`);
  const s = session.request({ ':method': 'POST', ':path': '/ambit.echo.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
  s.end();
  let trailers = false;
  let bytes = 0;
  s.on('trailers', () => (trailers = true));
  s.on('data', (c: Buffer) => (bytes += c.length));
  const [headers, endedWithHeaders] = await new Promise<[http2.IncomingHttpHeaders, boolean]>((resolve) => s.once('response', (hd, flags) => resolve([hd, (flags & 0x1) === 0x1])));
  await new Promise((r) => s.once('close', r));
  session.close();
  assert.is(headers[':status'], 200);
  assert.is(headers['content-type'], 'application/grpc');
  assert.is(headers['grpc-status'], '16', 'a JWT refusal (401) is UNAUTHENTICATED');
  assert.is(headers['grpc-message'], 'Jwt is expired');
  assert.match(String(headers['www-authenticate']), /^Bearer/, 'the refusal keeps its own headers');
  assert.ok(endedWithHeaders, 'the HEADERS frame carries END_STREAM');
  assert.is(bytes, 0, 'no body');
  assert.not.ok(trailers, 'no separate trailers');
  await h.close();
});

test('a rate-limited gRPC call is UNAVAILABLE with the 429 headers, its flag RL kept for the metrics', async () => {
  const h = await forwarder({ limit: () => ({ headers: {}, refusal: { status: 429, flag: 'RL', message: 'local_rate_limited', headers: { 'retry-after': '60' } } }) });
  const err = await call(h.port);
  assert.is(err?.code, grpc.status.UNAVAILABLE);
  await until(() => h.records.length > 0);
  assert.is(h.records[0]!.flags, 'RL');
  assert.is(h.records[0]!.status, 200);
  assert.is(h.records[0]!.grpcStatus, 14);
  await h.close();
});

test("a fault's gRPC abort and a route's own 503 reach a gRPC client with their gRPC status", async () => {
  let plan: Plan = { respond: { status: 200, flag: 'FI', headers: { 'content-type': 'application/grpc', 'grpc-status': '8', 'grpc-message': 'fault filter abort' } } };
  const h = await forwarder({ plan: () => plan });
  const aborted = await call(h.port);
  assert.is(aborted?.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.is(aborted?.details, 'fault filter abort');
  plan = { respond: { status: 503, flag: 'FI' } };
  assert.is((await call(h.port))?.code, grpc.status.UNAVAILABLE);
  await until(() => h.records.length > 1);
  assert.equal(
    h.records.map((r) => [r.status, r.grpcStatus, r.flags]),
    [
      [200, 8, 'FI'],
      [200, 14, 'FI'],
    ],
  );
  await h.close();
});

test('a plain HTTP request refused by the same policy still gets 403 with a text body', async () => {
  const h = await forwarder(refusing({ status: 403, flag: '-', message: 'RBAC: access denied' }), false);
  const r = await fetch(`http://127.0.0.1:${h.port}/admin`);
  assert.is(r.status, 403);
  assert.is(await r.text(), 'RBAC: access denied\n');
  assert.is(r.headers.get('grpc-status'), null);
  await h.close();
});

test('grpc-message is percent-encoded as the gRPC spec says: UTF-8 bytes and % itself', () => {
  assert.is(grpcMessage('RBAC: access denied'), 'RBAC: access denied');
  assert.is(grpcMessage('café 100%'), 'caf%C3%A9 100%25');
  assert.is(grpcMessage('a\nb'), 'a%0Ab');
});

/** A forwarder whose only backend is a local ws-echo, reached over plain TCP as an out-of-mesh pod is. */
async function wsForwarder(o: Partial<ForwardOptions> = {}): Promise<Harness> {
  const backend = runWsEcho({ port: 0, version: 'w1' });
  await new Promise((r) => backend.once('listening', r));
  const port = (backend.address() as AddressInfo).port;
  const ep = { ip: '127.0.0.1', port, node: 'node-1', service };
  const tunnel = () =>
    new Promise<Socket>((resolve, reject) => {
      const s = new Socket();
      s.once('connect', () => resolve(s)).once('error', reject);
      s.connect(port, '127.0.0.1');
    });
  const h = await forwarder({ upstreams: { tunnel } as unknown as Upstreams, destinations: { choose: () => ({ endpoint: ep, pick: { key: 'a' } }) } as unknown as Destinations, ...o }, false);
  return { ...h, close: async () => (await h.close(), await new Promise<void>((r) => (backend.close(() => r()), backend.closeAllConnections()))) };
}

test('a WebSocket through the forwarder: messages come back, and the connection is recorded once, 101, when it closes', async () => {
  const h = await wsForwarder();
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/chat`);
  const got: string[] = [];
  await new Promise((r) => ws.once('open', r));
  for (const m of ['one', 'two', 'three']) {
    ws.send(m);
    got.push(String(await new Promise((r) => ws.once('message', r))));
  }
  assert.equal(
    got.map((g) => (JSON.parse(g) as { message: string }).message),
    ['one', 'two', 'three'],
  );
  assert.is((JSON.parse(got[0]!) as { path: string }).path, '/chat');
  assert.is(h.records.length, 0, 'nothing is recorded while the connection lives');
  ws.close(1000);
  await new Promise((r) => ws.once('close', r));
  await until(() => h.records.length > 0);
  assert.is(h.records.length, 1);
  const r = h.records[0]!;
  assert.is(r.status, 101);
  assert.is(r.path, '/chat');
  assert.ok(r.requestBytes > 0 && r.responseBytes > 0, `bytes of the frames both ways: ${r.requestBytes} ${r.responseBytes}`);
  assert.is(r.endpoint?.ip, '127.0.0.1');
  await h.close();
});

test('an upgrade the AuthorizationPolicy refuses is answered 403 and never reaches the backend', async () => {
  let chosen = false;
  const h = await forwarder({ admit: () => Promise.resolve({ status: 403, flag: '-', message: 'RBAC: access denied' }), destinations: { choose: () => ((chosen = true), undefined) } as unknown as Destinations }, false);
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/admin`);
  ws.on('error', () => undefined);
  const status = await new Promise<number>((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => resolve(101));
  });
  ws.terminate();
  assert.is(status, 403);
  assert.not.ok(chosen, 'no endpoint was even chosen');
  await until(() => h.records.length > 0);
  assert.is(h.records[0]!.status, 403);
  await h.close();
});

test('an upgrade reaches the backend with the headers admit() left (a verified token stripped, a claim header set), not the raw ones', async () => {
  const admit: ForwardOptions['admit'] = (req) => {
    delete req.headers.authorization;
    req.headers['x-jwt-sub'] = 'alice';
    return undefined;
  };
  const h = await wsForwarder({ admit });
  const ws = new WebSocket(`ws://127.0.0.1:${h.port}/chat`, { headers: { authorization: 'Bearer secret', 'x-jwt-sub': 'mallory' } });
  await new Promise((r) => ws.once('open', r));
  ws.send('hi');
  const reply = JSON.parse(String(await new Promise((r) => ws.once('message', r)))) as { headers: Record<string, string> };
  assert.is(reply.headers.authorization, undefined, 'the token never reaches the backend');
  assert.is(reply.headers['x-jwt-sub'], 'alice');
  ws.close(1000);
  await new Promise((r) => ws.once('close', r));
  await h.close();
});

test('grpc-echo behind the forwarder needs no proto file: a raw HTTP/2 gRPC frame of JSON gets its answer', async () => {
  // The sample's wire format, as the e2e test relies on it: a 5-byte gRPC prefix, then JSON.
  let server: grpc.Server | undefined;
  const port = await new Promise<number>((onListening) => (server = runGrpcEcho({ port: 0, version: 'v7', onListening })));
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const body = Buffer.from(JSON.stringify({ message: 'raw' }));
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, body.length]), body]);
  const s = session.request({ ':method': 'POST', ':path': '/ambit.echo.Echo/Echo', 'content-type': 'application/grpc', te: 'trailers' });
  s.end(frame);
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  const trailers = await new Promise<http2.IncomingHttpHeaders>((r) => s.once('trailers', r));
  session.close();
  server!.forceShutdown();
  assert.is(trailers['grpc-status'], '0');
  const answer = JSON.parse(Buffer.concat(chunks).subarray(5).toString()) as { message: string; version: string };
  assert.equal([answer.message, answer.version], ['raw', 'v7']);
});

test.run();
