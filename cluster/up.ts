// Bringing up the local cluster: guard routes in the root namespace, the fabric and the nodes, the
// cgroup tree, then the controller (which runs the pods) as a background process. Idempotent: a
// cluster that is up is left alone; one that a crashed `up` left half-made is removed first.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../shared/errors.js';
import { ControllerClient } from '../controller/api/client.js';
import { listNetns, run } from './kubelet/exec.js';
import { addRootGuards, createNodes } from './kubelet/network.js';
import { clusterCgroupRoot, running, sleep } from './kubelet/pods.js';
import { readState, writeState, topologyOf, type ClusterState } from './state.js';
import { teardown } from './teardown.js';
import { defaultClusterFile, fabricNetns, layout, prefix, readClusterFile, type Topology } from './topology.js';

export interface UpOptions {
  stateDir: string;
  clusterFile?: string;
  /** Overrides the cluster file's spec.redirect. */
  redirect?: 'iptables' | 'ebpf';
  /** Overrides the cluster file's spec.prometheus. */
  prometheus?: boolean;
  /** The CLI's compiled entry, started as `ambit controller`. */
  cliEntry: string;
  say: (line: string) => void;
}

export type UpResult = { already: true; topology: Topology } | { already: false; topology: Topology };

const requiredTools = ['ip', 'nft', 'nsenter', 'sysctl'];

export async function up(o: UpOptions): Promise<UpResult> {
  if (process.getuid?.() !== 0) throw new AmbitError('NotRoot', 'the local cluster needs root (network namespaces, cgroups, nftables)');
  for (const tool of requiredTools) {
    await run('sh', ['-c', `command -v ${tool}`]).catch(() => {
      throw new AmbitError('MissingTool', `${tool} is not installed; run scripts/setup.sh`);
    });
  }
  const file = o.clusterFile ? readClusterFile(o.clusterFile) : defaultClusterFile();
  if (o.redirect) file.spec = { ...file.spec, redirect: o.redirect };
  if (o.prometheus !== undefined) file.spec = { ...file.spec, prometheus: o.prometheus };
  const topology = layout(file);
  const existing = readState(o.stateDir);
  if (existing && existing.phase === 'ready' && (await nodesExist(existing)) && !controllerAlive(existing.controllerPid)) {
    // Only the controller died: start it again; it adopts the running pods.
    o.say('The cluster is up but its controller is not running; restarting the controller.');
    existing.controllerPid = startController(o, topologyOf(existing));
    writeState(o.stateDir, existing);
    await waitForController(existing.controllerPid, o.stateDir);
  }
  if (existing && (await isHealthy(existing))) {
    if (JSON.stringify(existing.file) !== JSON.stringify(file) && (o.clusterFile || o.redirect || o.prometheus !== undefined)) {
      throw new AmbitError('ClusterExists', 'a cluster from a different cluster file is up; run `ambit down` first');
    }
    return { already: true, topology: topologyOf(existing) };
  }
  const leftovers = (await listNetns()).some((n) => n.startsWith(`${prefix}-`)) || existsSync(clusterCgroupRoot()) || existing;
  if (leftovers) {
    o.say('Found an incomplete cluster (a crashed `ambit up`, or a host restart); removing it first.');
    await teardown(o.stateDir);
  }

  const state: ClusterState = { file, phase: 'creating', createdAt: new Date().toISOString() };
  writeState(o.stateDir, state);
  await addRootGuards(topology);
  await createNodes(topology);
  for (const n of topology.nodes) mkdirSync(join(clusterCgroupRoot(), n.name), { recursive: true });

  state.controllerPid = startController(o, topology);
  writeState(o.stateDir, state);
  await waitForController(state.controllerPid, o.stateDir);
  state.phase = 'ready';
  writeState(o.stateDir, state);
  return { already: false, topology };
}

/**
 * The controller runs on the control-plane host, where the agents on the nodes can reach it. Its
 * dashboard and the cluster's Kubernetes API belong on this host's 127.0.0.1, so it inherits this
 * process's network namespace as file descriptor 3 and opens their listeners there (/proc/1/ns/net, the usual way to the host's
 * namespace, is EACCES on some hosts, and this process is in the host's namespace anyway).
 */
function startController(o: UpOptions, t: Topology): number {
  const logDir = join(o.stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = openSync(join(logDir, 'controller.log'), 'a');
  const hostNetns = openSync('/proc/self/ns/net', 'r');
  const argv = [`--net=/run/netns/${t.control.netns}`, '--', process.execPath, o.cliEntry, 'controller', '--local-cluster', '--state-dir', o.stateDir, '--dashboard-netns', '/proc/self/fd/3', '--kube-api-netns', '/proc/self/fd/3'];
  const child = spawn('nsenter', argv, { detached: true, stdio: ['ignore', log, log, hostNetns] });
  closeSync(log);
  closeSync(hostNetns);
  child.unref();
  if (!child.pid) throw new AmbitError('ControllerStart', 'could not start the controller process');
  return child.pid;
}

async function waitForController(pid: number, stateDir: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (!running(pid)) throw new AmbitError('ControllerStart', `the controller exited during start; see ${join(stateDir, 'logs', 'controller.log')}`);
    try {
      await new ControllerClient(stateDir).request('GET', '/healthz', undefined, 1000);
      return;
    } catch {
      // Not listening yet.
    }
    await sleep(50);
  }
  throw new AmbitError('ControllerStart', `the controller did not answer within 15 s; see ${join(stateDir, 'logs', 'controller.log')}`);
}

async function isHealthy(s: ClusterState): Promise<boolean> {
  return s.phase === 'ready' && controllerAlive(s.controllerPid) && (await nodesExist(s));
}

async function nodesExist(s: ClusterState): Promise<boolean> {
  const netns = new Set(await listNetns());
  return netns.has(fabricNetns) && topologyOf(s).nodes.every((n) => netns.has(n.netns));
}

/** The recorded controller is still running, and still is a controller (pids are reused). */
function controllerAlive(pid: number | undefined): boolean {
  if (!pid || !running(pid)) return false;
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('controller') && argv.includes('--local-cluster');
  } catch {
    return false;
  }
}
