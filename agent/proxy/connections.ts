// The proxied connections this agent holds: what each one is (identities, addresses, the policy
// decision), its byte counts, read from the sockets' own totals rather than counted per chunk, and
// its end; and the connections it refused or could not forward, recorded through the same events.
// Telemetry (Istio's TCP metrics, the access log) and the live policy re-check read from here; the
// data path only registers a connection and says when it ends, or that it never began.
//
// Byte directions, named once for every reader (metrics, access log, query API): `request` is what
// the client sent towards the server, `response` what came back. Istio names them from the proxy's
// side facing the client (Envoy's BYTES_RECEIVED / BYTES_SENT, ztunnel's src/copy.rs counting
// downstream-to-upstream as received): `received` is the request, `sent` the response, whichever
// end reports (istio_tcp_received_bytes_total, the access log's bytes_received, a pod's `received`).

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
  /** HBONE (mutual TLS) or plain TCP on the wire; ztunnel's SecurityPolicy calls the latter `unknown` (src/proxy/metrics.rs). */
  security: 'mutual_tls' | 'unknown';
  /** The authorization decision that let it in (inbound), e.g. `ALLOW policy shop/allow-web rule 0`. */
  decision?: string;
}

/**
 * How a connection ended, as ztunnel's ResponseFlags label it (src/proxy/metrics.rs): `-` for one
 * that ran, DENY for an authorization refusal (at the start, or later by a policy change), CONNECT
 * when the upstream could not be reached, and ztunnel's finer causes of a failed HBONE tunnel.
 */
export type ResponseFlags = '-' | 'DENY' | 'CONNECT' | 'TLS_FAILURE' | 'H2_HANDSHAKE_FAILURE' | 'IDENTITY_ERROR';

/** Byte totals as the sockets count them, by direction (see the top of this file). */
export interface ByteSource {
  /** Client to server: Istio's `received`. */
  request(): number;
  /** Server to client: Istio's `sent`. */
  response(): number;
}

export interface TrackedConnection extends ConnectionInfo {
  id: number;
  startedAt: number;
  bytes: ByteSource;
  /** What telemetry reported so far, so that a scrape adds only the increase. */
  reportedRequest: number;
  reportedResponse: number;
  /** `-` while it runs; DENY once a policy change ends it. */
  responseFlags: ResponseFlags;
  /** Ends the connection now (a policy change denies it). */
  terminate(reason: string, flags?: ResponseFlags): void;
  closedReason?: string;
}

export interface ConnectionEvents {
  opened(c: TrackedConnection): void;
  closed(c: TrackedConnection, durationMs: number, error?: string): void;
  /** A connection refused (DENY) or not forwarded (a failure flag): opened and closed at once, no bytes. */
  refused?(c: ConnectionInfo, flags: Exclude<ResponseFlags, '-'>, reason: string): void;
}

export class ConnectionTable {
  private readonly live = new Map<number, TrackedConnection>();
  private nextId: number;

  /** `ids`: where this table's ids start and how they step, so that the worker threads' tables never share one. */
  constructor(
    private readonly events: ConnectionEvents,
    private readonly ids = { first: 1, step: 1 },
  ) {
    this.nextId = ids.first;
  }

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
      id: (this.nextId += this.ids.step) - this.ids.step,
      startedAt: performance.now(),
      bytes,
      reportedRequest: 0,
      reportedResponse: 0,
      responseFlags: '-',
      terminate: (reason: string, flags?: ResponseFlags) => {
        c.closedReason ??= reason;
        if (flags) c.responseFlags = flags;
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

  /**
   * Records a connection the agent refused or could not forward, with what it knew of it then, as
   * ztunnel's ConnectionResult records one that ends in an error: opened and closed at once.
   */
  refuse(info: ConnectionInfo, flags: Exclude<ResponseFlags, '-'>, reason: string): void {
    this.events.refused?.(info, flags, reason);
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

/** Byte totals from the upstream socket: what it wrote is the request, what it read the response. */
export function socketBytes(upstream: Socket): ByteSource {
  return { request: () => upstream.bytesWritten, response: () => upstream.bytesRead };
}

/** The same from the client's socket: what it read is the request. */
export function clientSocketBytes(client: Socket): ByteSource {
  return { request: () => client.bytesRead, response: () => client.bytesWritten };
}

/** A closed connection as the access log and the query API's `connections` topic tell it. */
export function closedFields(c: TrackedConnection, durationMs: number, error?: string) {
  return {
    event: 'closed',
    ...accessFields(c),
    decision: c.decision,
    response_flags: c.responseFlags,
    // Istio's directions (the top of this file): received is the request, sent the response.
    bytes_received: c.bytes.request(),
    bytes_sent: c.bytes.response(),
    duration_ms: Math.round(durationMs),
    ...(error ? { error } : {}),
  };
}

/** A connection the agent refused or could not forward, as the access log and the query API tell it. */
export function refusedFields(c: ConnectionInfo, flags: ResponseFlags, reason: string) {
  return { event: flags === 'DENY' ? 'denied' : 'failed', reason, ...accessFields(c), decision: c.decision, response_flags: flags };
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
