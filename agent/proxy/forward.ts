// Plain forwarding of captured connections to their original destination, from inside the pod's
// network namespace with the agent's mark (so the pod's redirect lets it pass). This is the data
// path until HBONE replaces it for enrolled destinations: stream.pipeline in both directions with
// backpressure, no per-chunk work beyond counting bytes in plain numbers.

import { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import { agentMark, type Destination } from '../capture/redirect.js';
import { tcpSocketIn } from '../../native/netns.js';

export interface ForwardCounters {
  opened: number;
  closed: number;
  failed: number;
  /** Bytes from the client to the destination, and back. */
  sent: number;
  received: number;
}

export interface Forwarder {
  counters: ForwardCounters;
  /** Handles one accepted connection of a capture listener in the namespace `nsFd`. */
  handle(client: Socket): void;
}

/** `destinationOf` reads a captured connection's original destination, as the pod's redirect keeps it. */
export function createForwarder(nsFd: number, destinationOf: (client: Socket) => Destination | undefined): Forwarder {
  const counters: ForwardCounters = { opened: 0, closed: 0, failed: 0, sent: 0, received: 0 };
  return {
    counters,
    handle(client: Socket): void {
      const dst = destinationOf(client);
      if (!dst) {
        counters.failed++;
        client.destroy();
        return;
      }
      const upstream = new Socket({ fd: tcpSocketIn(nsFd, { mark: agentMark }), allowHalfOpen: true });
      counters.opened++;
      upstream.connect(dst.port, dst.ip);
      // Bytes are counted from the sockets' own totals when the connection ends, not per chunk.
      let connected = false;
      upstream.once('connect', () => (connected = true));
      const done = (err?: Error | null) => {
        if (!err) return;
        if (!connected && !upstream.destroyed) counters.failed++;
        client.destroy();
        upstream.destroy();
      };
      pipeline(client, upstream, done);
      pipeline(upstream, client, done);
      let closedSides = 0;
      const closed = () => {
        if (++closedSides < 2) return;
        counters.closed++;
        counters.sent += upstream.bytesWritten;
        counters.received += upstream.bytesRead;
      };
      client.once('close', closed);
      upstream.once('close', closed);
    },
  };
}
