// Joining two sockets both ways (agent/proxy/splice.ts), on real loopback TCP: bytes and half-close
// pass through, a slow reader holds the writer back instead of filling memory, a reset on one side
// is reported once, and a side paused by its owner waits for its owner.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { splice } from '../../../shared/hbone/splice.js';
import { readAll, until } from './helpers.js';

/** A proxy on loopback that splices each accepted socket to `target`; `failures` counts onFailure calls. */
async function proxyTo(target: number, o: { pauseClient?: boolean } = {}) {
  const state = { failures: 0, upstreams: [] as Socket[], clients: [] as Socket[] };
  const server = createServer({ allowHalfOpen: true }, (client) => {
    const upstream = connect({ port: target, host: '127.0.0.1', allowHalfOpen: true });
    state.clients.push(client);
    state.upstreams.push(upstream);
    if (o.pauseClient) client.pause();
    splice(client, upstream, () => {
      state.failures++;
      client.resetAndDestroy();
      upstream.destroy();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port, state };
}

async function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer({ allowHalfOpen: true }, onSocket);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as { port: number }).port };
}

/**
 * What a half-open socket received until the peer's FIN, leaving it open for the answer (the
 * helpers' readAll iterates the stream, which destroys it at the end).
 */
function request(s: Socket): Promise<string> {
  let text = '';
  s.setEncoding('utf8').on('data', (d: string) => (text += d));
  return once(s, 'end').then(() => text);
}

test('bytes pass both ways, and a client that half-closes still gets the whole answer', async () => {
  // The server answers only after the client's end: it needs the FIN passed on.
  const backend = await listen((s) => {
    void request(s).then((req) => s.end(`got ${req}`));
  });
  const proxy = await proxyTo(backend.port);
  const c = connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
  c.end('hello');
  assert.is(await readAll(c), 'got hello');
  await once(c, 'close');
  assert.is(proxy.state.failures, 0);
  proxy.server.close();
  backend.server.close();
});

test('a reader that does not read holds the writer back: the proxy buffers a bounded amount, then all of it arrives', async () => {
  let serverSocket: Socket | undefined;
  const backend = await listen((s) => {
    serverSocket = s;
    s.pause();
  });
  const proxy = await proxyTo(backend.port);
  const c = connect({ port: proxy.port, host: '127.0.0.1' });
  const total = 64 * 1024 * 1024;
  const chunk = Buffer.alloc(1024 * 1024, 7);
  let written = 0;
  const writeMore = () => {
    while (written < total) {
      written += chunk.length;
      if (!c.write(chunk)) return;
    }
    c.end();
  };
  c.on('drain', writeMore);
  writeMore();
  // Held back: the proxy stopped reading its client (its upstream's buffer is full) and the writer
  // waits for 'drain'. Without backpressure the proxy would read on and this state never comes.
  await until(() => proxy.state.clients[0]?.isPaused() === true && c.writableNeedDrain, 10_000);
  const buffered = proxy.state.upstreams[0]!.writableLength + proxy.state.clients[0]!.readableLength;
  assert.ok(buffered < 4 * 1024 * 1024, `the proxy holds ${buffered} bytes for a stalled reader`);
  assert.ok(written < total, 'the writer was held back');
  let received = 0;
  serverSocket!.on('data', (d: Buffer) => (received += d.length));
  serverSocket!.resume();
  await once(serverSocket!, 'end');
  assert.is(received, total);
  serverSocket!.end();
  proxy.server.close();
  backend.server.close();
});

test('a reset on the server side is reported once and resets the client', async () => {
  const backend = await listen((s) => s.once('data', () => s.resetAndDestroy()));
  const proxy = await proxyTo(backend.port);
  const c = connect({ port: proxy.port, host: '127.0.0.1' });
  c.write('x');
  const [err] = (await once(c, 'error')) as [NodeJS.ErrnoException];
  assert.is(err.code, 'ECONNRESET');
  // Once both of the proxy's sockets have closed, every event that could report again has come.
  await until(() => proxy.state.clients[0]!.closed && proxy.state.upstreams[0]!.closed);
  await new Promise((r) => setImmediate(r));
  assert.is(proxy.state.failures, 1);
  proxy.server.close();
  backend.server.close();
});

test('a side paused by its owner stays paused until the owner resumes it', async () => {
  const seen: Buffer[] = [];
  const backend = await listen((s) => s.on('data', (d: Buffer) => seen.push(d)).on('end', () => s.end()));
  const proxy = await proxyTo(backend.port, { pauseClient: true });
  const c = connect({ port: proxy.port, host: '127.0.0.1' });
  c.write('early');
  // The bytes have reached the proxy and wait, unread, in its paused client socket.
  await until(() => (proxy.state.clients[0]?.readableLength ?? 0) === 5 && proxy.state.upstreams[0]?.connecting === false);
  assert.equal(seen, [], 'nothing passed while paused');
  proxy.state.clients[0]!.resume();
  await until(() => seen.length > 0);
  assert.is(Buffer.concat(seen).toString(), 'early');
  c.destroy();
  proxy.server.close();
  backend.server.close();
});

test.run();
