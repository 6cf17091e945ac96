// The netfilter redirect in a namespace this test creates: installed once however often it is
// applied, it sends outbound TCP to 15001 with the original destination recoverable, passes the
// agent's marked sockets, and leaves nothing when removed.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket, type Server } from 'node:net';
import { captureState, installCapture, removeCapture } from '../../../agent/capture/netfilter.js';
import { agentMark } from '../../../agent/capture/redirect.js';
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

/** The table's handle: the same handle is the same table, never deleted and made again. */
const tableHandle = () => /table ip ambit_capture \{ # handle (\d+)/.exec(execFileSync('nsenter', [`--net=${path}`, '--', 'nft', '-a', 'list', 'table', 'ip', 'ambit_capture'], { encoding: 'utf8' }))?.[1];

test('installing twice gives one copy of every rule, in the same chains', () => {
  installCapture(nsFd, { probeSource: '10.98.0.1' });
  const once1 = captureState(nsFd);
  const handle = tableHandle();
  installCapture(nsFd, { probeSource: '10.98.0.1' });
  // A nat chain deleted for a moment unregisters the nat hook: redirected connections would lose
  // their translation while a new agent installs beside the old one.
  assert.ok(handle);
  assert.is(tableHandle(), handle);
  const twice = captureState(nsFd);
  assert.equal(twice, once1);
  assert.is(twice.filter((l) => l.endsWith('redirect to :15001')).length, 1, twice.join('\n'));
  assert.is(twice.filter((l) => l.endsWith('redirect to :15006')).length, 1);
  assert.not.ok(twice.some((l) => l.includes('15008')), 'no port of the pod is exempt from inbound capture');
  assert.ok(twice.some((l) => l.startsWith('ip saddr 10.98.0.1 return')));
  const all = execFileSync('nsenter', [`--net=${path}`, '--', 'nft', 'list', 'ruleset'], { encoding: 'utf8' });
  assert.is(all.split('table ip ambit_capture').length - 1, 1, 'one table');
});

test('outbound TCP reaches the agent on 15001 with its original destination; a marked socket passes', async () => {
  let seen: { ip: string; port: number } | undefined;
  server = createServer((s) => {
    s.on('error', () => undefined);
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
  app.destroy();
  const agentOwn = new Socket({ fd: tcpSocketIn(nsFd, { mark: agentMark }) });
  agentOwn.connect(80, '10.98.0.77');
  // Redirected, it would reach the agent's listener; left alone, it finds nobody at 10.98.0.77.
  const outcome = await new Promise<string | undefined>((resolve) => {
    agentOwn.once('connect', () => resolve('redirected'));
    agentOwn.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
  });
  agentOwn.destroy();
  assert.is.not(outcome, 'redirected');
  assert.ok(outcome, 'the connection failed on its own');
});

test('removal leaves no ambit rule, and removing again is fine', () => {
  removeCapture(nsFd);
  assert.equal(captureState(nsFd), []);
  removeCapture(nsFd);
  assert.not.match(execFileSync('nsenter', [`--net=${path}`, '--', 'nft', 'list', 'ruleset'], { encoding: 'utf8' }), 'ambit');
});

test.run();
