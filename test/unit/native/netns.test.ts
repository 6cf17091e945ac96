// The native layer against the real kernel: sockets made inside a network namespace this test
// creates (and removes), the recovered original destination of a REDIRECTed connection, the mark
// that exempts a socket from redirection, and errors that name the call and errno.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket, type Server } from 'node:net';
import { closeFd, listenerIn, NativeCallFailed, openNetns, originalDestination, tcpSocketIn } from '../../../native/netns.js';

const ns = `ambit-t-native-${process.pid}`;
let nsFd = -1;
const servers: Server[] = [];
const run = (...args: string[]) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, '--', ...args], { encoding: 'utf8' });

test.before(() => {
  execFileSync('ip', ['netns', 'add', ns]);
  execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  // An address block reached through lo, so connections to it have a route to be redirected from.
  execFileSync('ip', ['-n', ns, 'addr', 'add', '10.99.0.2/24', 'dev', 'lo']);
  nsFd = openNetns(`/run/netns/${ns}`);
});

test.after(() => {
  for (const s of servers) s.close();
  if (nsFd >= 0) closeFd(nsFd);
  execFileSync('ip', ['netns', 'del', ns]);
});

async function echoServer(port: number, onConnection?: (s: Socket) => void): Promise<Server> {
  const server = createServer((s) => {
    onConnection?.(s);
    s.pipe(s);
  });
  servers.push(server);
  server.listen({ fd: listenerIn(nsFd, '0.0.0.0', port, { reusePort: true }) });
  await once(server, 'listening');
  return server;
}

async function connectIn(port: number, ip: string, mark?: number): Promise<Socket> {
  const s = new Socket({ fd: tcpSocketIn(nsFd, mark === undefined ? {} : { mark }) });
  s.connect(port, ip);
  await once(s, 'connect');
  return s;
}

test('a listener made in the namespace is there, not here, and a client made there reaches it', async () => {
  await echoServer(17001);
  assert.match(run('ss', '-ltnH'), ':17001');
  assert.not.match(execFileSync('ss', ['-ltnH'], { encoding: 'utf8' }), ':17001');
  const c = await connectIn(17001, '127.0.0.1');
  c.write('ping');
  const [data] = (await once(c, 'data')) as [Buffer];
  assert.is(data.toString(), 'ping');
  c.destroy();
});

test('SO_ORIGINAL_DST gives the destination a REDIRECT rewrote, and a marked socket is not redirected', async () => {
  let seen: { ip: string; port: number } | undefined;
  await echoServer(17002, (s) => {
    seen = originalDestination((s as unknown as { _handle: { fd: number } })._handle.fd);
  });
  run('iptables', '-t', 'nat', '-A', 'OUTPUT', '-m', 'mark', '--mark', '0x539/0xfff', '-j', 'RETURN');
  run('iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.99.0.1', '-j', 'REDIRECT', '--to-ports', '17002');
  const c = await connectIn(8080, '10.99.0.1');
  c.write('x');
  await once(c, 'data');
  assert.equal(seen, { ip: '10.99.0.1', port: 8080 });
  c.destroy();
  // With the agent's mark the same connection is left alone (and finds nobody at 10.99.0.1).
  const marked = new Socket({ fd: tcpSocketIn(nsFd, { mark: 0x539 }) });
  marked.connect(8080, '10.99.0.1');
  // Redirected, it would connect to the echo server; left alone, it finds nobody.
  const outcome = await new Promise<string | undefined>((resolve) => {
    marked.once('connect', () => resolve('redirected'));
    marked.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
  });
  marked.destroy();
  assert.ok(['ECONNREFUSED', 'EHOSTUNREACH', 'ETIMEDOUT'].includes(outcome ?? ''), outcome);
});

test('two listeners share a port with SO_REUSEPORT', async () => {
  await echoServer(17003);
  await echoServer(17003);
  assert.is(run('ss', '-ltnH').split('\n').filter((l) => l.includes(':17003')).length, 2);
});

test('a failing call names itself and the errno', () => {
  try {
    tcpSocketIn(nsFd, { bind: { ip: '10.123.0.9', port: 1 } });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, NativeCallFailed);
    assert.match((err as Error).message, 'bind(10.123.0.9:1) failed: Cannot assign requested address (errno 99)');
  }
  assert.throws(() => openNetns('/run/netns/does-not-exist'), /open\(\/run\/netns\/does-not-exist\) failed: No such file or directory/);
});


test('a thread that cannot return to its own namespace ends the process instead of going on inside the pod', () => {
  // A child process enters the test's namespace and, while inside, closes the descriptor of its
  // own namespace, so the way back fails. Caught or not, it must not live on.
  const script = `
    import { readdirSync, readlinkSync } from 'node:fs';
    import { closeFd, inNetns, openNetns } from ${JSON.stringify(new URL('../../../native/netns.js', import.meta.url).href)};
    const own = readlinkSync('/proc/self/ns/net');
    const nsFd = openNetns('/run/netns/${ns}');
    try {
      inNetns(nsFd, () => {
        for (const fd of readdirSync('/proc/self/fd')) {
          try { if (Number(fd) !== nsFd && readlinkSync('/proc/self/fd/' + fd) === own) closeFd(Number(fd)); } catch {}
        }
      });
    } catch (err) {
      console.log('caught: ' + err.message);
    }
    console.log('still running in ' + readlinkSync('/proc/thread-self/ns/net'));
  `;
  let result: { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
  try {
    const stdout = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
    result = { status: 0, signal: null, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string };
    result = { status: e.status, signal: e.signal, stdout: e.stdout, stderr: e.stderr };
  }
  assert.not.match(result.stdout, 'still running', 'the process went on after failing to come back');
  assert.is(result.signal, 'SIGABRT');
  assert.match(result.stderr, "fatal: cannot return to the agent's own network namespace");
});

test.run();
