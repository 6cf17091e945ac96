// The eBPF capture mode behind the Redirect interface: bpf/capture.bpf.c's programs attached to each
// pod's cgroup (outbound connect4 + sockops, pinned links under /sys/fs/bpf/ambit/<node>) and to its
// interface's ingress (inbound, a tc filter), configured through pinned maps, so a restarted agent
// adopts them.
// The original destination of an outbound connection comes from the programs' map, keyed by the
// connection as the agent's listener sees it; an inbound one's is the accepted socket's own address.

import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { bpfPinBase, CapturePrograms } from '../../native/bpf.js';
import { closeFd, netnsCookie, openNetns } from '../../native/netns.js';
import { AmbitError } from '../../shared/errors.js';
import { destinationReader } from './destinations.js';
import { ports, type InstalledRedirect, type PodTarget, type Redirect, type UnwantedPod } from './redirect.js';

/** Where the set-up leaves the compiled object: dist/bpf/, beside the compiled agent. */
export const defaultBpfObject = fileURLToPath(new URL('../../bpf/capture.bpf.o', import.meta.url));

export function pinRootOf(node: string): string {
  return join(bpfPinBase, node);
}

/**
 * The pin directory name of a pod. bpffs refuses names with dots, and Kubernetes names never hold
 * an underscore, so `shop/web.v1` becomes `shop_web_v1`, still one name per pod.
 */
const pinName = (workload: string) => workload.replace(/[/.]/g, '_');

export interface EbpfOptions {
  node: string;
  objectPath?: string;
  /** Where to pin; /sys/fs/bpf/ambit/<node> by default. */
  pinRoot?: string;
  probeSource?: string;
}

export class EbpfRedirect implements Redirect {
  readonly mode = 'ebpf' as const;
  private readonly programs: CapturePrograms;
  /** Pods whose interface was already looked at for a filter a previous run left. */
  private readonly checked = new Set<string>();

  constructor(o: EbpfOptions) {
    this.programs = CapturePrograms.load(o.objectPath ?? defaultBpfObject, o.pinRoot ?? pinRootOf(o.node));
    this.programs.setProbeSource(o.probeSource);
  }

  install(pod: PodTarget): InstalledRedirect {
    if (!pod.cgroup) throw new AmbitError('CaptureFailed', `pod ${pod.workload} has no known cgroup, which the eBPF capture attaches to: none for its UID below the pod cgroup root (--pod-cgroup-root)`);
    const cgroupId = statSync(pod.cgroup, { bigint: true }).ino;
    const cookie = netnsCookie(pod.listeners.outbound);
    const name = pinName(pod.workload);
    // Maps first, so the programs find the pod configured from their first call.
    this.programs.configurePod(cgroupId, '127.0.0.1', ports.outbound);
    this.checked.delete(pod.workload);
    let how: InstalledRedirect['how'];
    try {
      this.programs.setInboundListener(pod.ip, pod.listeners.inbound);
      how = this.programs.attachPod(name, pod.cgroup, pod.nsFd) === 'adopted' ? 'adopted' : 'installed';
    } catch (err) {
      this.programs.removeInboundListener(pod.ip);
      this.programs.unconfigurePod(cgroupId);
      throw err;
    }
    const { programs, checked } = this;
    const source = { mode: 'ebpf', mapFd: programs.destinations.mapFd, netnsCookie: cookie } as const;
    return {
      how,
      source,
      ...destinationReader(source),
      remove() {
        // Programs first: from here the pod's new connections go direct, none to a closing listener.
        programs.detachPod(name, pod.nsFd);
        checked.add(pod.workload);
        programs.removeInboundListener(pod.ip);
        programs.unconfigurePod(cgroupId);
      },
      // Captured connections are the agent's own sockets here: nothing of the kernel side is left.
      finish() {},
    };
  }

  cleanStale(pods: UnwantedPod[], wanted: Set<string>): void {
    const unwanted = new Map(pods.map((p) => [pinName(p.workload), p]));
    const keep = new Set([...wanted].map(pinName));
    // Pins of pods not wanted, including pods deleted while no agent ran.
    for (const name of this.programs.pinnedPods()) if (!keep.has(name) && !unwanted.has(name)) this.programs.detachPod(name);
    // Pods this node still has: their tc filter too, looked at once each.
    for (const p of unwanted.values()) {
      if (this.checked.has(p.workload) || !existsSync(p.netns)) continue;
      this.checked.add(p.workload);
      const nsFd = openNetns(p.netns);
      try {
        this.programs.detachPod(pinName(p.workload), nsFd);
      } finally {
        closeFd(nsFd);
      }
      this.programs.removeInboundListener(p.ip);
      if (p.cgroup) {
        try {
          this.programs.unconfigurePod(statSync(p.cgroup, { bigint: true }).ino);
        } catch {
          // The cgroup is gone, and with it the id the entry was for.
        }
      }
    }
  }

  stats(): Record<string, number> {
    return this.programs.stats();
  }

  close(): void {
    this.programs.close();
  }
}
