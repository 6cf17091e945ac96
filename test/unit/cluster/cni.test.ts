// The CNI executor against Debian's real plugins (bridge, host-local, loopback in /usr/lib/cni):
// a node namespace with its bridge and a pod namespace that this test creates and removes, plugins
// run inside the node's namespace as the kubelet's runtime runs them, the spec's environment and
// derived config (name, cniVersion, prevResult) seen by a plugin of the test's own, results cached
// and DEL run in reverse with them, and errors that carry the plugin's message or name what is missing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Attachment, CniExecutor, type CniPluginFailed, firstNetworkList, type NetworkList, parseNetworkList, systemPluginDir } from '../../../cluster/kubelet/cni.js';
import { NodeNetwork, nodeConflist, podConflistName, sandboxId, writeNodeCniConfig } from '../../../cluster/kubelet/network.js';
import { nodeCniDirs } from '../../../cluster/state.js';
import { layout } from '../../../cluster/topology.js';

const nodeName = `t-cni-${process.pid}`;
// The node's namespace is named as the local cluster names nodes, so network.ts finds it.
const t = layout({ apiVersion: 'ambit.dev/v1alpha1', kind: 'Cluster', spec: { nodes: [nodeName], podCIDR: '10.98.0.0/16', serviceCIDR: '10.97.0.0/16', nodeCIDR: '10.99.0.0/24' } });
const node = t.nodes[0]!;
const pods = [`ambit-t-cni-a-${process.pid}`, `ambit-t-cni-b-${process.pid}`];
let tmp = '';
let bin = '';
let ipam = '';

const inNode = (...args: string[]) => execFileSync('nsenter', [`--net=/run/netns/${node.netns}`, '--', ...args], { encoding: 'utf8' });
const inPod = (pod: string, ...args: string[]) => execFileSync('nsenter', [`--net=/run/netns/${pod}`, '--', ...args], { encoding: 'utf8' });
const nodeLinks = () => inNode('ip', '-o', 'link', 'show').split('\n').filter(Boolean);

function executor(timeoutMs?: number): CniExecutor {
  return new CniExecutor({ binDirs: [bin, systemPluginDir], cacheDir: join(tmp, 'cache'), pluginNetns: `/run/netns/${node.netns}`, ...(timeoutMs ? { timeoutMs } : {}) });
}

function bridgeList(extra: object[] = [], dataDir = ipam): NetworkList {
  return parseNetworkList({ ...nodeConflist(t, node, dataDir), plugins: [...(nodeConflist(t, node, dataDir).plugins as object[]), ...extra] }, 'test');
}

const attachment = (pod: string, id: string): Attachment => ({ containerId: id, netns: `/run/netns/${pod}`, ifName: 'eth0', args: [['IgnoreUnknown', '1'], ['K8S_POD_NAMESPACE', 'shop'], ['K8S_POD_NAME', pod], ['K8S_POD_INFRA_CONTAINER_ID', id], ['K8S_POD_UID', 'uid-1']] });

/** A plugin of the test's own, found in the node's bin directory: it records what it was given and passes prevResult on. */
function recordingPlugin(name: string, exitWith?: { code: number; msg: string; details?: string }): string {
  const log = join(tmp, `${name}.log`);
  const program = `#!${process.execPath}
const fs = require('fs');
const stdin = fs.readFileSync(0, 'utf8');
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('CNI_')));
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ env, config: JSON.parse(stdin) }) + '\\n');
${exitWith ? `process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', code: ${exitWith.code}, msg: ${JSON.stringify(exitWith.msg)}, details: ${JSON.stringify(exitWith.details ?? '')} })); process.exit(1);` : `const c = JSON.parse(stdin); if (process.env.CNI_COMMAND === 'ADD') process.stdout.write(JSON.stringify(c.prevResult ?? { cniVersion: c.cniVersion }));`}
`;
  writeFileSync(join(bin, name), program);
  chmodSync(join(bin, name), 0o755);
  return log;
}

const calls = (log: string) => readFileSync(log, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { env: Record<string, string>; config: Record<string, unknown> });
const leases = () => (existsSync(join(ipam, 'ambit-local')) ? readdirSync(join(ipam, 'ambit-local')).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)) : []);

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-cni-'));
  bin = join(tmp, 'bin');
  ipam = join(tmp, 'networks');
  mkdirSync(bin);
  execFileSync('ip', ['netns', 'add', node.netns]);
  // The node's bridge as the local cluster makes it: fixed MAC, the gateway address.
  execFileSync('ip', ['-n', node.netns, '-batch', '-'], { input: `link set lo up\nlink add br0 address 02:a6:b1:70:00:99 type bridge\naddr add ${node.gateway}/24 dev br0\nlink set br0 up\n` });
});

test.before.each(() => {
  for (const p of pods) execFileSync('ip', ['netns', 'add', p]);
});

test.after.each(() => {
  for (const p of pods) execFileSync('ip', ['netns', 'del', p]);
  rmSync(ipam, { recursive: true, force: true });
  rmSync(join(tmp, 'cache'), { recursive: true, force: true });
  for (const f of readdirSync(bin)) rmSync(join(bin, f));
});

test.after(() => {
  execFileSync('ip', ['netns', 'del', node.netns]);
  rmSync(tmp, { recursive: true, force: true });
});

test('ADD through bridge and host-local gives the pod an address of the node subnet, routes to the cluster blocks only, and a hairpin port on br0', async () => {
  const cni = executor();
  const result = await cni.add(bridgeList(), attachment(pods[0]!, 'c1'));
  assert.equal(result.ips?.map((i) => i.address), ['10.98.1.2/24']);
  assert.match(inPod(pods[0]!, 'ip', '-o', 'addr', 'show', 'eth0'), 'inet 10.98.1.2/24');
  const routes = inPod(pods[0]!, 'ip', 'route').trim().split('\n').map((r) => r.trim()).sort();
  // The cluster's blocks through the node bridge, the pod's own subnet on the link, and no default route.
  assert.equal(routes, ['10.97.0.0/16 via 10.98.1.1 dev eth0', '10.98.0.0/16 via 10.98.1.1 dev eth0', '10.98.1.0/24 dev eth0 proto kernel scope link src 10.98.1.2', '10.99.0.0/24 via 10.98.1.1 dev eth0']);
  const port = nodeLinks().find((l) => l.includes('master br0'))!;
  assert.ok(port, 'the pod veth is on br0');
  assert.match(inNode('ip', '-d', 'link', 'show', port.split(':')[1]!.trim().split('@')[0]!), 'hairpin on');
  // The bridge keeps the node's own MAC and gateway address.
  assert.match(inNode('ip', 'link', 'show', 'br0'), '02:a6:b1:70:00:99');
  assert.ok(cni.cached('ambit-local', 'c1', 'eth0'), 'the result is cached for DEL');
  await cni.del('ambit-local', attachment(pods[0]!, 'c1'));
});

test('a second pod gets the next address; DEL in reverse with the cached result releases the lease, the veth and the cache', async () => {
  const cni = executor();
  await cni.add(bridgeList(), attachment(pods[0]!, 'c1'));
  const b = await cni.add(bridgeList(), attachment(pods[1]!, 'c2'));
  assert.equal(b.ips?.map((i) => i.address), ['10.98.1.3/24']);
  assert.equal(leases().sort(), ['10.98.1.2', '10.98.1.3']);
  await cni.del('ambit-local', attachment(pods[0]!, 'c1'));
  assert.equal(leases(), ['10.98.1.3']);
  assert.is(cni.cached('ambit-local', 'c1', 'eth0'), undefined);
  assert.not.match(inPod(pods[0]!, 'ip', 'link'), 'eth0');
  assert.is(nodeLinks().filter((l) => l.includes('master br0')).length, 1, 'only the second pod is on br0');
  await cni.del('ambit-local', attachment(pods[1]!, 'c2'));
  assert.equal(leases(), []);
  assert.is(nodeLinks().filter((l) => l.includes('master br0')).length, 0);
});

test('each plugin gets the CNI environment and the derived config: the list name and version, and the previous result; DEL runs in reverse with the cached result', async () => {
  const log = recordingPlugin('record');
  const cni = executor();
  const list = bridgeList([{ type: 'record', answer: 42 }]);
  const result = await cni.add(list, attachment(pods[0]!, 'c1'));
  assert.equal(result.ips?.map((i) => i.address), ['10.98.1.2/24'], 'a chained plugin returns the previous result unchanged');
  const [add] = calls(log);
  assert.equal(add!.env, {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: `/run/netns/${pods[0]}`,
    CNI_IFNAME: 'eth0',
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${pods[0]};K8S_POD_INFRA_CONTAINER_ID=c1;K8S_POD_UID=uid-1`,
    CNI_PATH: `${bin}:${systemPluginDir}`,
  });
  assert.is(add!.config.name, 'ambit-local');
  assert.is(add!.config.cniVersion, '1.0.0');
  assert.is(add!.config.answer, 42);
  assert.equal((add!.config.prevResult as { ips: { address: string }[] }).ips.map((i) => i.address), ['10.98.1.2/24']);
  // The plugin runs in the node's namespace: it sees the node's br0.
  await cni.del('ambit-local', attachment(pods[0]!, 'c1'));
  const del = calls(log)[1]!;
  assert.is(del.env.CNI_COMMAND, 'DEL');
  assert.equal((del.config.prevResult as { ips: { address: string }[] }).ips.map((i) => i.address), ['10.98.1.2/24']);
  // Reverse order: the recording plugin was deleted before the bridge released the lease, which it saw still held.
  assert.equal(leases(), []);
});

test('DEL uses the configuration the ADD ran with, even after the directory changed', async () => {
  const cni = executor();
  await cni.add(bridgeList(), attachment(pods[0]!, 'c1'));
  assert.equal(leases(), ['10.98.1.2']);
  // Another dataDir now: a DEL with it would release nothing.
  await cni.del('ambit-local', attachment(pods[0]!, 'c1'), bridgeList([], join(tmp, 'elsewhere')));
  assert.equal(leases(), [], 'the lease was released where it was taken');
  rmSync(join(tmp, 'elsewhere'), { recursive: true, force: true });
});

test("a failing plugin's error object (code, msg, details) is the error; DEL afterwards releases what the plugins before it did", async () => {
  recordingPlugin('refuse', { code: 7, msg: 'the node agent refused the pod', details: 'agent not running' });
  const cni = executor();
  const list = bridgeList([{ type: 'refuse' }]);
  const err = (await cni.add(list, attachment(pods[0]!, 'c1')).catch((e: unknown) => e)) as CniPluginFailed;
  assert.is(err.code, 'CniPluginFailed');
  assert.is(err.cniCode, 7);
  assert.is(err.message, 'plugin type="refuse" name="ambit-local" failed (add): CNI error 7: the node agent refused the pod (agent not running)');
  assert.equal(leases(), ['10.98.1.2'], 'the bridge plugin before it took an address');
  assert.is(cni.cached('ambit-local', 'c1', 'eth0'), undefined, 'a failed ADD is not cached');
  // Without a cache, DEL runs with the configuration given (the refusing plugin's DEL fails too, as it would on a real node).
  recordingPlugin('refuse');
  await cni.del('ambit-local', attachment(pods[0]!, 'c1'), list);
  assert.equal(leases(), []);
  assert.is(nodeLinks().filter((l) => l.includes('master br0')).length, 0);
});

test("the standard plugins' errors come through with their message", async () => {
  const cni = executor();
  const bad = parseNetworkList({ cniVersion: '1.0.0', name: 'ambit-local', plugins: [{ type: 'bridge', bridge: 'br0', ipam: { type: 'host-local', dataDir: ipam } }] }, 'test');
  const err = (await cni.add(bad, attachment(pods[0]!, 'c1')).catch((e: unknown) => e)) as CniPluginFailed;
  assert.is(err.code, 'CniPluginFailed');
  assert.match(err.message, /^plugin type="bridge" name="ambit-local" failed \(add\): .*no IP ranges specified/);
  await cni.del('ambit-local', attachment(pods[0]!, 'c1'), bridgeList());
});

test('DEL runs every plugin even when one is missing: the bridge still releases its lease and veth, and the error names the missing plugin', async () => {
  const cni = executor();
  const broken = bridgeList([{ type: 'gone-plugin' }]);
  const err = (await cni.add(broken, attachment(pods[0]!, 'c1')).catch((e: unknown) => e)) as Error;
  assert.match(err.message, 'plugin type "gone-plugin" not found');
  assert.equal(leases(), ['10.98.1.2'], 'the bridge took an address before the chain failed');
  const delErr = (await cni.del('ambit-local', attachment(pods[0]!, 'c1'), broken).catch((e: unknown) => e)) as Error;
  assert.match(delErr.message, 'plugin type "gone-plugin" not found');
  assert.equal(leases(), []);
  assert.is(nodeLinks().filter((l) => l.includes('master br0')).length, 0);
});

test('an unknown plugin is an error naming its type and where it was looked for', async () => {
  const cni = executor();
  const list = parseNetworkList({ cniVersion: '1.0.0', name: 'ambit-local', plugins: [{ type: 'no-such-plugin' }] }, 'test');
  const err = (await cni.add(list, attachment(pods[0]!, 'c1')).catch((e: unknown) => e)) as Error;
  assert.is(err.message, `network ambit-local: plugin type "no-such-plugin" not found in ${bin}, ${systemPluginDir}`);
});

test('a plugin that does not finish is killed and its command fails', async () => {
  writeFileSync(join(bin, 'hang'), '#!/bin/sh\nexec sleep 600\n');
  chmodSync(join(bin, 'hang'), 0o755);
  const list = parseNetworkList({ cniVersion: '1.0.0', name: 'ambit-local', plugins: [{ type: 'hang' }] }, 'test');
  const err = (await executor(300).add(list, attachment(pods[0]!, 'c1')).catch((e: unknown) => e)) as Error;
  assert.match(err.message, 'plugin type="hang" name="ambit-local" failed (add): did not finish within 0.3 s and was killed');
});

test('the runtime reads the first configuration file by name; a .conf is a list of one; bad files name the field', () => {
  const dir = join(tmp, 'net.d');
  mkdirSync(dir);
  try {
    assert.throws(() => firstNetworkList(dir), /no network configuration \(\.conflist, \.conf, \.json\) in .*net\.d: the node's network is not ready/);
    writeFileSync(join(dir, '20-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'bridge' }] }));
    writeFileSync(join(dir, '10-first.conf'), JSON.stringify({ cniVersion: '1.0.0', name: 'first', type: 'bridge', bridge: 'br0' }));
    writeFileSync(join(dir, '05-notes.txt'), 'not a configuration');
    const list = firstNetworkList(dir);
    assert.is(list.name, 'first');
    assert.equal(list.plugins, [{ type: 'bridge', bridge: 'br0' }]);
    writeFileSync(join(dir, '01-broken.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'broken', plugins: [{ type: 'bridge' }, { ipam: {} }] }));
    assert.throws(() => firstNetworkList(dir), /01-broken\.conflist: plugins\[1\]\.type must name a plugin executable/);
    writeFileSync(join(dir, '01-broken.conflist'), '{ not json');
    assert.throws(() => firstNetworkList(dir), /01-broken\.conflist: /);
    writeFileSync(join(dir, '01-broken.conflist'), JSON.stringify({ name: 'x', plugins: [{ type: 'bridge' }] }));
    assert.throws(() => firstNetworkList(dir), /01-broken\.conflist: cniVersion must be a version string/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the node's pod network: the conflist written at up, a sandbox with lo up and its address, DEL of everything with the namespace", async () => {
  const stateDir = join(tmp, 'state');
  writeNodeCniConfig(stateDir, t);
  const dirs = nodeCniDirs(stateDir, nodeName);
  assert.ok(existsSync(join(dirs.confDir, podConflistName)));
  assert.ok(existsSync(dirs.binDir), "the node's plugin directory exists for plugins an agent installs");
  const network = new NodeNetwork(stateDir, node);
  const sandbox = { namespace: 'shop', name: 'web-1', uid: '4f2c-uid', netns: `ambit-t-cni-s-${process.pid}` };
  try {
    const ip = await network.createPodNetwork(sandbox);
    assert.is(ip, '10.98.1.2');
    assert.match(inPod(sandbox.netns, 'ip', 'link', 'show', 'lo'), 'UP', 'the loopback network set lo up');
    assert.ok(network.cni.cached('ambit-local', sandboxId(sandbox.uid), 'eth0'));
    await network.deletePodNetwork(sandbox);
    assert.not.ok(existsSync(`/run/netns/${sandbox.netns}`));
    assert.equal(readdirSync(join(dirs.ipamDir, 'ambit-local')).filter((f) => f.startsWith('10.')), []);
    assert.equal(network.cni.attachments(), []);
    // No configuration: the ADD fails with that reason, and leaves no namespace behind.
    rmSync(join(dirs.confDir, podConflistName));
    const err = (await network.createPodNetwork(sandbox).catch((e: unknown) => e)) as Error;
    assert.match(err.message, "the node's network is not ready");
    assert.not.ok(existsSync(`/run/netns/${sandbox.netns}`));
    assert.equal(network.cni.attachments(), []);
  } finally {
    if (existsSync(`/run/netns/${sandbox.netns}`)) execFileSync('ip', ['netns', 'del', sandbox.netns]);
  }
});

test.run();
