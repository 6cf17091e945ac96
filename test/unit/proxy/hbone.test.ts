// HBONE end to end on loopback, with real TLS, HTTP/2 and sockets: the pool (client) and the node
// listener (server) carry bytes to an echo server, share sessions and TLS tickets, and let go of
// sessions that are idle or gone.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { api, dialTunnel, echoed, fixture, readAll, rejection } from './helpers.js';
import { HboneConnectRefused } from '../../../shared/hbone/protocol.js';

test('bytes flow both ways through a CONNECT tunnel, and a half-close still gets the whole answer', async () => {
  const f = await fixture();
  try {
    const stream = await f.pool.connect(f.request());
    const big = 'x'.repeat(1 << 20);
    stream.write('hello ');
    stream.end(big);
    assert.is(await readAll(stream), `hello ${big}`);
    assert.equal(f.server.counters.tunnels, 1);
    assert.is(f.pool.counters.tunnels, 1);
  } finally {
    await f.close();
  }
});

test("ambit's HTTP/2 and Node's interoperate in the pool and the server, either way round (a node mid-upgrade), tunnels and refusals alike", async () => {
  for (const [client, server] of [['node', 'ambit'], ['ambit', 'node']] as const) {
    const f = await fixture({ pool: { h2: client }, serverH2: server });
    try {
      const stream = await f.pool.connect(f.request());
      const big = 'y'.repeat(3 << 20);
      stream.end(big);
      assert.is(await readAll(stream), big, `${client} to ${server}`);
      const err = await rejection(f.pool.connect(f.request({ authority: 'shop.example:80' })));
      assert.instance(err, HboneConnectRefused, `${client} to ${server}`);
      assert.is((err as HboneConnectRefused).status, 400);
    } finally {
      await f.close();
    }
  }
});

test('50 tunnels to one node share one TLS handshake and one session', async () => {
  const f = await fixture();
  let handshakes = 0;
  f.server.server.on('secureConnection', () => handshakes++);
  try {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => echoed(f, `tunnel ${i}`)));
    assert.equal(answers, Array.from({ length: 50 }, (_, i) => `tunnel ${i}`));
    assert.is(handshakes, 1);
    assert.is(f.pool.counters.sessionsOpened, 1);
    assert.is(f.pool.counters.streamsOpened, 50);
  } finally {
    await f.close();
  }
});

test('a session at its peer\'s max concurrent streams makes the pool open a second session', async () => {
  const f = await fixture({ limits: { maxConcurrentStreams: 2 } });
  try {
    const streams = await Promise.all([1, 2, 3].map(() => f.pool.connect(f.request())));
    assert.is(f.pool.sessionCount(), 2);
    assert.is(f.server.counters.handshakes, 2);
    const answers = await Promise.all(streams.map((s, i) => (s.end(`held ${i}`), readAll(s))));
    assert.equal(answers, ['held 0', 'held 1', 'held 2']);
  } finally {
    await f.close();
  }
});

test('the pool caps sessions per node: past the cap, tunnels wait for a free stream', async () => {
  const f = await fixture({ limits: { maxConcurrentStreams: 1 }, pool: { maxSessionsPerKey: 1 } });
  try {
    const first = await f.pool.connect(f.request());
    const second = f.pool.connect(f.request());
    await new Promise((r) => setTimeout(r, 50));
    assert.is(f.pool.counters.tunnels, 1, 'the second tunnel waits');
    first.end('one');
    assert.is(await readAll(first), 'one');
    const s = await second;
    s.end('two');
    assert.is(await readAll(s), 'two');
    assert.is(f.server.counters.handshakes, 1);
  } finally {
    await f.close();
  }
});

test('a session that got GOAWAY, or whose connection died, is not reused', async () => {
  const f = await fixture();
  const sessions: http2.ServerHttp2Session[] = [];
  const sockets: TLSSocket[] = [];
  f.server.server.on('session', (s) => sessions.push(s));
  f.server.server.on('secureConnection', (s: TLSSocket) => sockets.push(s));
  try {
    assert.is(await echoed(f, 'one'), 'one');
    sessions[0]!.goaway(http2.constants.NGHTTP2_NO_ERROR);
    await new Promise((r) => setTimeout(r, 20));
    assert.is(await echoed(f, 'two'), 'two');
    assert.is(f.server.counters.handshakes, 2);
    sockets[1]!.destroy();
    await new Promise((r) => setTimeout(r, 20));
    assert.is(await echoed(f, 'three'), 'three');
    assert.is(f.server.counters.handshakes, 3);
  } finally {
    await f.close();
  }
});

test('a tunnel refused by a GOAWAY before the server processed it is retried once on a new session', async () => {
  let refused = false;
  const f = await fixture({
    onTunnel: (t) => {
      if (refused || f.server.counters.tunnels < 2) return dialTunnel(t);
      // As a draining server does: GOAWAY naming stream 1 as the last it will process.
      refused = true;
      t.stream.session?.goaway(http2.constants.NGHTTP2_NO_ERROR, 1);
    },
  });
  try {
    assert.is(await echoed(f, 'first'), 'first');
    assert.is(await echoed(f, 'second, on a second session'), 'second, on a second session');
    assert.ok(refused);
    assert.is(f.server.counters.handshakes, 2);
    assert.is(f.pool.counters.failed, 0);
  } finally {
    await f.close();
  }
});

test('idle sessions close after the idle timeout, on the client and on the server', async () => {
  const f = await fixture({ pool: { idleTimeoutMs: 100 } });
  const g = await fixture({ limits: { idleTimeoutMs: 100 } });
  try {
    assert.is(await echoed(f, 'a'), 'a');
    assert.is(await echoed(g, 'b'), 'b');
    assert.is(f.pool.sessionCount(), 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.is(f.pool.sessionCount(), 0);
    assert.is(f.server.counters.activeSessions, 0);
    assert.is(g.pool.sessionCount(), 0, 'the server sent GOAWAY and the pool dropped the session');
    assert.is(g.server.counters.activeSessions, 0);
  } finally {
    await f.close();
    await g.close();
  }
});

test('a new session after an idle close resumes TLS, and both sides still validate the peer through an intermediate', async () => {
  const f = await fixture({ pool: { idleTimeoutMs: 50 } });
  try {
    assert.is(await echoed(f, 'full', { expectedIdentity: api.uri }), 'full');
    await new Promise((r) => setTimeout(r, 150));
    assert.is(await echoed(f, 'resumed', { expectedIdentity: api.uri }), 'resumed');
    assert.is(f.pool.counters.handshakes, 2);
    assert.is(f.pool.counters.resumed, 1);
    assert.is(f.server.counters.resumed, 1);
  } finally {
    await f.close();
  }
});

test('the pool dials through the injected socket factory', async () => {
  let dials = 0;
  const f = await fixture({ pool: { createConnection: (host, port) => (dials++, tcpConnect(port, host)) } });
  try {
    assert.is(await echoed(f, 'via factory'), 'via factory');
    assert.is(dials, 1);
  } finally {
    await f.close();
  }
});

test.run();
