// Where a captured connection was headed, read the same way by every event loop of the agent: the
// capture modes build their readers here from a description that can cross to a worker thread
// (the fds it names are the process's, so a worker thread reads through the very same ones).

import type { Socket } from 'node:net';
import { OriginalDestinations } from '../../native/bpf.js';
import { originalDestination } from '../../native/netns.js';
import { socketFd, type Destination } from './redirect.js';

/** How a pod's captured connections tell their original destination, for any event loop. */
export type DestinationSource = { mode: 'iptables' } | { mode: 'ebpf'; mapFd: number; netnsCookie: bigint };

export interface DestinationReader {
  /** The destination a connection accepted on the pod's 15001 was headed to; undefined if unknown. */
  outboundDestination(socket: Socket): Destination | undefined;
  /** The same for the pod's 15006. */
  inboundDestination(socket: Socket): Destination | undefined;
}

/** Per map fd, so a thread reads each map through one set of buffers. */
const maps = new Map<number, OriginalDestinations>();

export function destinationReader(src: DestinationSource): DestinationReader {
  if (src.mode === 'iptables') {
    // SO_ORIGINAL_DST, from conntrack's record of the redirect, both ways.
    const destination = (s: Socket) => {
      try {
        return originalDestination(socketFd(s));
      } catch {
        return undefined;
      }
    };
    return { outboundDestination: destination, inboundDestination: destination };
  }
  let map = maps.get(src.mapFd);
  if (!map) maps.set(src.mapFd, (map = new OriginalDestinations(src.mapFd)));
  const m = map;
  return {
    outboundDestination: (s) => m.take(src.netnsCookie, s.remoteAddress!, s.remotePort!),
    // The inbound program hands the connection over unchanged: its own address is where it was headed.
    inboundDestination: (s) => (s.localAddress && s.localPort ? { ip: s.localAddress, port: s.localPort } : undefined),
  };
}
