// ambit's CNI plugin chained after the standard plugins, as a runtime runs them: the real loopback,
// bridge and host-local plugins (Debian's containernetworking-plugins) wire a pod namespace this test
// makes, from a conflist on disk into which the agent's installer put ambit's entry; then ambit-cni
// asks the agent's real socket server, whose capture manager installs the real netfilter redirect.
// Needs root; everything it makes (namespaces, bridge, files, rules) goes at the end.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { captureState } from '../../../agent/capture/netfilter.js';
import { CaptureManager } from '../../../agent/capture/manager.js';
import { NetfilterRedirect } from '../../../agent/capture/netfilter.js';
import { CniInstaller } from '../../../agent/cni/installer.js';
import { pluginEntry } from '../../../agent/cni/protocol.js';
import { CniServer } from '../../../agent/cni/server.js';
import { PodDiscovery } from '../../../agent/discovery/pods.js';
import { closeFd, listenerIn, openNetns } from '../../../native/netns.js';
import { addChain, type Conflist, delChain, ensurePluginBuilt, type Invocation, type PodArgs, runPlugin } from '../../helpers/cni.js';
import { stateWith } from '../../helpers/state.js';
import { until } from '../until.js';

const id = `ambit-t-cni-${process.pid}`;
const dir = `/tmp/${id}`;
const confDir = join(dir, 'net.d');
const binDir = join(dir, 'bin');
const socket = join(dir, 'run', 'cni.sock');
const node = `${id}-node`;
const log = pino({ level: 'silent' });
const netnsMade: string[] = [];
const fds: number[] = [];
const servers: Server[] = [];

const uid = (n: number) => `0000000${n}-aaaa-4bbb-8ccc-${String(n).padStart(12, '0')}`;
const workload = (ns: string, name: string, n: number) => ({ key: `workload/${ns}/${name}`, value: { ip: '', node: 'n1', serviceAccount: 'default', owner: `Deployment/${name}`, labels: { app: name }, uid: uid(n), phase: 'Pending' } });
// The controller knows the pods before their sandboxes exist, without addresses (a pending pod).
const state = stateWith('n1', [
  { key: 'namespace/shop', value: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { key: 'namespace/plain', value: { name: 'plain', labels: {} } },
  workload('shop', 'web-1', 1),
  workload('shop', 'web-2', 2),
  workload('plain', 'app-1', 3),
]);
const discovery = new PodDiscovery({ log, podCgroupRoot: `/${id}-none` });
const capture: CaptureManager = new CaptureManager({
  state,
  redirect: new NetfilterRedirect(),
  // What the proxy does with a captured connection is not this test's: none is made.
  handlers: { outbound: (_p, s) => s.destroy(), inbound: (_p, s) => s.destroy() },
  locate: (w) => discovery.locate(w),
  log,
  onChange: (key, captured, error) => server.captureChanged(key, captured, error),
});
const server = new CniServer({ socket, state, discovery, capture, log });
discovery.on('change', () => capture.refresh());

const primary: Conflist = {
  cniVersion: '1.0.0',
  name: 'ambit-t',
  plugins: [{ type: 'bridge', bridge: 'cni-t0', isGateway: false, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: '10.123.0.0/24' }]], dataDir: join(dir, 'ipam') } }],
};
let conflist: Conflist;

function netns(name: string): string {
  execFileSync('ip', ['netns', 'add', name]);
  netnsMade.push(name);
  return `/run/netns/${name}`;
}

let podCount = 0;
const sandboxes = new Map<string, { inv: Invocation; result?: unknown }>();
/** A pod's sandbox: its namespace, wired by loopback, then the conflist (bridge, then ambit-cni). */
async function sandbox(pod: PodArgs, before?: (path: string) => void) {
  const path = netns(`${id}-pod${++podCount}`);
  before?.(path);
  const inv: Invocation = { nodeNetns: `/run/netns/${node}`, path: [binDir, '/usr/lib/cni'], containerId: `sandbox-${podCount}`, netns: path, pod };
  const lo = await runPlugin('ADD', { cniVersion: '1.0.0', name: 'cni-loopback', type: 'loopback' }, { ...inv, ifname: 'lo' });
  assert.is(lo.status, 0, lo.stdout);
  const runs = await addChain(conflist, inv);
  const last = runs[runs.length - 1]!;
  sandboxes.set(`${pod.namespace}/${pod.name}`, { inv, ...(last.status === 0 ? { result: JSON.parse(last.stdout) as unknown } : {}) });
  return { path, inv, runs, bridge: runs[0]!, ambit: runs[1] };
}

test.before(async () => {
  ensurePluginBuilt();
  mkdirSync(confDir, { recursive: true });
  netns(node);
  writeFileSync(join(confDir, '10-bridge.conflist'), JSON.stringify(primary));
  // The agent's installer puts the plugin in: the executable into the bin dir, the entry into the conflist.
  const installer = new CniInstaller({ confDir, binDir, entry: pluginEntry(socket, ['kube-system'], 10), log });
  assert.is(installer.ensure(), join(confDir, '10-bridge.conflist'));
  conflist = JSON.parse(readFileSync(join(confDir, '10-bridge.conflist'), 'utf8')) as Conflist;
  await server.listen();
  capture.start();
});

test.after(async () => {
  await server.close();
  // As an agent stopping: the pods' listeners close, the redirects stay (in namespaces deleted below).
  capture.stopAccepting();
  await capture.stop();
  for (const s of servers) s.close();
  for (const fd of fds) closeFd(fd);
  for (const name of netnsMade.reverse()) execFileSync('ip', ['netns', 'del', name]);
  rmSync(dir, { recursive: true, force: true });
});

test('the conflist the plugins run from has ambit-cni last, after the primary plugin', () => {
  assert.equal(
    conflist.plugins.map((p) => p.type),
    ['bridge', 'ambit-cni'],
  );
  assert.is(conflist.plugins[1]!.socket, socket);
});

test("an enrolled pod's ADD returns once the pod is captured, and passes the bridge's result through unchanged", async () => {
  const { path, bridge, ambit } = await sandbox({ namespace: 'shop', name: 'web-1', uid: uid(1) });
  assert.is(bridge.status, 0, bridge.stdout);
  assert.is(ambit?.status, 0, ambit?.stdout);
  // What the runtime got from the bridge plugin (which it passed on as prevResult), unchanged.
  assert.equal(JSON.parse(ambit!.stdout), JSON.parse(bridge.stdout));
  const ip = (JSON.parse(bridge.stdout) as { ips: { address: string }[] }).ips[0]!.address.split('/')[0]!;
  // Captured by the time the runtime may start the containers: the redirect is in the pod's namespace.
  const captured = capture.capturedPod('shop/web-1');
  assert.ok(captured, 'captured when the ADD returned');
  assert.is(captured.netns, path);
  assert.is(captured.workload.ip, ip, 'captured at the address the bridge gave (the controller has none yet)');
  const fd = openNetns(path);
  fds.push(fd);
  assert.ok(captureState(fd).some((l) => l.endsWith('redirect to :15001')));
});

test('an ADD is refused, naming why, when the agent cannot capture the pod', async () => {
  // Something already holds 15001 in the pod's namespace (without SO_REUSEPORT): the agent cannot listen there.
  const { ambit } = await sandbox({ namespace: 'shop', name: 'web-2', uid: uid(2) }, (path) => {
    const fd = openNetns(path);
    fds.push(fd);
    const squatter = createServer();
    squatter.listen({ fd: listenerIn(fd, '0.0.0.0', 15001) });
    servers.push(squatter);
  });
  assert.is(ambit?.status, 1);
  const error = JSON.parse(ambit!.stdout) as { code: number; msg: string };
  assert.is(error.code, 100);
  assert.match(error.msg, /could not capture pod shop\/web-2, so it must not start/);
  assert.match(error.msg, /EADDRINUSE|in use/i);
  assert.not.ok(capture.capturedPod('shop/web-2'));
});

test('a pod of a namespace outside the mesh starts at once, uncaptured', async () => {
  const { bridge, ambit } = await sandbox({ namespace: 'plain', name: 'app-1', uid: uid(3) });
  assert.is(ambit?.status, 0, ambit?.stdout);
  assert.equal(JSON.parse(ambit!.stdout), JSON.parse(bridge.stdout));
  assert.not.ok(capture.capturedPod('plain/app-1'));
});

test('a pod of an excluded namespace the agent has heard nothing of starts at once (it may be the controller itself)', async () => {
  const { bridge, ambit } = await sandbox({ namespace: 'kube-system', name: 'controller-0', uid: uid(9) });
  assert.is(ambit?.status, 0, ambit?.stdout);
  assert.equal(JSON.parse(ambit!.stdout), JSON.parse(bridge.stdout));
});

test('an ADD for a pod the controller has not pushed yet waits for it, then for its capture', async () => {
  const pending = sandbox({ namespace: 'shop', name: 'late', uid: uid(4) });
  await until('the ADD to reach the agent', () => discovery.list().some((p) => p.uid === uid(4)));
  assert.not.ok(capture.capturedPod('shop/late'));
  state.apply({ type: 'config', full: false, from: state.version, to: state.version + 1, upserts: [workload('shop', 'late', 4)], deletes: [] });
  const { ambit } = await pending;
  assert.is(ambit?.status, 0, ambit?.stdout);
  assert.ok(capture.capturedPod('shop/late'));
});

test('a bad request is refused with a CNI error that names what is missing', async () => {
  const path = netns(`${id}-bad`);
  const entry = conflist.plugins[1]!;
  const prevResult = { cniVersion: '1.0.0', ips: [{ address: '10.123.0.200/24' }] };
  const run = await runPlugin('ADD', { ...entry, name: conflist.name, cniVersion: '1.0.0', prevResult }, { nodeNetns: `/run/netns/${node}`, path: [binDir], containerId: 'bad', netns: path, pod: { namespace: 'shop', name: '' } });
  assert.is(run.status, 1);
  assert.match((JSON.parse(run.stdout) as { msg: string }).msg, /CNI_ARGS has no K8S_POD_NAME/);
  const noPrev = await runPlugin('ADD', { ...entry, name: conflist.name, cniVersion: '1.0.0' }, { nodeNetns: `/run/netns/${node}`, path: [binDir], containerId: 'bad', netns: path, pod: { namespace: 'shop', name: 'x' } });
  assert.is(noPrev.status, 1);
  assert.match((JSON.parse(noPrev.stdout) as { msg: string }).msg, /chained plugin/);
  const old = await runPlugin('ADD', { ...entry, name: conflist.name, cniVersion: '0.2.0', prevResult }, { nodeNetns: `/run/netns/${node}`, path: [binDir], containerId: 'bad', netns: path, pod: { namespace: 'shop', name: 'x' } });
  assert.is((JSON.parse(old.stdout) as { code: number }).code, 1, 'incompatible CNI version');
  const version = await runPlugin('VERSION', { type: 'ambit-cni' }, { nodeNetns: `/run/netns/${node}`, path: [binDir], containerId: '', netns: '', pod: { namespace: '', name: '' } });
  assert.ok((JSON.parse(version.stdout) as { supportedVersions: string[] }).supportedVersions.includes('1.0.0'));
});

test('DEL succeeds and the agent forgets the pod, releasing its capture', async () => {
  const { inv, result } = sandboxes.get('shop/web-1')!;
  const dels = await delChain(conflist, inv, result);
  assert.equal(
    dels.map((r) => r.status),
    [0, 0],
  );
  assert.not.ok(discovery.list().some((p) => p.uid === uid(1)));
  await until('the capture of the deleted pod to be released', () => !capture.capturedPod('shop/web-1'));
});

test('with no agent, a pod of an enrolled namespace is held and one of another namespace starts', async () => {
  await server.close();
  assert.not.ok(existsSync(socket), 'the socket went with the server');
  // The list the agent left beside its socket says which namespaces are in the mesh.
  assert.is(readFileSync(join(dir, 'run', 'enrolled-namespaces'), 'utf8'), 'shop\n');
  const held = await sandbox({ namespace: 'shop', name: 'web-3', uid: uid(5) });
  assert.is(held.ambit?.status, 1);
  const error = JSON.parse(held.ambit!.stdout) as { code: number; msg: string };
  assert.is(error.code, 11, 'try again later');
  assert.match(error.msg, /must not start uncaptured \(its namespace is enrolled/);
  const free = await sandbox({ namespace: 'plain', name: 'app-2', uid: uid(6) });
  assert.is(free.ambit?.status, 0, free.ambit?.stdout);
  assert.equal(JSON.parse(free.ambit!.stdout), JSON.parse(free.bridge.stdout));
  // DEL never fails, agent or not.
  const dels = await delChain(conflist, held.inv);
  assert.equal(
    dels.map((r) => r.status),
    [0, 0],
  );
});

test('with no agent and no list (a node just booted), every pod is held but those of excluded namespaces', async () => {
  rmSync(join(dir, 'run', 'enrolled-namespaces'));
  const held = await sandbox({ namespace: 'plain', name: 'app-3', uid: uid(7) });
  assert.is(held.ambit?.status, 1);
  assert.match((JSON.parse(held.ambit!.stdout) as { msg: string }).msg, /has not listed the enrolled namespaces/);
  const system = await sandbox({ namespace: 'kube-system', name: 'dns', uid: uid(8) });
  assert.is(system.ambit?.status, 0, system.ambit?.stdout);
});

test.run();
