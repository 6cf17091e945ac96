// The local cluster's record on disk: the cluster file it was made from, how far `ambit up` got,
// and the process ids of the cluster's own process and of the controller's replicas. `ambit down` reads it, but also finds what it missed by name.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../controller/store/store.js';
import { type ClusterFile, layout, type Topology } from './topology.js';

export interface ClusterState {
  file: ClusterFile;
  /** `creating` until `ambit up` finished; a crash leaves it so, and the next `up` starts over. */
  phase: 'creating' | 'ready';
  /** The local cluster's process: its Kubernetes API and runtime. */
  clusterPid?: number;
  /** The mesh controller's replicas, by index. */
  controllerPids?: number[];
  createdAt: string;
}

export function statePath(stateDir: string): string {
  return join(stateDir, 'cluster.json');
}

/**
 * A node's CNI directories, as a real node has /etc/cni/net.d, /opt/cni/bin and /var/lib/cni: the
 * configuration the kubelet reads (and an agent's installer may chain into), the node's own plugins
 * (searched before the system's), the runtime's result cache and the host-local IPAM's data.
 */
export function nodeCniDirs(stateDir: string, node: string): { confDir: string; binDir: string; cacheDir: string; ipamDir: string } {
  const base = join(stateDir, 'nodes', node, 'cni');
  return { confDir: join(base, 'net.d'), binDir: join(base, 'bin'), cacheDir: join(base, 'cache'), ipamDir: join(base, 'networks') };
}

export function readState(stateDir: string): ClusterState | undefined {
  const p = statePath(stateDir);
  if (!existsSync(p)) return undefined;
  return JSON.parse(readFileSync(p, 'utf8')) as ClusterState;
}

export function writeState(stateDir: string, s: ClusterState): void {
  writeFileAtomic(statePath(stateDir), JSON.stringify(s, null, 2));
}

export function removeState(stateDir: string): void {
  rmSync(stateDir, { recursive: true, force: true });
}

export function topologyOf(s: ClusterState): Topology {
  return layout(s.file);
}
