// The eBPF redirect against the real kernel, in a pod this test makes (a network namespace joined by
// a veth to a peer namespace, and a cgroup v2 group): the pod's outbound connection reaches the
// agent's 15001 with its original destination, an inbound one from the peer reaches the agent's
// 15006 (on any port: HBONE ends on the node, so the pod's 15008 is captured too), a second agent run adopts the pinned programs without
// attaching twice, and removal leaves no program attached and nothing pinned.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, Socket, type Server } from 'node:net';
import { cgroup2Mount } from '../../../shared/host/cgroup.js';
import { EbpfRedirect } from '../../../agent/capture/ebpf.js';
import type { InstalledRedirect } from '../../../agent/capture/redirect.js';
import { pipeline } from 'node:stream';
import { agentMark, type Destination } from '../../../agent/capture/redirect.js';
import { removeCapturePins } from '../../../native/bpf.js';
import { closeFd, listenerIn, openNetns, tcpSocketIn } from '../../../native/netns.js';

const id = `ambit-t-ebpf-${process.pid}`;
const pod = `${id}-pod`;
const peer = `${id}-peer`;
const podIp = '10.94.0.2';
const peerIp = '10.94.0.3';
const cgroup = join(cgroup2Mount(), id);
const pinRoot = `/sys/fs/bpf/${id}`;
const servers: Server[] = [];
let podFd = -1;
let peerFd = -1;
const redirects: EbpfRedirect[] = [];
let installed: InstalledRedirect | undefined;
const listeners = { outbound: -1, inbound: -1 };

const ip = (...args: string[]) => execFileSync('ip', args);

/** A minimal agent: forwards an accepted connection to its original destination from inside the pod. */
function forwarder(destinationOf: (s: Socket) => Destination | undefined) {
  const counters = { opened: 0 };
  return {
    counters,
    handle(client: Socket) {
      const dst = destinationOf(client);
      if (!dst) return void client.destroy();
      counters.opened++;
      const upstream = new Socket({ fd: tcpSocketIn(podFd, { mark: agentMark }), allowHalfOpen: true });
      upstream.connect(dst.port, dst.ip);
      pipeline(client, upstream, () => undefined);
      pipeline(upstream, client, () => undefined);
    },
  };
}
const bpftool = (...args: string[]) => execFileSync('bpftool', args, { encoding: 'utf8' });

async function listen(nsFd: number, addr: string, port: number, onConnection: (s: Socket) => void): Promise<{ server: Server; fd: number }> {
  const server = createServer({ allowHalfOpen: true }, onConnection);
  servers.push(server);
  const fd = listenerIn(nsFd, addr, port, { reusePort: true });
  server.listen({ fd });
  await once(server, 'listening');
  return { server, fd };
}

/** A process of the pod (in its cgroup and netns) that connects, sends, and prints the answer. */
async function podClient(host: string, port: number, send: string): Promise<string> {
  const js = `const s=require('net').connect(${port},'${host}',()=>s.end('${send}'));let a='';s.on('data',d=>a+=d);s.on('close',()=>process.stdout.write(a));s.on('error',e=>{process.stdout.write('ERR '+e.code);});`;
  const script = 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" -- "$2" -e "$3"';
  const child = spawn('/bin/sh', ['-c', script, cgroup, `/run/netns/${pod}`, process.execPath, js], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await once(child, 'close');
  return out;
}

/** A connection from the peer namespace (the test process, its socket made there). */
async function fromPeer(host: string, port: number, send: string): Promise<string> {
  const s = new Socket({ fd: tcpSocketIn(peerFd), allowHalfOpen: true });
  s.connect(port, host);
  await once(s, 'connect');
  s.end(send);
  let out = '';
  s.on('data', (d: Buffer) => (out += d.toString()));
  await once(s, 'close');
  return out;
}

const attached = () => bpftool('cgroup', 'show', cgroup);
/** The pod interface's ingress filters, as tc lists them. */
const tcFilters = () => execFileSync('nsenter', [`--net=/run/netns/${pod}`, '--', 'tc', 'filter', 'show', 'dev', 'eth0', 'ingress'], { encoding: 'utf8' }).trim();
/** Links whose program is one of ours (any process's, pinned or not), as `type:attach_type`. */
function ambitLinks(): string[] {
  const progs = new Map((JSON.parse(bpftool('-j', 'prog', 'show')) as { id: number; name?: string }[]).map((p) => [p.id, p.name ?? '']));
  return (JSON.parse(bpftool('-j', 'link', 'show')) as { prog_id: number; type: string; attach_type?: string }[])
    .filter((l) => progs.get(l.prog_id)?.startsWith('ambit_'))
    .map((l) => `${l.type}:${l.attach_type ?? ''}`);
}

test.before(() => {
  ip('netns', 'add', pod);
  ip('netns', 'add', peer);
  // Each namespace's end is its eth0, as a CNI plugin names a pod's interface.
  ip('-n', pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', peer);
  ip('-n', pod, 'addr', 'add', `${podIp}/24`, 'dev', 'eth0');
  ip('-n', peer, 'addr', 'add', `${peerIp}/24`, 'dev', 'eth0');
  for (const ns of [pod, peer]) {
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('-n', ns, 'link', 'set', 'eth0', 'up');
  }
  mkdirSync(cgroup);
  podFd = openNetns(`/run/netns/${pod}`);
  peerFd = openNetns(`/run/netns/${peer}`);
});

test.after(() => {
  for (const s of servers) s.close();
  for (const r of redirects) r.close();
  removeCapturePins(pinRoot);
  if (podFd >= 0) closeFd(podFd);
  if (peerFd >= 0) closeFd(peerFd);
  ip('netns', 'del', pod);
  ip('netns', 'del', peer);
  if (existsSync(cgroup)) rmdirSync(cgroup);
});

test('outbound and inbound connections of the pod pass through the agent, with their original destinations', async () => {
  // The peer's server, and the pod's app on 9090 (upper-cases what it gets).
  await listen(peerFd, peerIp, 8080, (s) => s.on('data', (d: Buffer) => s.end(`peer got ${d}`)));
  await listen(podFd, podIp, 9090, (s) => s.on('data', (d: Buffer) => s.end(String(d).toUpperCase())));
  await listen(podFd, podIp, 15008, (s) => s.on('data', (d: Buffer) => s.end(`app on 15008 got ${d}`)));

  const redirect = new EbpfRedirect({ node: 'test', pinRoot });
  redirects.push(redirect);
  const seen: string[] = [];
  const outbound = forwarder((s) => {
    const d = installed?.outboundDestination(s);
    seen.push(`out ${d?.ip}:${d?.port}`);
    return d;
  });
  const inbound = forwarder((s) => {
    const d = installed?.inboundDestination(s);
    seen.push(`in ${d?.ip}:${d?.port}`);
    return d;
  });
  const out = await listen(podFd, '0.0.0.0', 15001, (s) => outbound.handle(s));
  const inb = await listen(podFd, '0.0.0.0', 15006, (s) => inbound.handle(s));
  Object.assign(listeners, { outbound: out.fd, inbound: inb.fd });
  installed = redirect.install({ workload: 'shop/web', ip: podIp, nsFd: podFd, cgroup, listeners });
  assert.equal(ambitLinks().sort(), ['cgroup:cgroup_inet4_connect', 'cgroup:cgroup_sock_ops']);
  assert.match(tcFilters(), /ambit_inbound/);
  assert.is(installed.how, 'installed');

  assert.is(await podClient(peerIp, 8080, 'hello'), 'peer got hello');
  assert.is(await fromPeer(podIp, 9090, 'inbound'), 'INBOUND', JSON.stringify({ seen, stats: redirect.stats(), c: inbound.counters }));
  assert.is(await fromPeer(podIp, 15008, 'x'), 'app on 15008 got x', 'an app on 15008 is reached through the agent');
  assert.equal(seen, [`out ${peerIp}:8080`, `in ${podIp}:9090`, `in ${podIp}:15008`]);
  // A loopback connection of the pod stays inside it.
  assert.is(await podClient('127.0.0.1', 15009, 'x'), 'ERR ECONNREFUSED');
  const stats = redirect.stats();
  assert.is(stats.outboundRedirected, 1);
  assert.is(stats.outboundKeyed, 1);
  assert.is(stats.inboundAssigned, 2);
  assert.is(outbound.counters.opened, 1);
  assert.is(inbound.counters.opened, 2);
});

test('a second agent run adopts the pinned programs: each is attached once', () => {
  const again = new EbpfRedirect({ node: 'test', pinRoot });
  redirects.push(again);
  const r = again.install({ workload: 'shop/web', ip: podIp, nsFd: podFd, cgroup, listeners });
  assert.is(r.how, 'adopted');
  const shown = attached();
  assert.is(shown.split('\n').filter((l) => /connect4/.test(l)).length, 1, shown);
  assert.is(shown.split('\n').filter((l) => /sock_ops/.test(l)).length, 1, shown);
  assert.equal(ambitLinks().sort(), ['cgroup:cgroup_inet4_connect', 'cgroup:cgroup_sock_ops']);
  assert.is(tcFilters().split('\n').filter((l) => /ambit_inbound/.test(l)).length, 1);
});

test('removal detaches every program and unpins the pod; the pod then connects directly', async () => {
  installed!.remove();
  assert.not.match(attached(), /connect4|sock_ops/);
  assert.equal(ambitLinks(), []);
  assert.is(tcFilters(), '');
  assert.equal(readdirSync(join(pinRoot, 'pods')), []);
  assert.is(await podClient(peerIp, 8080, 'direct'), 'peer got direct');
  assert.is(await fromPeer(podIp, 9090, 'direct'), 'DIRECT');
});

test('a pod without a cgroup is refused with a reason, and nothing is attached', () => {
  const redirect = redirects[0]!;
  assert.throws(() => redirect.install({ workload: 'shop/x', ip: podIp, nsFd: podFd, listeners }), /no known cgroup/);
  assert.equal(ambitLinks(), []);
  assert.is(tcFilters(), '');
});

test.run();
