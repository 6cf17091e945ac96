// What a captured pod's namespace does to traffic, against the real kernel, in a pod and a peer this
// test makes (two network namespaces joined by a veth): the agent's own connection out of the pod
// reaches a server outside the mesh; a connection the agent opens to the app from the client's
// address (transparency) gets its answers; IPv6 leaves the pod nowhere; and a connection open
// before the netfilter redirect was installed goes on untouched.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket, type Server } from 'node:net';
import { installCapture, removeCapture } from '../../../agent/capture/netfilter.js';
import { agentMark } from '../../../agent/capture/redirect.js';
import { installTransparency, removeTransparency } from '../../../agent/capture/transparent.js';
import { closeFd, listenerIn, openNetns, tcpSocketIn } from '../../../native/netns.js';

const id = `ambit-t-podrules-${process.pid}`;
const pod = `${id}-pod`;
const peer = `${id}-peer`;
const podPath = `/run/netns/${pod}`;
const podIp = '10.93.0.2';
const peerIp = '10.93.0.3';
const podIp6 = 'fd00:93::2';
const peerIp6 = 'fd00:93::3';
const servers: Server[] = [];
let podFd = -1;
let peerFd = -1;

const ip = (...args: string[]) => execFileSync('ip', args);

test.before(() => {
  ip('netns', 'add', pod);
  ip('netns', 'add', peer);
  ip('-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer);
  for (const [ns, v4, v6] of [
    [pod, podIp, podIp6],
    [peer, peerIp, peerIp6],
  ] as const) {
    ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', 'eth0');
    ip('-n', ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', 'eth0', 'nodad');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  podFd = openNetns(podPath);
  peerFd = openNetns(`/run/netns/${peer}`);
});

test.after(() => {
  for (const s of servers) s.close();
  if (podFd >= 0) closeFd(podFd);
  if (peerFd >= 0) closeFd(peerFd);
  ip('netns', 'del', pod);
  ip('netns', 'del', peer);
});

/** A server in `nsFd` that answers every chunk with `name:chunk`. */
async function server(nsFd: number, port: number, name: string, host = '0.0.0.0'): Promise<Server> {
  const s = createServer((c) => {
    c.on('error', () => undefined);
    c.on('data', (d: Buffer) => c.write(`${name}:${d}`));
  });
  servers.push(s);
  if (host === '::') {
    // Node creates an IPv6 socket synchronously only for `listen(port)` with no host (shared/MACHINE.md).
    const { inNetns } = await import('../../../native/netns.js');
    inNetns(nsFd, () => s.listen(port));
  } else s.listen({ fd: listenerIn(nsFd, host, port, { reusePort: true }) });
  await once(s, 'listening');
  return s;
}

/** Connects a socket made in `nsFd` (options applied before connect), within a bounded time. */
function connect(nsFd: number, host: string, port: number, o: Parameters<typeof tcpSocketIn>[1] = {}): Promise<Socket | string> {
  return new Promise((resolve) => {
    const s = new Socket({ fd: tcpSocketIn(nsFd, o) });
    const timer = setTimeout(() => {
      s.destroy();
      resolve('timeout');
    }, 1500);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? 'error');
    });
    s.connect(port, host);
  });
}

/** Sends `text` and returns the answer, the socket's error code, or `timeout` after 1.5 s. */
async function roundTrip(s: Socket, text: string): Promise<string> {
  s.write(text);
  const timeout = AbortSignal.timeout(1500);
  try {
    const [d] = (await once(s, 'data', { signal: timeout })) as [Buffer];
    return d.toString();
  } catch (err) {
    return timeout.aborted ? 'timeout' : ((err as NodeJS.ErrnoException).code ?? 'error');
  }
}

test('the agent reaches a server outside the mesh from inside a captured pod', async () => {
  await server(peerFd, 8080, 'peer');
  await installTransparency(podFd, podPath);
  try {
    const s = await connect(podFd, peerIp, 8080, { mark: agentMark });
    assert.ok(s instanceof Socket, `the agent's marked connection out of the pod failed: ${String(s)}`);
    assert.is(await roundTrip(s, 'hi'), 'peer:hi');
    s.destroy();
  } finally {
    await removeTransparency(podFd, podPath);
  }
});

test("the agent's connection to the app from the client's address gets its answers", async () => {
  await server(podFd, 9090, 'app');
  await installTransparency(podFd, podPath);
  try {
    const s = await connect(podFd, podIp, 9090, { mark: agentMark, transparent: true, bind: { ip: peerIp, port: 0 } });
    assert.ok(s instanceof Socket, `transparent connection failed: ${String(s)}`);
    assert.is(s.localAddress, peerIp, 'the app sees the client address');
    assert.is(await roundTrip(s, 'x'), 'app:x');
    s.destroy();
  } finally {
    await removeTransparency(podFd, podPath);
  }
});

/** Runs node inside a namespace and returns what it printed. */
function nodeIn(netns: string, js: string): Promise<string> {
  return new Promise((resolve) => {
    execFile('nsenter', [`--net=/run/netns/${netns}`, '--', process.execPath, '-e', js], { timeout: 5000 }, (_err, out) => resolve(out.trim()));
  });
}

/** From inside `netns`, connects over IPv6 with a 1 s bound: the answer, an error code, or `timeout`. */
const v6 = (netns: string, host: string, port: number) =>
  nodeIn(netns, `const s=require('net').connect({host:'${host}',port:${port},timeout:1000},()=>s.write('v6'));s.on('data',d=>{console.log(String(d));process.exit(0)});s.on('timeout',()=>{console.log('timeout');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`);

test('IPv6 reaches a captured pod and leaves it nowhere but loopback', async () => {
  await server(peerFd, 8086, 'peer6', '::');
  // An app of the pod on `::`, as most apps listen, in a process of its own inside the pod.
  const app = spawn('nsenter', [`--net=${podPath}`, '--', process.execPath, '-e', "require('net').createServer(c=>c.on('data',d=>c.write('app6:'+d))).listen(9096,'::',()=>console.log('up'));setTimeout(()=>process.exit(0),15000)"], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await once(app.stdout, 'data');
    assert.is(await v6(peer, podIp6, 9096), 'app6:v6', 'IPv6 reaches the pod before capture (the test is sound)');
    assert.is(await v6(pod, peerIp6, 8086), 'peer6:v6', 'and leaves it');
    await installTransparency(podFd, podPath);
    try {
      assert.is(await v6(peer, podIp6, 9096), 'timeout', 'no uncaptured IPv6 path into the pod');
      assert.is(await v6(pod, peerIp6, 8086), 'timeout', 'no uncaptured IPv6 path out of the pod');
      assert.is(await v6(pod, '::1', 9096), 'app6:v6', 'IPv6 loopback inside the pod still works');
    } finally {
      await removeTransparency(podFd, podPath);
    }
  } finally {
    app.kill();
  }
});

test('a connection open before the netfilter redirect is installed goes on untouched', async () => {
  await server(peerFd, 8081, 'peer');
  // The agent's listener would take anything redirected to it, and answer differently.
  await server(podFd, 15001, 'agent');
  const app = await connect(podFd, peerIp, 8081);
  assert.ok(app instanceof Socket);
  assert.is(await roundTrip(app, 'before'), 'peer:before');
  installCapture(podFd);
  try {
    for (let i = 0; i < 5; i++) assert.is(await roundTrip(app, `after${i}`), `peer:after${i}`);
    // A new connection is captured.
    const fresh = await connect(podFd, peerIp, 8081);
    assert.ok(fresh instanceof Socket);
    assert.is(await roundTrip(fresh, 'new'), 'agent:new');
    fresh.destroy();
  } finally {
    app.destroy();
    removeCapture(podFd);
  }
});

test.run();
