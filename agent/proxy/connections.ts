// The proxied connections this agent holds: what each one is (identities, addresses, the policy
// decision), its byte counts, read from the sockets' own totals rather than counted per chunk, and
// its end. Telemetry (Istio's TCP metrics, the access log) and the live policy re-check read from
// here; the data path only registers a connection and says when it ends.

import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WorkloadEntry, ServiceEntry } from '../../shared/protocol/config.js';
import { connectionClosed, connectionOpened } from '../telemetry/events.js';

export interface Peer {
  ip: string;
  port?: number;
  workload?: WorkloadEntry;
  /** SPIFFE ID without the scheme (Istio's principal form), when known. */
  principal?: string;
}

export interface ConnectionInfo {
  /** `source`: this agent holds the client side (outbound); `destination`: the server side. */
  reporter: 'source' | 'destination';
  source: Peer;
  destination: Peer;
  service?: ServiceEntry;
  /** HBONE (mutual TLS) or plain TCP on the wire between the agents. */
  security: 'mutual_tls' | 'none';
  /** The authorization decision that let it in (inbound), e.g. `ALLOW policy shop/allow-web rule 0`. */
  decision?: string;
}

/** Byte totals as the sockets count them; `sent` is client to server. */
export interface ByteSource {
  sent(): number;
  received(): number;
}

export interface TrackedConnection extends ConnectionInfo {
  id: number;
  startedAt: number;
  bytes: ByteSource;
  /** What telemetry reported so far, so that a scrape adds only the increase. */
  reportedSent: number;
  reportedReceived: number;
  /** Ends the connection now (a policy change denies it). */
  terminate(reason: string): void;
  closedReason?: string;
}

export interface ConnectionEvents {
  opened(c: TrackedConnection): void;
  closed(c: TrackedConnection, durationMs: number, error?: string): void;
}

export class ConnectionTable {
  private readonly live = new Map<number, TrackedConnection>();
  private nextId = 1;

  constructor(private readonly events: ConnectionEvents) {}

  get size(): number {
    return this.live.size;
  }

  values(): IterableIterator<TrackedConnection> {
    return this.live.values();
  }

  /**
   * Registers a connection whose client side is `client` and upstream side `upstream`; it ends when
   * both are closed. Returns the record, whose `terminate` destroys both sides.
   */
  track(info: ConnectionInfo, client: Duplex, upstream: Duplex, bytes: ByteSource): TrackedConnection {
    const c: TrackedConnection = {
      ...info,
      id: this.nextId++,
      startedAt: performance.now(),
      bytes,
      reportedSent: 0,
      reportedReceived: 0,
      terminate: (reason: string) => {
        c.closedReason ??= reason;
        client.destroy();
        upstream.destroy();
      },
    };
    this.live.set(c.id, c);
    this.events.opened(c);
    if (connectionOpened.hasSubscribers) connectionOpened.publish({ connection: c });
    let open = 2;
    let error: string | undefined;
    const onClose = () => {
      if (--open > 0) return;
      this.live.delete(c.id);
      const durationMs = performance.now() - c.startedAt;
      const reason = c.closedReason ?? error;
      this.events.closed(c, durationMs, reason);
      if (connectionClosed.hasSubscribers) connectionClosed.publish({ connection: c, durationMs, ...(reason ? { error: reason } : {}) });
    };
    const onError = (err: Error) => (error ??= (err as NodeJS.ErrnoException).code ?? err.message);
    client.once('close', onClose).on('error', onError);
    upstream.once('close', onClose).on('error', onError);
    // A side that closed before this call (a client that reset while the upstream was connecting)
    // will never emit 'close' again: count it now, and end the other side, which has no peer left.
    const clientGone = closeEmitted(client);
    const upstreamGone = closeEmitted(upstream);
    if (clientGone || upstreamGone) {
      c.closedReason ??= `${clientGone ? 'client' : 'upstream'} closed before the connection was established`;
      if (clientGone) onClose();
      if (upstreamGone) onClose();
      c.terminate(c.closedReason);
    }
    return c;
  }
}

/**
 * Whether `s` has already emitted 'close'. Not `s.closed`: that turns true when destroy() runs,
 * a tick before the event, which a listener added in between still receives.
 */
function closeEmitted(s: Duplex): boolean {
  const state = s as Duplex & { _readableState?: { closeEmitted?: boolean }; _writableState?: { closeEmitted?: boolean } };
  return state._readableState?.closeEmitted === true || state._writableState?.closeEmitted === true;
}

/** Byte totals of a TCP socket pair: what the upstream socket wrote is what the client sent. */
export function socketBytes(upstream: Socket): ByteSource {
  return { sent: () => upstream.bytesWritten, received: () => upstream.bytesRead };
}

/** The same from the client's socket: what it read is what the client sent. */
export function clientSocketBytes(client: Socket): ByteSource {
  return { sent: () => client.bytesRead, received: () => client.bytesWritten };
}

/** A closed connection as the access log and the query API's `connections` topic tell it. */
export function closedFields(c: TrackedConnection, durationMs: number, error?: string) {
  return {
    event: 'closed',
    ...accessFields(c),
    decision: c.decision,
    bytes_sent: c.bytes.sent(),
    bytes_received: c.bytes.received(),
    duration_ms: Math.round(durationMs),
    ...(error ? { error } : {}),
  };
}

/** The fields of an access-log line that describe a connection (its end adds bytes and duration). */
export function accessFields(c: ConnectionInfo) {
  const who = (w: WorkloadEntry | undefined) => (w ? `${w.namespace}/${w.name}` : undefined);
  return {
    reporter: c.reporter,
    source: `${c.source.ip}${c.source.port ? `:${c.source.port}` : ''}`,
    source_workload: who(c.source.workload),
    source_principal: c.source.principal,
    destination: `${c.destination.ip}:${c.destination.port}`,
    destination_workload: who(c.destination.workload),
    destination_principal: c.destination.principal,
    destination_service: c.service ? `${c.service.namespace}/${c.service.name}` : undefined,
    connection_security_policy: c.security,
  };
}
