// The client side of HBONE: HTTP/2 sessions to other nodes' port 15008, pooled by (source identity,
// expected peer identity, node address), and one CONNECT stream per tunnel. A tunnel gets a stream on
// a session with room under the peer's SETTINGS_MAX_CONCURRENT_STREAMS; another session is dialed
// only when all are full, up to a cap. Sessions are PINGed, and dropped when the peer stops answering
// or its node leaves the cluster. Dialing and checking the server is dial.ts's.

import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { EventEmitter } from 'node:events';
import type { TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import type { TrustBundle } from '../identity/svid.js';
import { NodeDialer, type NodeDialRequest } from './dial.js';
import { defaultH2Implementation, defaultSessionWindow, defaultStreamWindow, type H2Implementation, HboneConnectFailed, HboneConnectRefused, hbonePort, type HboneStream, maxSessionMemoryMb } from './protocol.js';
import { H2Session } from './h2/session.js';

export interface HbonePoolOptions {
  trustBundle: () => TrustBundle;
  /** Sessions to one key at most; beyond, tunnels wait for a free stream. Default 8. */
  maxSessionsPerKey?: number;
  /** A session with no stream for this long is closed. Default 60 s (shorter than the server's, so the client closes first). */
  idleTimeoutMs?: number;
  /** From the call to the 200 (TCP, TLS and the CONNECT answer). Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * A PING on every session this often, so that a peer gone without a FIN or RST (a node that lost
   * power, a NAT that forgot the flow) is noticed. Default 10 s, as ztunnel.
   */
  keepaliveIntervalMs?: number;
  /** A PING unanswered this long drops the session and resets its tunnels. Default 20 s, as ztunnel. */
  keepaliveTimeoutMs?: number;
  streamWindowBytes?: number;
  sessionWindowBytes?: number;
  /** Makes the TCP socket to a node, connecting or connected (the agent's is in the pod's namespace, with its mark). */
  createConnection?: (host: string, port: number) => Socket;
  /** The HTTP/2 that carries the sessions (protocol.ts). */
  h2?: H2Implementation;
}

/** What the pool uses of a client session, which Node's ClientHttp2Session and ambit's H2Session both have. */
interface ClientSession extends EventEmitter {
  readonly destroyed: boolean;
  request(headers: OutgoingHttpHeaders, options: { endStream: boolean }): HboneStream;
  ping(cb: (err: Error | null) => void): boolean;
  setLocalWindowSize(size: number): void;
  close(): void;
  destroy(): void;
}

export interface HboneConnectRequest extends NodeDialRequest {
  /** Destination pod `ip:port`. */
  authority: string;
  headers?: OutgoingHttpHeaders;
}

export interface HbonePoolCounters {
  /** TLS handshakes completed (and of them, resumed), HTTP/2 sessions established, CONNECT streams opened. */
  handshakes: number;
  resumed: number;
  sessionsOpened: number;
  sessionsClosed: number;
  streamsOpened: number;
  tunnels: number;
  refused: number;
  failed: number;
  /** PINGs answered, and sessions dropped because one was not. */
  keepalivePings: number;
  keepaliveTimeouts: number;
}

interface Waiter {
  req: HboneConnectRequest;
  resolve(stream: HboneStream): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  done: boolean;
  /** Once refused by a GOAWAY (so unprocessed, RFC 9113 section 6.8), a tunnel is tried again on another session. */
  retried: boolean;
  stream?: HboneStream;
}

interface PooledSession {
  pool: HbonePool;
  entry: Entry;
  node: string;
  h2?: ClientSession;
  /** Remote SETTINGS seen: until then one stream only, so that a burst does not overrun an unknown limit. */
  settled: boolean;
  limit: number;
  /** Streams assigned, open or waiting for the session to be ready. */
  active: number;
  starters: Waiter[];
  gone: boolean;
  cancel?: () => void;
  failure?: Error;
  idle?: NodeJS.Timeout;
  /** The next PING, or the deadline of the one in flight. */
  keepalive?: NodeJS.Timeout;
}

/**
 * A tunnel's stream carries its waiter and session, so that one set of handlers serves every
 * stream instead of three closures per tunnel. The session is the stream's own: a retried waiter
 * moves to another session while its refused stream still has to release the first.
 */
const kWaiter = Symbol('hbone.waiter');
const kSession = Symbol('hbone.session');
type TunnelStream = HboneStream & { [kWaiter]: Waiter; [kSession]: PooledSession };

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;

interface Entry {
  key: string;
  nodeAddress: string;
  sessions: PooledSession[];
  queue: Waiter[];
}

export class HbonePool {
  readonly counters: HbonePoolCounters = { handshakes: 0, resumed: 0, sessionsOpened: 0, sessionsClosed: 0, streamsOpened: 0, tunnels: 0, refused: 0, failed: 0, keepalivePings: 0, keepaliveTimeouts: 0 };
  private readonly entries = new Map<string, Entry>();
  private readonly dialer: NodeDialer;
  private readonly maxSessions: number;
  private readonly idleMs: number;
  private readonly timeoutMs: number;
  private readonly keepaliveIntervalMs: number;
  private readonly keepaliveTimeoutMs: number;
  private closed = false;

  constructor(private readonly o: HbonePoolOptions) {
    this.maxSessions = o.maxSessionsPerKey ?? 8;
    this.idleMs = o.idleTimeoutMs ?? 60_000;
    this.timeoutMs = o.connectTimeoutMs ?? 10_000;
    this.keepaliveIntervalMs = o.keepaliveIntervalMs ?? 10_000;
    this.keepaliveTimeoutMs = o.keepaliveTimeoutMs ?? 20_000;
    this.dialer = new NodeDialer({ trustBundle: o.trustBundle, createConnection: o.createConnection, handshakeTimeoutMs: this.timeoutMs, counters: this.counters });
  }

  /** A CONNECT tunnel to `authority` through the node, answered 200; its bytes are the destination's. */
  connect(req: HboneConnectRequest): Promise<HboneStream> {
    return new Promise((resolve, reject) => {
      const w: Waiter = { req, resolve, reject, done: false, retried: false, timer: undefined! };
      w.timer = setTimeout(() => this.fail(w, new HboneConnectFailed('timeout', `no answer from ${req.nodeAddress} to CONNECT ${req.authority} within ${this.timeoutMs} ms`)), this.timeoutMs);
      this.enqueue(w);
    });
  }

  private enqueue(w: Waiter, first = false): void {
    if (this.closed) return this.fail(w, new HboneConnectFailed('closed', 'the HBONE pool is closed'));
    const { req } = w;
    const key = `${req.identity} ${req.expectedIdentity ?? '*'} ${req.nodeAddress}:${req.nodePort ?? hbonePort}`;
    let entry = this.entries.get(key);
    if (!entry) this.entries.set(key, (entry = { key, nodeAddress: req.nodeAddress, sessions: [], queue: [] }));
    if (first) entry.queue.unshift(w);
    else entry.queue.push(w);
    this.drain(entry);
  }

  /**
   * Closes the sessions to every node whose address is not in `addresses` (nodes that left the
   * cluster), and fails the tunnels waiting for them. Tunnels open on them run to their end, or
   * until keepalive finds the node gone. Returns how many sessions were closed.
   */
  retainNodes(addresses: Iterable<string>): number {
    const keep = new Set(addresses);
    let closed = 0;
    for (const entry of [...this.entries.values()]) {
      if (keep.has(entry.nodeAddress)) continue;
      closed += this.closeEntry(entry, new HboneConnectFailed('closed', `the node at ${entry.nodeAddress} left the cluster`));
      if (this.entries.get(entry.key) === entry) this.entries.delete(entry.key);
    }
    return closed;
  }

  /** Fails the entry's waiting tunnels and sends GOAWAY on its sessions (open tunnels run to their end); returns how many. */
  private closeEntry(entry: Entry, err: Error): number {
    for (const w of entry.queue.splice(0)) this.fail(w, err);
    const sessions = [...entry.sessions];
    for (const s of sessions) {
      for (const w of s.starters.splice(0)) this.fail(w, err);
      this.remove(s);
      if (s.h2) s.h2.close();
      else s.cancel?.();
    }
    return sessions.length;
  }

  /** Sessions open or opening now. */
  sessionCount(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.sessions.length;
    return n;
  }

  /** Fails waiting tunnels and sends GOAWAY on every session; open tunnels run to their end. */
  close(): void {
    this.closed = true;
    const err = new HboneConnectFailed('closed', 'the HBONE pool is closed');
    for (const entry of this.entries.values()) this.closeEntry(entry, err);
    this.entries.clear();
    this.dialer.clear();
  }

  /** Hands queued tunnels, in order, to sessions with room, opening sessions while allowed. */
  private drain(entry: Entry): void {
    if (this.closed) return;
    while (entry.queue.length) {
      const w = entry.queue[0]!;
      if (w.done) {
        entry.queue.shift();
        continue;
      }
      let s: PooledSession | undefined;
      let unsettled = false;
      for (const x of entry.sessions) {
        if (x.active < x.limit) {
          s = x;
          break;
        }
        if (!x.settled) unsettled = true;
      }
      if (!s) {
        // While a session's limit is unknown, wait for it rather than dial more on a guess.
        if (entry.sessions.length >= this.maxSessions || unsettled) return;
        s = this.open(entry, w.req);
        // A dial that failed at once (no credentials, a socket factory that threw) failed the queue.
        if (s.gone) return;
      }
      entry.queue.shift();
      s.active++;
      clearTimeout(s.idle);
      if (s.h2) this.stream(s, w);
      else s.starters.push(w);
    }
  }

  private open(entry: Entry, req: HboneConnectRequest): PooledSession {
    const s: PooledSession = { pool: this, entry, node: `${req.nodeAddress}:${req.nodePort ?? hbonePort}`, settled: false, limit: 1, active: 0, starters: [], gone: false };
    entry.sessions.push(s);
    s.cancel = this.dialer.dial(req, (err, tls) => {
      delete s.cancel;
      if (s.gone) return void tls?.destroy();
      if (err) return this.abort(s, err);
      this.established(s, tls!);
    });
    return s;
  }

  private established(s: PooledSession, tls: TLSSocket): void {
    const streamWindow = this.o.streamWindowBytes ?? defaultStreamWindow;
    const h2: ClientSession =
      (this.o.h2 ?? defaultH2Implementation) === 'ambit'
        ? new H2Session(tls, 'client', { streamWindow, sessionWindow: this.o.sessionWindowBytes ?? defaultSessionWindow })
        : (http2.connect(`https://${s.node}`, {
            createConnection: () => tls,
            maxSessionMemory: maxSessionMemoryMb,
            settings: { enablePush: false, initialWindowSize: streamWindow },
          }) as unknown as ClientSession);
    s.h2 = h2;
    this.counters.sessionsOpened++;
    h2.once('connect', () => h2.setLocalWindowSize(this.o.sessionWindowBytes ?? defaultSessionWindow));
    h2.on('remoteSettings', (settings: { maxConcurrentStreams?: number }) => {
      s.settled = true;
      s.limit = settings.maxConcurrentStreams ?? 2 ** 32 - 1;
      this.drain(s.entry);
    });
    h2.on('goaway', (code: number) => {
      if (code === http2.constants.NGHTTP2_INADEQUATE_SECURITY) s.failure = new HboneConnectFailed('refused-certificate', `the node at ${s.node} refused our certificate (GOAWAY INADEQUATE_SECURITY)`);
      // No new streams on it; the streams already open finish.
      this.remove(s);
    });
    h2.on('error', (err: Error) => (s.failure ??= new HboneConnectFailed('session', `the HTTP/2 session with ${s.node} failed: ${err.message}`, err)));
    h2.once('close', () => {
      this.counters.sessionsClosed++;
      clearTimeout(s.idle);
      clearTimeout(s.keepalive);
      this.remove(s);
    });
    this.keepalive(s, h2);
    for (const w of s.starters.splice(0)) this.stream(s, w);
  }

  /**
   * PINGs `h2` every interval for as long as it lives, in the pool or draining (its open tunnels
   * deserve the check too). One PING in flight at a time; no answer within the timeout destroys the
   * session, which resets its streams and so the tunnels' clients.
   */
  private keepalive(s: PooledSession, h2: ClientSession): void {
    const onAnswer = (err: Error | null) => {
      clearTimeout(s.keepalive);
      // An error is the session closing under the PING: its 'close' ends the keepalive.
      if (err || h2.destroyed) return;
      this.counters.keepalivePings++;
      s.keepalive = setTimeout(ping, this.keepaliveIntervalMs).unref();
    };
    const unanswered = () => {
      if (h2.destroyed) return;
      this.counters.keepaliveTimeouts++;
      s.failure ??= new HboneConnectFailed('session', `the node at ${s.node} did not answer a PING within ${this.keepaliveTimeoutMs} ms`);
      this.remove(s);
      h2.destroy();
    };
    const ping = () => {
      if (h2.destroyed) return;
      try {
        h2.ping(onAnswer);
      } catch {
        return; // the session is closing
      }
      s.keepalive = setTimeout(unanswered, this.keepaliveTimeoutMs).unref();
    };
    s.keepalive = setTimeout(ping, this.keepaliveIntervalMs).unref();
  }

  private stream(s: PooledSession, w: Waiter): void {
    if (w.done) return this.release(s);
    const { req } = w;
    let stream: TunnelStream;
    try {
      stream = s.h2!.request({ ...req.headers, ':method': 'CONNECT', ':authority': req.authority }, { endStream: false }) as TunnelStream;
    } catch (err) {
      this.release(s);
      // The session began closing under us (a GOAWAY from a draining agent): nothing was sent on
      // it, so the tunnel is tried once more on another session.
      if (!w.retried) {
        w.retried = true;
        this.remove(s);
        return this.enqueue(w, true);
      }
      return this.fail(w, new HboneConnectFailed('session', `could not open a stream to ${s.node}: ${(err as Error).message}`, err));
    }
    this.counters.streamsOpened++;
    w.stream = stream;
    stream[kWaiter] = w;
    stream[kSession] = s;
    // Each is emitted once; the error listener stays after the answer: a reset arriving before
    // the caller pipes the stream must not throw.
    stream.on('close', HbonePool.onStreamClose);
    stream.on('error', HbonePool.onStreamError);
    stream.on('response', HbonePool.onStreamResponse);
  }

  private static onStreamClose(this: TunnelStream): void {
    const s = this[kSession];
    s.pool.release(s);
  }

  private static onStreamError(this: TunnelStream, err: Error): void {
    const w = this[kWaiter];
    const s = this[kSession];
    if (w.done) return;
    if (!w.retried && this.rstCode === NGHTTP2_REFUSED_STREAM) {
      w.retried = true;
      delete w.stream;
      return s.pool.enqueue(w, true);
    }
    s.pool.fail(w, s.failure ?? new HboneConnectFailed('stream', `the CONNECT stream to ${w.req.authority} via ${s.node} failed: ${err.message}`, err));
  }

  private static onStreamResponse(this: TunnelStream, headers: IncomingHttpHeaders): void {
    const w = this[kWaiter];
    const s = this[kSession];
    const status = Number(headers[':status']);
    if (status === 200) {
      if (w.done) return void this.close(NGHTTP2_CANCEL);
      w.done = true;
      clearTimeout(w.timer);
      s.pool.counters.tunnels++;
      return w.resolve(this);
    }
    s.pool.counters.refused++;
    this.resume();
    this.end();
    s.pool.fail(w, new HboneConnectRefused(status, w.req.authority, s.node));
  }

  /** A stream of `s` ended: its slot is free for a queued tunnel, or the idle clock starts. */
  private release(s: PooledSession): void {
    s.active--;
    if (s.gone) return;
    if (s.active === 0) {
      clearTimeout(s.idle);
      s.idle = setTimeout(() => {
        this.remove(s);
        s.h2?.close();
      }, this.idleMs);
      s.idle.unref();
    }
    this.drain(s.entry);
  }

  /** Takes `s` out of the pool (no new streams); queued tunnels go elsewhere. */
  private remove(s: PooledSession): void {
    if (s.gone) return;
    s.gone = true;
    clearTimeout(s.idle);
    const list = s.entry.sessions;
    list.splice(list.indexOf(s), 1);
    this.drain(s.entry);
    if (list.length === 0 && s.entry.queue.every((w) => w.done) && this.entries.get(s.entry.key) === s.entry) this.entries.delete(s.entry.key);
  }

  /** A session that failed before it was established: its tunnels fail, and so do those queued behind it. */
  private abort(s: PooledSession, err: Error): void {
    for (const w of [...s.starters.splice(0), ...s.entry.queue.splice(0)]) this.fail(w, err);
    s.active = 0;
    this.remove(s);
  }

  private fail(w: Waiter, err: Error): void {
    if (w.done) return;
    w.done = true;
    clearTimeout(w.timer);
    this.counters.failed++;
    if (w.stream && !w.stream.destroyed) w.stream.close(NGHTTP2_CANCEL);
    w.reject(err);
  }
}
