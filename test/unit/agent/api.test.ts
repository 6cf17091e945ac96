// The agent's query API over a real WebSocket: a message that is JSON but not an object (null, a
// number, a list) is answered BadRequest, and the server goes on answering.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { AgentState } from '../../../agent/state/state.js';
import { EventLog } from '../../../agent/api/events.js';
import { createAdminServer } from '../../../agent/api/server.js';

test('null, a number and a list are answered BadRequest, and the next request is served', async () => {
  const server = createAdminServer({ state: new AgentState('n1'), events: new EventLog(), token: 't', log: pino({ level: 'silent' }), controller: () => ({ connected: false }) });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const ws = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  try {
    await once(ws, 'open');
    const answers: { error?: { code: string }; result?: unknown }[] = [];
    ws.on('message', (d) => answers.push(JSON.parse(d.toString())));
    for (const text of ['null', '1', '[]', '{"id":2,"method":"version"}']) ws.send(text);
    for (const end = Date.now() + 5000; answers.length < 4 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
    assert.equal(answers.slice(0, 3).map((a) => a.error?.code), ['BadRequest', 'BadRequest', 'BadRequest']);
    assert.equal((answers[3]!.result as { node: string }).node, 'n1');
  } finally {
    ws.terminate();
    server.close();
    server.closeAllConnections();
  }
});

test('GET /config_dump answers the dump, connections summed over the workers included', async () => {
  const state = new AgentState('n1');
  const server = createAdminServer({ state, events: new EventLog(), token: 't', log: pino({ level: 'silent' }), controller: () => ({ connected: true }), connections: async () => [{ pod: 'shop/web-1', direction: 'inbound', open: 2 }] });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/config_dump`);
    assert.is(res.status, 200);
    const dump = (await res.json()) as { node: string; trustBundles: unknown[]; connections: unknown[] };
    assert.is(dump.node, 'n1');
    assert.equal(dump.trustBundles, []);
    assert.equal(dump.connections, [{ pod: 'shop/web-1', direction: 'inbound', open: 2 }]);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});

test.run();
