// The iptables redirect in a namespace this test creates: installed once however often it is
// applied, it sends outbound TCP to 15001 with the original destination recoverable, passes the
// agent's marked sockets, and leaves nothing when removed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket, type Server } from 'node:net';
import { agentMark, captureState, installCapture, removeCapture } from '../../../agent/capture/iptables.js';
import { closeFd, listenerIn, openNetns, originalDestination, tcpSocketIn } from '../../../native/netns.js';

const ns = `ambit-t-capture-${process.pid}`;
const path = `/run/netns/${ns}`;
let nsFd = -1;
let server: Server | undefined;

test.before(() => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  execFileSync('ip', ['-n', ns, 'addr', 'add', '10.98.0.2/24', 'dev', 'lo']);
  nsFd = openNetns(path);
});

test.after(() => {
  server?.close();
  if (nsFd >= 0) closeFd(nsFd);
  execFileSync('ip', ['netns', 'del', ns]);
});

test('installing twice gives one copy of every rule and jump', async () => {
  await installCapture(path, { probeSource: '10.98.0.1' });
  const once1 = await captureState(path);
  await installCapture(path, { probeSource: '10.98.0.1' });
  const twice = await captureState(path);
  assert.equal(twice, once1);
  assert.is(twice.filter((l) => l === '-A OUTPUT -p tcp -j AMBIT_OUTPUT').length, 1);
  assert.is(twice.filter((l) => l === '-A PREROUTING -p tcp -j AMBIT_INBOUND').length, 1);
  assert.ok(twice.some((l) => l.includes('--to-ports 15001')));
  assert.ok(twice.some((l) => l.includes('-s 10.98.0.1/32 -j RETURN')));
});

test('outbound TCP reaches the agent on 15001 with its original destination; a marked socket passes', async () => {
  let seen: { ip: string; port: number } | undefined;
  server = createServer((s) => {
    seen = originalDestination((s as unknown as { _handle: { fd: number } })._handle.fd);
    s.end('agent');
  });
  server.listen({ fd: listenerIn(nsFd, '0.0.0.0', 15001) });
  await once(server, 'listening');
  const app = new Socket({ fd: tcpSocketIn(nsFd) });
  app.connect(80, '10.98.0.77');
  const [data] = (await once(app, 'data')) as [Buffer];
  assert.is(data.toString(), 'agent');
  assert.equal(seen, { ip: '10.98.0.77', port: 80 });
  const agentOwn = new Socket({ fd: tcpSocketIn(nsFd, { mark: agentMark }) });
  agentOwn.connect(80, '10.98.0.77');
  const [err] = (await once(agentOwn, 'error')) as [NodeJS.ErrnoException];
  assert.ok(err.code !== undefined, 'not redirected to the agent');
});

test('removal leaves no ambit rule, and removing again is fine', async () => {
  await removeCapture(path);
  assert.equal(await captureState(path), []);
  await removeCapture(path);
  assert.not.match(execFileSync('nsenter', [`--net=${path}`, '--', 'iptables-save'], { encoding: 'utf8' }), 'AMBIT');
});

test.run();
