// The netfilter redirect (the "iptables" capture mode), installed inside a pod's own network
// namespace, never the node's or the host's tables, as Istio's in-pod mode does it: outbound TCP
// to the agent's 15001, inbound TCP to 15006. The agent's own sockets carry a mark and pass
// untouched, and so do loopback traffic and the health probes' source.
// Only a connection's first packet (a SYN without ACK) is redirected: the nat hooks see connections
// that were open before the pod was enrolled as new ones too (conntrack picks them up mid-stream),
// and they must finish as they began, uncaptured. On release the redirect rules go but the nat
// chains stay until the connections captured so far have ended, because conntrack rewrites their
// packets only while a nat hook is registered in the namespace.
// Written as one nftables table replaced in one transaction through libnftables (native/): installing
// again replaces it (never duplicates), a failure applies nothing, removal leaves nothing, and no
// process is spawned per pod, which is what enrolling many pods at once pays.

import { existsSync } from 'node:fs';
import { NftablesFailed, runNft } from '../../native/nftables.js';
import { closeFd, openNetns } from '../../native/netns.js';
import { destinationReader } from './destinations.js';
import { agentMark, markMask, ports, type InstalledRedirect, type PodTarget, type Redirect, type UnwantedPod } from './redirect.js';

export const table = 'ambit_capture';

export interface CaptureOptions {
  /** Where health probes come from (the node), which must reach the app directly. */
  probeSource?: string;
}

const firstPacket = 'tcp flags & (fin | syn | rst | ack) == syn';

/**
 * The whole table in one transaction: created if missing, its chains emptied and filled.
 * `draining`: the chains without the redirects, which keeps the captured connections' translations
 * working. The chains are flushed, never deleted: a nat chain going away, even for the moment of a
 * transaction, unregisters the namespace's nat hook, and a packet of a redirected connection that
 * passes then goes untranslated and is reset (as when a new agent installs beside the old one).
 */
export function captureRules(o: CaptureOptions = {}, draining = false): string {
  const rules = draining
    ? []
    : [
        `outbound meta mark & 0x${markMask.toString(16)} == 0x${agentMark.toString(16)} return`,
        'outbound ip daddr 127.0.0.0/8 return',
        `outbound ${firstPacket} redirect to :${ports.outbound}`,
        ...(o.probeSource ? [`inbound ip saddr ${o.probeSource} return`] : []),
        `inbound ${firstPacket} redirect to :${ports.inbound}`,
      ];
  return `table ip ${table} {
  chain outbound {
    type nat hook output priority -100; policy accept;
  }
  chain inbound {
    type nat hook prerouting priority -100; policy accept;
  }
}
flush chain ip ${table} outbound
flush chain ip ${table} inbound
${rules.map((r) => `add rule ip ${table} ${r}\n`).join('')}`;
}

/** Installs (or replaces) the redirect in the pod's namespace (`nsFd`), all or nothing. */
export function installCapture(nsFd: number, o: CaptureOptions = {}): void {
  runNft(nsFd, captureRules(o));
}

/** Removes the redirect; succeeds when there is nothing to remove. */
export function removeCapture(nsFd: number): void {
  runNft(nsFd, `table ip ${table}\ndelete table ip ${table}\n`);
}

/** The pod's ambit table as nft lists it, a line each (empty when it is not captured). */
export function captureState(nsFd: number): string[] {
  try {
    return runNft(nsFd, `list table ip ${table}`)
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  } catch (err) {
    if (err instanceof NftablesFailed && /No such file or directory/.test(err.message)) return [];
    throw err;
  }
}

/** The netfilter mode behind the Redirect interface: conntrack keeps each original destination. */
export class NetfilterRedirect implements Redirect {
  readonly mode = 'iptables' as const;
  private readonly checked = new Set<string>();

  constructor(private readonly o: CaptureOptions = {}) {}

  install(pod: PodTarget): InstalledRedirect {
    installCapture(pod.nsFd, this.o);
    this.checked.delete(pod.workload);
    const source = { mode: 'iptables' } as const;
    return {
      how: 'installed',
      source,
      ...destinationReader(source),
      remove: () => {
        this.checked.add(pod.workload);
        runNft(pod.nsFd, captureRules(this.o, true));
      },
      finish: () => removeCapture(pod.nsFd),
    };
  }

  cleanStale(pods: UnwantedPod[]): void {
    for (const p of pods) {
      if (this.checked.has(p.workload) || !existsSync(p.netns)) continue;
      this.checked.add(p.workload);
      const fd = openNetns(p.netns);
      try {
        removeCapture(fd);
      } finally {
        closeFd(fd);
      }
    }
  }

  stats(): Record<string, number> {
    return {};
  }

  close(): void {}
}
