// Pooled HBONE sessions that outlive their peer: a node that stops answering (a half-open TCP
// connection, emulated by a relay that stops forwarding) is found by keepalive PINGs and its session
// leaves the pool; a node that left the cluster has its sessions closed on request. In both cases the
// next tunnel opens a new session.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import { echoed, fixture, until } from './helpers.js';

/** A TCP relay on `host` to `port` on 127.0.0.1; `stall()` stops it forwarding, both ways, on the connections it holds. */
async function relay(port: number, host = '127.0.0.1') {
  const pairs: [Socket, Socket][] = [];
  const server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    inbound.on('error', () => undefined);
    outbound.on('error', () => undefined);
    inbound.pipe(outbound).pipe(inbound);
    pairs.push([inbound, outbound]);
  });
  server.listen(0, host);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    stall() {
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      server.close();
    },
  };
}

test('a session whose peer stops answering PINGs leaves the pool, its tunnel is reset, and the next tunnel gets a new session', async () => {
  // A PING answered late on a busy machine must not count as a dead peer: the timeout is generous.
  const f = await fixture({ pool: { keepaliveIntervalMs: 50, keepaliveTimeoutMs: 1000 } });
  const r = await relay(f.port);
  try {
    const via = { nodePort: r.port };
    assert.is(await echoed(f, 'before', via), 'before');
    const held = await f.pool.connect(f.request(via));
    held.on('error', () => undefined);
    // A peer that answers keeps its session.
    await until(() => f.pool.counters.keepalivePings >= 3);
    assert.is(f.pool.sessionCount(), 1);
    r.stall();
    await until(() => f.pool.sessionCount() === 0, 5000);
    assert.is(f.pool.counters.keepaliveTimeouts, 1);
    if (!held.closed) await once(held, 'close');
    assert.is(await echoed(f, 'after', via), 'after');
    assert.is(f.pool.counters.sessionsOpened, 2);
  } finally {
    r.close();
    await f.close();
  }
});

test('retainNodes closes the sessions to nodes that left, and keeps the others', async () => {
  const f = await fixture();
  // The same server, reached at a second loopback address: another node, as far as the pool knows.
  const r = await relay(f.port, '127.0.0.2');
  try {
    const gone = { nodeAddress: '127.0.0.2', nodePort: r.port };
    assert.is(await echoed(f, 'to the first node'), 'to the first node');
    assert.is(await echoed(f, 'to the second node', gone), 'to the second node');
    assert.is(f.pool.sessionCount(), 2);
    f.pool.retainNodes(['127.0.0.1']);
    assert.is(f.pool.sessionCount(), 1);
    await until(() => f.server.counters.activeSessions === 1);
    assert.is(await echoed(f, 'still pooled'), 'still pooled');
    assert.is(f.server.counters.handshakes, 2, 'the kept session was reused');
  } finally {
    r.close();
    await f.close();
  }
});

test.run();
