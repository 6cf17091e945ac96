// The mesh controller's replicas on the local cluster, as its Deployment would run them on a real
// one: separate processes on the control-plane host, given a kubeconfig and nothing else of the
// cluster (the same `ambit controller` as anywhere). Replica 0 also opens the dashboard on the
// host's loopback; each replica has its own ports and state directory, so several run side by side.

import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AmbitError } from '../shared/errors.js';
import { agentQueryPort, type AgentDialer, netnsDialer } from '../controller/dashboard/agent-link.js';
import { running } from './kubelet/pods.js';
import { prometheusUrl } from './prometheus.js';
import type { ControllerReplica, Topology } from './topology.js';

/** The kubeconfig the replicas use: the API at the control-plane address, where they run. */
export const controllerKubeconfigPath = (stateDir: string) => join(stateDir, 'kube-api', 'controller.kubeconfig');

/** Replica 0 keeps its files in the cluster's state directory (`<state>/controller/`), others beside it. */
export const replicaStateDir = (stateDir: string, index: number) => (index === 0 ? stateDir : join(stateDir, 'replicas', String(index)));

/** What a replica of the local cluster runs with, beyond the defaults of `ambit controller`. */
export interface LocalReplicaSettings {
  stateDir: string;
  identity: string;
  kubeconfig: string;
  nodes: string[];
  agentAddresses: string[];
  agentListen: { host: string; port: number };
  webhookPort: number;
  monitoringPort: number;
  prometheusUrl?: string;
  /** The dashboard reaches each node's agent query API inside the node's namespace. */
  dialer: AgentDialer;
  /** Only replica 0 opens the dashboard. */
  dashboard: boolean;
}

export function localReplicaSettings(t: Topology, stateDir: string, index: number): LocalReplicaSettings {
  const r = t.controllers[index];
  if (!r) throw new AmbitError('BadFlag', `--replica ${index}: the local cluster runs ${t.controllers.length} controller replica(s), 0 to ${t.controllers.length - 1}`);
  return {
    stateDir: replicaStateDir(stateDir, index),
    identity: r.identity,
    kubeconfig: controllerKubeconfigPath(stateDir),
    nodes: t.nodes.map((n) => n.name),
    agentAddresses: [t.control.ip],
    agentListen: { host: '0.0.0.0', port: r.agentPort },
    webhookPort: r.webhookPort,
    monitoringPort: r.monitoringPort,
    ...(t.prometheus ? { prometheusUrl: prometheusUrl(t) } : {}),
    dialer: netnsDialer(t.nodes, agentQueryPort),
    dashboard: index === 0,
  };
}

/**
 * Starts a replica in the control-plane namespace. Replica 0's dashboard belongs on this host's
 * 127.0.0.1, so it inherits this process's namespace as descriptor 3 and opens its listener there
 * (/proc/1/ns/net, the usual way to the host's namespace, is EACCES on some hosts).
 */
export function startReplica(o: { stateDir: string; cliEntry: string }, t: Topology, r: ControllerReplica): number {
  const logDir = join(o.stateDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const log = openSync(join(logDir, r.index === 0 ? 'controller.log' : `controller-${r.index}.log`), 'a');
  const hostNetns = openSync('/proc/self/ns/net', 'r');
  const dashboard = r.index === 0 ? ['--dashboard-netns', '/proc/self/fd/3'] : [];
  const argv = [`--net=/run/netns/${t.control.netns}`, '--', process.execPath, o.cliEntry, 'controller', '--local-cluster', '--replica', String(r.index), '--state-dir', o.stateDir, ...dashboard];
  const child = spawn('nsenter', argv, { detached: true, stdio: ['ignore', log, log, r.index === 0 ? hostNetns : 'ignore'] });
  closeSync(log);
  closeSync(hostNetns);
  child.unref();
  if (!child.pid) throw new AmbitError('ControllerStart', 'could not start the controller process');
  return child.pid;
}

/** The process is still one of this cluster's (pids are reused): its command line says so. */
export function isClusterProcess(pid: number | undefined, stateDir: string, kind: 'controller' | 'local-cluster'): boolean {
  if (!pid || !running(pid)) return false;
  try {
    return matchesCommand(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0'), stateDir, kind);
  } catch {
    return false;
  }
}

/** `ambit ... controller --local-cluster --state-dir DIR` or `ambit ... local-cluster --state-dir DIR`. */
export function matchesCommand(argv: string[], stateDir: string, kind: 'controller' | 'local-cluster'): boolean {
  const at = argv.indexOf('--state-dir');
  if (at < 0 || argv[at + 1] !== stateDir) return false;
  return kind === 'controller' ? argv.includes('controller') && argv.includes('--local-cluster') : argv.includes('local-cluster') && !argv.includes('controller');
}
