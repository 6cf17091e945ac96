// The node's pods as the agent finds them itself, without Kubernetes API access: from the CNI
// plugin's ADDs (cni/server.ts) and, at start, from a /proc scan (proc-scan.ts). Each is matched to
// the controller's workload by pod UID; `locate` then says where the capture and the waypoint host
// act: the pod's network namespace, its address and its cgroup. A pod the agent has not found is
// not captured (a pod of an enrolled namespace cannot start before its CNI ADD is answered).

import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import type { Logger } from '../../shared/log.js';
import type { WorkloadEntry } from '../../shared/protocol/config.js';
import { findPodCgroup, podCgroupRoot } from './cgroup.js';
import { scanProc, type ScanOptions } from './proc-scan.js';

export interface DiscoveredPod {
  /** From CNI_ARGS K8S_POD_UID (older runtimes omit it) or the cgroup path. */
  uid?: string;
  /** From CNI_ARGS; a scanned pod's are known only once matched. */
  namespace?: string;
  name?: string;
  netns: string;
  /** IPv4 addresses: from the primary plugin's result, or configured in the scanned namespace. */
  ips: string[];
  /** Relative to the cgroup2 mount; looked up by UID when the CNI event did not say. */
  cgroup?: string;
  /** The sandbox the CNI ADD was for; a DEL of another sandbox leaves this one be. */
  containerId?: string;
  source: 'cni' | 'proc';
}

/** Where a workload's capture is installed. */
export interface PodLocation {
  netns: string;
  ip: string;
  /** Relative to the cgroup2 mount. */
  cgroup?: string;
}

export interface PodDiscoveryOptions {
  /** The kubelet's pod cgroup root (relative to the cgroup2 mount); the drivers' defaults if not given. */
  podCgroupRoot?: string;
  log: Logger;
  /** For tests: where the scan looks for runtimes' namespace bind mounts. */
  netnsDirs?: ScanOptions['netnsDirs'];
  /** The host's /proc as the agent sees it. */
  procRoot?: string;
}

export class PodDiscovery extends EventEmitter<{ change: [] }> {
  private readonly byUid = new Map<string, DiscoveredPod>();
  /** Pods whose runtime gave no UID, by `namespace/name`. */
  private readonly byName = new Map<string, DiscoveredPod>();
  /** Mismatches already logged, so a workload checked at every push is reported once. */
  private readonly warned = new Set<string>();
  /** Running workloads not found here that a scan was asked for: each asks once. */
  private readonly missed = new Set<string>();
  private rescan: NodeJS.Timeout | undefined;

  constructor(private readonly o: PodDiscoveryOptions) {
    super();
  }

  get cgroupRoot(): string {
    return podCgroupRoot(this.o.podCgroupRoot);
  }

  /** A pod from a CNI ADD (or a scan): replaces what was known of the same pod. */
  add(pod: DiscoveredPod): void {
    if (pod.uid) this.byUid.set(pod.uid, pod);
    else if (pod.namespace && pod.name) this.byName.set(`${pod.namespace}/${pod.name}`, pod);
    this.emit('change');
  }

  /** A CNI DEL: forgets the pod if the deleted sandbox is the one known. */
  remove(o: { uid?: string; namespace?: string; name?: string; containerId: string }): boolean {
    const key = o.namespace && o.name ? `${o.namespace}/${o.name}` : undefined;
    const [map, k] = o.uid && this.byUid.has(o.uid) ? [this.byUid, o.uid] : [this.byName, key];
    const known = k ? map.get(k) : undefined;
    if (!known || (known.containerId && known.containerId !== o.containerId)) return false;
    map.delete(k!);
    this.emit('change');
    return true;
  }

  /** Registers every pod running below the pod cgroup root; returns how many were found. */
  scan(): number {
    const root = this.cgroupRoot;
    const found = scanProc({ root, ...(this.o.netnsDirs ? { netnsDirs: this.o.netnsDirs } : {}), ...(this.o.procRoot ? { procRoot: this.o.procRoot } : {}) });
    let changed = 0;
    for (const p of found) {
      const known = this.byUid.get(p.uid);
      // A CNI event is fresher than a scan; never replace it.
      if (known?.source === 'cni' || (known && known.netns === p.netns && known.ips.join() === p.ips.join())) continue;
      this.byUid.set(p.uid, { uid: p.uid, netns: p.netns, ips: p.ips, cgroup: p.cgroup, source: 'proc' });
      changed++;
    }
    this.o.log.info({ root, pods: found.length, new: changed }, 'scanned /proc for running pods');
    if (changed) this.emit('change');
    return found.length;
  }

  /**
   * A running workload of this node that no CNI event or scan has shown: its sandbox was made while
   * the plugin could not reach this agent (before the agent put it in the chain, or while no agent
   * ran). Scans again soon, once per such workload, at most every 2 s.
   */
  private missing(w: WorkloadEntry): void {
    const key = w.uid ?? `${w.namespace}/${w.name}`;
    if (w.phase !== 'Running' || this.missed.has(key)) return;
    this.missed.add(key);
    this.rescan ??= setTimeout(() => {
      this.rescan = undefined;
      try {
        this.scan();
      } catch (err) {
        this.o.log.warn({ err: (err as Error).message }, 'scanning /proc again failed');
      }
    }, 2000).unref();
  }

  close(): void {
    clearTimeout(this.rescan);
  }

  /** A pod whose namespace is gone (its sandbox ended while no DEL reached this agent). */
  private forget(d: DiscoveredPod): void {
    if (d.uid && this.byUid.get(d.uid) === d) this.byUid.delete(d.uid);
    if (d.namespace && d.name && this.byName.get(`${d.namespace}/${d.name}`) === d) this.byName.delete(`${d.namespace}/${d.name}`);
  }

  list(): DiscoveredPod[] {
    return [...this.byUid.values(), ...this.byName.values()];
  }

  /**
   * Where the workload lives on this node, or undefined if the agent has not found it. A scanned
   * namespace is used only if it holds the workload's address: a pod's first process could have
   * been replaced by another since the scan. A CNI event's addresses are the freshest there are
   * (the controller learns a new sandbox's address only after the ADD), so they win.
   */
  locate(w: WorkloadEntry): PodLocation | undefined {
    const d = (w.uid ? this.byUid.get(w.uid) : undefined) ?? this.byName.get(`${w.namespace}/${w.name}`);
    if (!d) this.missing(w);
    else if (!existsSync(d.netns)) this.forget(d);
    else {
      this.missed.delete(w.uid ?? `${w.namespace}/${w.name}`);
      const ip = d.source === 'cni' ? (d.ips[0] ?? w.ip) : w.ip && d.ips.includes(w.ip) ? w.ip : !w.ip ? d.ips[0] : undefined;
      if (ip) {
        d.cgroup ??= d.uid ? findPodCgroup(this.cgroupRoot, d.uid) : undefined;
        return { netns: d.netns, ip, ...(d.cgroup ? { cgroup: d.cgroup } : {}) };
      }
      const key = `${w.namespace}/${w.name} ${d.netns}`;
      if (!this.warned.has(key)) {
        this.warned.add(key);
        this.o.log.warn({ workload: `${w.namespace}/${w.name}`, ip: w.ip, netns: d.netns, found: d.ips }, "the pod's network namespace does not hold its address; not using it");
      }
    }
    return undefined;
  }
}
