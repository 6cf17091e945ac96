// The connection table with real sockets: a connection ends when both of its sides have closed,
// even when one side closed before it was registered, so nothing stays in the table and every
// connection gets its closing access line.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { ConnectionTable, socketBytes, type ConnectionInfo, type TrackedConnection } from '../../../agent/proxy/connections.js';
import { until } from './helpers.js';

const info: ConnectionInfo = { reporter: 'destination', source: { ip: '127.0.0.1' }, destination: { ip: '127.0.0.1', port: 1 }, security: 'unknown' };

/** Both ends of a loopback TCP connection. */
async function pair(server: Server): Promise<[Socket, Socket]> {
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const c = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await once(c, 'connect');
  const [s] = await accepted;
  c.on('error', () => undefined);
  s.on('error', () => undefined);
  return [c, s];
}

test('a connection tracked after its client side already closed is closed at once, and reported closed', async () => {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const closed: { c: TrackedConnection; error?: string }[] = [];
  const table = new ConnectionTable({ opened: () => undefined, closed: (c, _ms, error) => closed.push({ c, ...(error ? { error } : {}) }) });
  try {
    const [client, clientPeer] = await pair(server);
    const [upstream, upstreamPeer] = await pair(server);
    client.destroy();
    await once(client, 'close');
    const c = table.track(info, client, upstream, socketBytes(upstream));
    await until(() => closed.length === 1, 2000);
    assert.is(closed[0]!.c, c);
    assert.ok(closed[0]!.error, 'the line says why it ended');
    assert.is(table.size, 0);
    assert.ok(upstream.destroyed, 'the upstream side is let go');
    clientPeer.destroy();
    upstreamPeer.destroy();
  } finally {
    server.close();
  }
});

test('a connection whose sides close after it was tracked is reported closed once', async () => {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  let closed = 0;
  const table = new ConnectionTable({ opened: () => undefined, closed: () => closed++ });
  try {
    const [client, clientPeer] = await pair(server);
    const [upstream, upstreamPeer] = await pair(server);
    table.track(info, client, upstream, socketBytes(upstream));
    assert.is(table.size, 1);
    client.destroy();
    upstream.destroy();
    await until(() => closed === 1);
    assert.is(table.size, 0);
    clientPeer.destroy();
    upstreamPeer.destroy();
  } finally {
    server.close();
  }
});

test.run();
