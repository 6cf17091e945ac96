// A captured connection end to end inside a namespace this test creates: the app connects to a
// server's address, the redirect sends it to the agent's 15001 listener (made in that namespace),
// the agent forwards it to the original destination with its mark, bytes flow both ways, and the
// counters show one connection and its bytes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket, type Server } from 'node:net';
import { installCapture } from '../../../agent/capture/netfilter.js';
import { createForwarder } from '../../../agent/proxy/forward.js';
import { closeFd, listenerIn, openNetns, originalDestination, tcpSocketIn } from '../../../native/netns.js';
import { socketFd } from '../../../agent/capture/redirect.js';

const ns = `ambit-t-forward-${process.pid}`;
const path = `/run/netns/${ns}`;
let nsFd = -1;
const servers: Server[] = [];

test.before(() => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  execFileSync('ip', ['-n', ns, 'addr', 'add', '10.97.0.2/24', 'dev', 'lo']);
  nsFd = openNetns(path);
  installCapture(nsFd);
});

test.after(() => {
  for (const s of servers) s.close();
  if (nsFd >= 0) closeFd(nsFd);
  execFileSync('ip', ['netns', 'del', ns]);
});

test('a captured connection reaches its destination through the agent, and is counted', async () => {
  // The destination: an echo server on the pod's address, upper-casing what it gets.
  const app = createServer((s) => s.on('data', (d: Buffer) => s.write(d.toString().toUpperCase())).on('end', () => s.end()));
  servers.push(app);
  app.listen({ fd: listenerIn(nsFd, '10.97.0.2', 8080) });
  await once(app, 'listening');
  const forwarder = createForwarder(nsFd, (s) => originalDestination(socketFd(s)));
  const agent = createServer((c) => forwarder.handle(c));
  servers.push(agent);
  agent.listen({ fd: listenerIn(nsFd, '0.0.0.0', 15001) });
  await once(agent, 'listening');

  const client = new Socket({ fd: tcpSocketIn(nsFd) });
  client.connect(8080, '10.97.0.2');
  await once(client, 'connect');
  client.write('hello mesh');
  const [reply] = (await once(client, 'data')) as [Buffer];
  assert.is(reply.toString(), 'HELLO MESH');
  client.end();
  await once(client, 'close');
  for (let i = 0; i < 50 && forwarder.counters.closed === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(forwarder.counters, { opened: 1, closed: 1, failed: 0, sent: 10, received: 10 });
});

test.run();
