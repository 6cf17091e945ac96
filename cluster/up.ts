// Bringing up the local cluster: guard routes in the root namespace, the fabric and the nodes with
// their CNI configuration, the cgroup tree, then the cluster's own process (its Kubernetes API, which
// runs the pods and agents) and the mesh controller's replicas, each in the background. Idempotent:
// a cluster that is up is left alone, a process of it that died is started again (it adopts what
// runs), and one that a crashed `up` left half-made is removed first.

import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../shared/errors.js';
import { ControllerClient } from '../controller/api/client.js';
import type { SocketApiClient } from '../shared/http/socket-api.js';
import { ClusterClient } from './api.js';
import { listNetns, run } from './kubelet/exec.js';
import { addRootGuards, createNodes, writeNodeCniConfig } from './kubelet/network.js';
import { clusterCgroupRoot, running, sleep } from './kubelet/pods.js';
import { isClusterProcess, replicaStateDir, startReplica } from './mesh-controller.js';
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
  /** The CLI's compiled entry, started as `ambit local-cluster` and `ambit controller`. */
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
  if (existing && existing.phase === 'ready' && (await nodesExist(existing))) {
    // Processes that died are started again; they adopt the running pods and agents.
    await restartDead(o, existing);
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
  // Each node's CNI configuration, which the kubelet reads at each pod it wires.
  writeNodeCniConfig(o.stateDir, topology);
  for (const n of topology.nodes) mkdirSync(join(clusterCgroupRoot(), n.name), { recursive: true });

  state.clusterPid = startLocalCluster(o, topology);
  writeState(o.stateDir, state);
  await waitForProcess(state.clusterPid, () => new ClusterClient(o.stateDir), 'the local cluster', join(o.stateDir, 'logs', 'local-cluster.log'));
  state.controllerPids = topology.controllers.map((r) => startReplica(o, topology, r));
  writeState(o.stateDir, state);
  await waitForReplicas(o, state.controllerPids);
  state.phase = 'ready';
  writeState(o.stateDir, state);
  return { already: false, topology };
}

async function restartDead(o: UpOptions, s: ClusterState): Promise<void> {
  const t = topologyOf(s);
  if (!isClusterProcess(s.clusterPid, o.stateDir, 'local-cluster')) {
    o.say("The cluster is up but its own process (the Kubernetes API, which runs the pods) is not running; restarting it.");
    s.clusterPid = startLocalCluster(o, t);
    writeState(o.stateDir, s);
    await waitForProcess(s.clusterPid, () => new ClusterClient(o.stateDir), 'the local cluster', join(o.stateDir, 'logs', 'local-cluster.log'));
  }
  const pids = t.controllers.map((r) => s.controllerPids?.[r.index]);
  const dead = t.controllers.filter((r) => !isClusterProcess(pids[r.index], o.stateDir, 'controller'));
  if (!dead.length) return;
  o.say(`The cluster is up but ${dead.length === 1 ? `its controller${t.controllers.length > 1 ? ` replica ${dead[0]!.identity}` : ''} is` : `${dead.length} controller replicas are`} not running; restarting the controller.`);
  for (const r of dead) pids[r.index] = startReplica(o, t, r);
  s.controllerPids = pids as number[];
  writeState(o.stateDir, s);
  await waitForReplicas(o, s.controllerPids, dead.map((r) => r.index));
}

/**
 * The cluster's own process runs in the control-plane namespace, where agents and controllers
 * reach its API; its listener for people belongs on this host's 127.0.0.1, so it inherits this
 * process's namespace as descriptor 3 and opens that listener there.
 */
function startLocalCluster(o: UpOptions, t: Topology): number {
  const logDir = join(o.stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = openSync(join(logDir, 'local-cluster.log'), 'a');
  const hostNetns = openSync('/proc/self/ns/net', 'r');
  const argv = [`--net=/run/netns/${t.control.netns}`, '--', process.execPath, o.cliEntry, 'local-cluster', '--state-dir', o.stateDir, '--kube-api-netns', '/proc/self/fd/3'];
  const child = spawn('nsenter', argv, { detached: true, stdio: ['ignore', log, log, hostNetns] });
  closeSync(log);
  closeSync(hostNetns);
  child.unref();
  if (!child.pid) throw new AmbitError('ClusterStart', 'could not start the local cluster process');
  return child.pid;
}

async function waitForReplicas(o: UpOptions, pids: number[], which?: number[]): Promise<void> {
  await Promise.all(
    pids.map((pid, index) => {
      if (which && !which.includes(index)) return undefined;
      const log = join(o.stateDir, 'logs', index === 0 ? 'controller.log' : `controller-${index}.log`);
      return waitForProcess(pid, () => new ControllerClient(replicaStateDir(o.stateDir, index)), 'the controller', log);
    }),
  );
}

/** Until the process answers on its socket; an error naming its log if it exits or stays silent. */
async function waitForProcess(pid: number, client: () => SocketApiClient, what: string, log: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (!running(pid)) throw new AmbitError('ClusterStart', `${what} exited during start; see ${log}`);
    try {
      await client().request('GET', '/healthz', undefined, 1000);
      return;
    } catch {
      // Not listening yet (or its token not written yet).
    }
    await sleep(50);
  }
  throw new AmbitError('ClusterStart', `${what} did not answer within 20 s; see ${log}`);
}

async function nodesExist(s: ClusterState): Promise<boolean> {
  const netns = new Set(await listNetns());
  return netns.has(fabricNetns) && topologyOf(s).nodes.every((n) => netns.has(n.netns));
}
