// The node's HBONE listener (port 15008): mutual TLS 1.3 with the client's SVID checked by our own
// validator, HTTP/2 with bounded sessions and streams, and CONNECT requests handed to the caller as
// tunnels. What to do with a tunnel (policy, dialing the pod, piping) is the caller's; this module
// only refuses what is malformed or unauthenticated, and counts every refusal by reason.

import http2, { type IncomingHttpHeaders } from 'node:http2';
import type { X509Certificate } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, type SecureContext, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { once } from 'node:events';
import { listenerHere } from '../../native/netns.js';
import type { Logger } from '../log.js';
import { type Identity, spiffeId } from '../identity/spiffe.js';
import { SvidInvalid, type SvidFailure, type TrustBundle, validateSvid } from '../identity/svid.js';
import { type Authority, defaultH2Implementation, defaultSessionWindow, defaultStreamWindow, type H2Implementation, type HboneServerStream, maxSessionMemoryMb, parseAuthority, peerChain } from './protocol.js';
import { H2Session } from './h2/session.js';

export interface HboneServerLimits {
  /** Streams one session may have open at once, announced in SETTINGS; nghttp2 refuses the rest. */
  maxConcurrentStreams: number;
  /** TCP connections (handshaking or established); more are dropped at accept. */
  maxSessions: number;
  handshakeTimeoutMs: number;
  /** A session with no stream for this long is sent GOAWAY. */
  idleTimeoutMs: number;
  streamWindowBytes: number;
  sessionWindowBytes: number;
  /**
   * Streams a client may reset in a burst, and per second after it, before its session is cut
   * with ENHANCE_YOUR_CALM. Below nghttp2's own guard (1,000, then 33/s), which stops reading the
   * session but leaves it open, holding a session slot until the idle timeout.
   */
  resetBurst: number;
  resetsPerSecond: number;
}

export const defaultServerLimits: HboneServerLimits = {
  maxConcurrentStreams: 100,
  maxSessions: 10_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  streamWindowBytes: defaultStreamWindow,
  sessionWindowBytes: defaultSessionWindow,
  resetBurst: 500,
  resetsPerSecond: 30,
};

export type HboneRefusal = 'no-certificate' | SvidFailure | 'handshake-timeout' | 'tls-error' | 'not-h2' | 'too-many-sessions' | 'stream-flood' | 'method-not-allowed' | 'bad-authority';

const refusals: HboneRefusal[] = ['no-certificate', 'malformed', 'untrusted-chain', 'expired', 'not-yet-valid', 'is-ca', 'bad-key-usage', 'no-uri-san', 'several-uri-sans', 'not-spiffe', 'unknown-trust-domain', 'handshake-timeout', 'tls-error', 'not-h2', 'too-many-sessions', 'stream-flood', 'method-not-allowed', 'bad-authority'];

export interface HboneServerCounters {
  /** TLS handshakes completed, and how many of them resumed a session. */
  handshakes: number;
  resumed: number;
  /** HTTP/2 sessions accepted (client SVID valid), and open now. */
  sessions: number;
  activeSessions: number;
  /** CONNECT requests handed to the caller. */
  tunnels: number;
  /** Streams that ended with an error (a reset from the client, mostly). */
  streamErrors: number;
  sessionErrors: number;
  refused: Record<HboneRefusal, number>;
}

/** One CONNECT request from an authenticated peer, for the caller to accept (200) or refuse. */
export interface HboneTunnel {
  peer: Identity;
  peerUri: string;
  /** The IPv4 address the tunnel's TLS connection came from (the peer node or waypoint); undefined once the socket is gone. */
  peerAddress: string | undefined;
  authority: Authority;
  headers: IncomingHttpHeaders;
  stream: HboneServerStream;
  /** 200 opens the tunnel (then pipe `stream`); any other status ends the stream. Later calls do nothing. */
  respond(status: number): void;
}

export interface HboneServerOptions {
  /** The certificate presented: PEM key and chain, or a SecureContext picked per handshake by SNI. */
  key?: string;
  cert?: string;
  secureContext?: SecureContext | ((servername: string) => SecureContext | undefined);
  trustBundle: () => TrustBundle;
  limits?: Partial<HboneServerLimits>;
  onTunnel(tunnel: HboneTunnel): void;
  log?: Logger;
  /** The HTTP/2 that serves the sessions (protocol.ts). */
  h2?: H2Implementation;
}

/** What the server uses of a session, which Node's ServerHttp2Session and ambit's H2Session both have. */
interface ServerSession extends EventEmitter {
  readonly socket: TLSSocket | null | undefined;
  readonly closed: boolean;
  readonly destroyed: boolean;
  setLocalWindowSize(size: number): void;
  goaway(code?: number): void;
  close(): void;
  destroy(): void;
}

export interface HboneServer {
  counters: HboneServerCounters;
  /** The underlying TLS server, for its events ('secureConnection' counts handshakes, 'session' gives each session). */
  server: TlsServer;
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Stops accepting, sends GOAWAY to every session, and destroys what is still open after `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

type PeerCheck = { identity: Identity; uri: string } | { refused: HboneRefusal; message: string };
const kPeer = Symbol('hbone.peer');

export function createHboneServer(o: HboneServerOptions): HboneServer {
  const limits = { ...defaultServerLimits, ...o.limits };
  const counters: HboneServerCounters = {
    handshakes: 0,
    resumed: 0,
    sessions: 0,
    activeSessions: 0,
    tunnels: 0,
    streamErrors: 0,
    sessionErrors: 0,
    refused: Object.fromEntries(refusals.map((r) => [r, 0])) as Record<HboneRefusal, number>,
  };
  const pick = o.secureContext;
  const tlsOptions = {
    ...(o.key ? { key: o.key, cert: o.cert } : {}),
    ...(pick ? { SNICallback: (name: string, cb: (err: Error | null, ctx?: SecureContext) => void) => cb(null, typeof pick === 'function' ? pick(name) : pick) } : {}),
    // The client's SVID is checked below by the project's validator: SPIFFE leaves have no DNS
    // name, and the reason for a refusal is worth a label.
    requestCert: true,
    rejectUnauthorized: false,
    minVersion: 'TLSv1.3' as const,
    handshakeTimeout: limits.handshakeTimeoutMs,
  };
  const ambit = (o.h2 ?? defaultH2Implementation) === 'ambit';
  const server: TlsServer = ambit
    ? createTlsServer({ ...tlsOptions, ALPNProtocols: ['h2'] })
    : http2.createSecureServer({
        ...tlsOptions,
        allowHTTP1: false,
        maxSessionMemory: maxSessionMemoryMb,
        settings: { maxConcurrentStreams: limits.maxConcurrentStreams, initialWindowSize: limits.streamWindowBytes, enablePush: false, maxHeaderListSize: 16 * 1024 },
      });
  if (ambit) {
    // What http2.createSecureServer does for Node's sessions: a session per h2 connection, or
    // 'unknownProtocol' for a client that did not agree to h2.
    server.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol !== 'h2') return void server.emit('unknownProtocol', socket);
      const session = new H2Session(socket, 'server', { streamWindow: limits.streamWindowBytes, sessionWindow: limits.sessionWindowBytes, maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: 16 * 1024 });
      server.emit('session', session);
    });
  }
  server.maxConnections = limits.maxSessions;
  const sessions = new Set<ServerSession>();
  // A resumed TLS session carries the client's leaf but not its intermediates: keep those seen in
  // full handshakes (as DER: parsed certificates cost kilobytes each) by the leaf's fingerprint, so
  // a resumption is validated against today's bundle too.
  const intermediates = new Map<string, Buffer[]>();
  const log = o.log?.child({ component: 'hbone-server' });

  const refuse = (reason: HboneRefusal, message: string, remote?: string) => {
    counters.refused[reason]++;
    log?.warn({ reason, remote }, `HBONE connection refused: ${message}`);
  };

  server.on('drop', () => counters.refused['too-many-sessions']++);
  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const timeout = err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT';
    refuse(timeout ? 'handshake-timeout' : 'tls-error', err.message, socket.remoteAddress);
    // A listener here leaves the socket open (Node's http2 server destroys it in its own).
    socket.destroy();
  });
  server.on('unknownProtocol', (socket: TLSSocket) => {
    refuse('not-h2', `ALPN ${socket.alpnProtocol || 'none'} is not h2`, socket.remoteAddress);
    socket.destroy();
  });
  // Runs before http2's own listener turns the socket into a session, so the session handler
  // below finds the verdict on the socket.
  server.prependListener('secureConnection', (socket: TLSSocket) => {
    counters.handshakes++;
    const resumed = socket.isSessionReused();
    if (resumed) counters.resumed++;
    (socket as TLSSocket & { [kPeer]?: PeerCheck })[kPeer] = checkPeer(socket, resumed);
  });
  server.on('session', (session: ServerSession) => {
    const socket = session.socket as TLSSocket & { [kPeer]?: PeerCheck };
    const peer = socket[kPeer] ?? { refused: 'tls-error', message: 'the session has no completed handshake' };
    if ('refused' in peer) {
      refuse(peer.refused, peer.message, socket.remoteAddress);
      // INADEQUATE_SECURITY tells the client it was its certificate, not the network. A stream
      // that arrives before the socket closes is refused, with a listener so its reset cannot throw.
      session.on('error', () => undefined);
      session.on('stream', refuseStream);
      return cut(session, http2.constants.NGHTTP2_INADEQUATE_SECURITY);
    }
    session.on('error', () => counters.sessionErrors++);
    serve(session, peer.identity, peer.uri);
  });
  server.on('sessionError', () => undefined);

  function checkPeer(socket: TLSSocket, resumed: boolean): PeerCheck {
    const presented = peerChain(socket);
    const leaf = presented[0];
    if (!leaf) return { refused: 'no-certificate', message: 'the client presented no certificate' };
    const leafKey = leaf.fingerprint256;
    const known = resumed ? intermediates.get(leafKey) : undefined;
    const chain: (X509Certificate | Buffer)[] = known ? [leaf, ...known] : presented;
    try {
      const identity = validateSvid(chain, o.trustBundle());
      if (!resumed) {
        if (intermediates.size >= 10_000) intermediates.delete(intermediates.keys().next().value!);
        intermediates.set(leafKey, presented.slice(1).map((c) => c.raw));
      }
      return { identity, uri: spiffeId(identity) };
    } catch (err) {
      if (err instanceof SvidInvalid) return { refused: err.reason, message: err.message };
      return { refused: 'malformed', message: (err as Error).message };
    }
  }

  function serve(session: ServerSession, peer: Identity, peerUri: string): void {
    counters.sessions++;
    counters.activeSessions++;
    sessions.add(session);
    session.setLocalWindowSize(limits.sessionWindowBytes);
    // Read once per session: a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d.
    const remote = session.socket?.remoteAddress;
    const peerAddress = remote?.startsWith('::ffff:') ? remote.slice(7) : remote;
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      idle = setTimeout(() => {
        session.close();
        // A session whose peer is gone may never finish a graceful close.
        setTimeout(() => session.destroy(), 5000).unref();
      }, limits.idleTimeoutMs);
      idle.unref();
    };
    let flooded = false;
    let resetBudget = limits.resetBurst;
    let budgetAt = Date.now();
    // 'aborted' on a stream not yet destroyed is the peer's RST_STREAM; our own resets destroy first.
    const onAborted = function (this: HboneServerStream) {
      if (this.destroyed || flooded) return;
      const now = Date.now();
      resetBudget = Math.min(limits.resetBurst, resetBudget + ((now - budgetAt) * limits.resetsPerSecond) / 1000) - 1;
      budgetAt = now;
      if (resetBudget >= 0) return;
      flooded = true;
      refuse('stream-flood', `${peerUri} reset streams faster than ${limits.resetsPerSecond}/s after a burst of ${limits.resetBurst}`, session.socket?.remoteAddress);
      cut(session, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    };
    armIdle();
    session.once('close', () => {
      clearTimeout(idle);
      counters.activeSessions--;
      sessions.delete(session);
    });
    // Per session, not per stream: 'close' is emitted once.
    const onStreamError = () => counters.streamErrors++;
    const onStreamClose = () => {
      if (--open === 0 && !session.closed && !session.destroyed) armIdle();
    };
    session.on('stream', (stream: HboneServerStream, headers: IncomingHttpHeaders) => {
      if (open++ === 0) clearTimeout(idle);
      // Always listened to: a reset can arrive before the caller has piped the stream.
      stream.on('error', onStreamError);
      stream.once('aborted', onAborted);
      stream.on('close', onStreamClose);
      if (headers[':method'] !== 'CONNECT') return reject(stream, 405, 'method-not-allowed');
      const authority = parseAuthority(headers[':authority']);
      if (!authority) return reject(stream, 400, 'bad-authority');
      counters.tunnels++;
      const tunnel = new Tunnel(peer, peerUri, peerAddress, authority, headers, stream);
      try {
        o.onTunnel(tunnel);
      } catch (err) {
        log?.error({ err, peer: peerUri }, 'the HBONE tunnel handler threw');
        respond(stream, 500);
      }
    });
  }

  function reject(stream: HboneServerStream, status: number, reason: HboneRefusal): void {
    counters.refused[reason]++;
    respond(stream, status);
  }

  let closed: Promise<unknown> | undefined;
  return {
    counters,
    server,
    async listen(port, host) {
      // SO_REUSEPORT: during a rolling upgrade the new agent listens beside the draining one.
      server.listen({ fd: listenerHere(host, port, { reusePort: true }) });
      await once(server, 'listening');
      return server.address() as AddressInfo;
    },
    // Callable again (a drain, then the final close with a shorter grace): the listener closes once.
    async close(graceMs = 5000) {
      closed ??= server.listening ? once(server, 'close') : Promise.resolve();
      if (server.listening) server.close();
      for (const s of sessions) s.close();
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
      }, graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
    },
  };
}

class Tunnel implements HboneTunnel {
  constructor(
    readonly peer: Identity,
    readonly peerUri: string,
    readonly peerAddress: string | undefined,
    readonly authority: Authority,
    readonly headers: IncomingHttpHeaders,
    readonly stream: HboneServerStream,
  ) {}

  respond(status: number): void {
    respond(this.stream, status);
  }
}

function refuseStream(stream: HboneServerStream): void {
  stream.on('error', () => undefined);
  stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
}

/** GOAWAY with `code`, then the socket closed: destroy(err, code) in the same turn closes it before the GOAWAY is written. */
function cut(session: ServerSession, code: number): void {
  session.goaway(code);
  setImmediate(() => session.destroy());
}

function respond(stream: HboneServerStream, status: number): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  if (status === 200) {
    stream.respond({ ':status': 200 });
    return;
  }
  stream.respond({ ':status': status }, { endStream: true });
  // Nothing the client still sends on a refused stream is wanted; let it drain, not pile up.
  stream.resume();
}
