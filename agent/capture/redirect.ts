// The one interface both capture modes give the rest of the agent: install a pod's redirect once its
// listeners are open, read a captured connection's original destination, remove the redirect, and
// clean what a previous agent run left. The netfilter mode (netfilter.ts) and the eBPF mode (ebpf.ts)
// implement it; the capture manager and the proxy never know which one runs.

import type { Socket } from 'node:net';
import type { DestinationReader, DestinationSource } from './destinations.js';

export const ports = { outbound: 15001, inbound: 15006, hbone: 15008 } as const;
/** The mark of the agent's own sockets (SO_MARK), and the bits it occupies. */
export const agentMark = 0x539;
export const markMask = 0xfff;

export const redirectModes = ['iptables', 'ebpf'] as const;
export type RedirectMode = (typeof redirectModes)[number];

export interface Destination {
  ip: string;
  port: number;
}

/** A pod of this node to capture, with the agent's listeners already open inside it. */
export interface PodTarget {
  /** `namespace/name`. */
  workload: string;
  ip: string;
  /** An open fd of the pod's network namespace. */
  nsFd: number;
  /** The pod's cgroup v2 directory (absolute), when known; the eBPF mode needs it. */
  cgroup?: string;
  /** The listening sockets' fds, outbound (15001) and inbound (15006). */
  listeners: { outbound: number; inbound: number };
}

/** A pod of this node that should not be captured, which a previous run may have left captured. */
export interface UnwantedPod {
  workload: string;
  ip: string;
  netns: string;
  cgroup?: string;
}

/** One pod's redirect, in place. */
export interface InstalledRedirect extends DestinationReader {
  /** How it was installed: freshly, or found complete from a previous agent run. */
  readonly how: 'installed' | 'adopted';
  /** How the worker threads read the original destinations (destinations.ts). */
  readonly source: DestinationSource;
  /** Stops capturing new connections; the ones already captured keep working. */
  remove(): void;
  /** Removes what remove() left for the captured connections, once they have ended. */
  finish(): void;
}

export interface Redirect {
  readonly mode: RedirectMode;
  /** Installs the pod's redirect, all or nothing: on a throw nothing of it is left. */
  install(pod: PodTarget): InstalledRedirect;
  /**
   * Removes what a previous run may have left for pods of this node that are not wanted (`pods`),
   * and for pods the node no longer has; `wanted` are the pods captured now.
   */
  cleanStale(pods: UnwantedPod[], wanted: Set<string>): void;
  /** What the mode's kernel side counted, for the query API and metrics. */
  stats(): Record<string, number>;
  /** Releases this process's handles; what is installed stays for the next agent run. */
  close(): void;
}

/** The fd of a Node socket, for calls Node does not offer. */
export function socketFd(socket: Socket): number {
  return (socket as unknown as { _handle: { fd: number } })._handle.fd;
}
