// How the waypoint reaches a backend endpoint (a pod's ip:port): over HBONE to the endpoint's node
// (a CONNECT stream on a pooled mutual-TLS session, presenting the waypoint's own identity, with
// `Forwarded: for=<waypoint>;host=<service>` so the destination names the Service in its telemetry),
// or in plain TCP to a pod outside the mesh. HTTP/1.1 requests reuse tunnels through one keep-alive
// http.Agent per endpoint; HTTP/2 and gRPC requests share one HTTP/2 session per endpoint.
// Counts the tunnels that end in a reset; exporting the count is telemetry/metrics.ts's.

import http, { type ClientRequestArgs } from 'node:http';
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { spiffeId } from '../../shared/identity/spiffe.js';
import { enrollLabels, isEnrolled } from '../../shared/enrollment.js';
import type { HbonePool } from '../../shared/hbone/pool.js';
import { serverName } from '../../shared/hbone/protocol.js';
import { serviceHostname, type ServiceEntry, type WorkloadEntry, workloadIdentity } from '../../shared/protocol/config.js';
import type { WaypointState } from '../state.js';
import { addressedPod } from '../pod-destination.js';
import type { WaypointCertificate } from '../agent-link.js';

export interface Endpoint {
  ip: string;
  port: number;
  /** `ip:port`. */
  address: string;
  node: string;
  /** The pod, when it is one of the cluster's. */
  workload?: WorkloadEntry;
  service: ServiceEntry;
}

export interface UpstreamOptions {
  pool: HbonePool;
  state: WaypointState;
  certificate: () => WaypointCertificate | undefined;
  trustDomain: string;
  /** The waypoint pod's own address, the `for=` of the Forwarded header it sends. */
  ownIp: string;
  /** Tunnels per endpoint for HTTP/1.1 at most (connectionPool.tcp.maxConnections when set). */
  maxConnectionsPerEndpoint?: number;
}

/** Plain numbers the data path adds to, read at scrape time. */
export interface UpstreamCounters {
  /** HBONE tunnels that ended in an RST_STREAM with an error code, sent or received. */
  resets: number;
}

export class UpstreamUnavailable extends Error {
  constructor(
    message: string,
    readonly flag: 'UF' | 'UH' | 'NR',
  ) {
    super(message);
  }
}


/**
 * An http.Agent whose connections are tunnels, created asynchronously. A tunnel is no TCP socket:
 * it gets the few socket methods the Agent calls (keep-alive, ref/unref) as no-ops, so that the
 * Agent's own bookkeeping runs unchanged (its reuseSocket removes the error listener it added when
 * the tunnel went idle; skipping it leaked one listener per reuse). maxTotalSockets counts tunnels
 * still being opened, which maxSockets does not: a burst waits for them instead of opening one each.
 */
class TunnelAgent extends http.Agent {
  constructor(
    private readonly open: () => Promise<Duplex>,
    maxSockets: number,
  ) {
    super({ keepAlive: true, maxSockets, maxTotalSockets: maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo', keepAliveMsecs: 30_000 });
  }

  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex {
    this.open().then(
      (s) => {
        s.once('end', dropEnded);
        callback!(null, Object.assign(s, socketLike));
      },
      (err: Error) => callback!(err, undefined as unknown as Duplex),
    );
    return undefined as unknown as Duplex;
  }
}

type WriteCallback = (err?: Error | null) => void;

/**
 * The `_write` of a tunnel's Http2Stream. An empty chunk calls back at once, as a TCP socket's does
 * (libuv writes nothing and Writable defers the callback to the next tick). Node 20's Http2Stream
 * completes even an empty write only after its session's next send, an I/O turn later; the HTTP/1.1
 * client ends a request with a body by `write('')` and emits 'finish' from its callback. A response
 * that ends inside that turn frees the socket once (the request looks written: nothing is pending)
 * and the late 'finish' frees it again, so the Agent hands one tunnel to two requests: their bytes
 * interleave, a request hangs or the stream is reset, and a burst of such resets makes the peer
 * cut the whole HBONE session as a stream flood. One function for every tunnel, nothing per chunk.
 */
function writeNonEmpty(this: Duplex, chunk: Buffer | string, encoding: BufferEncoding, cb: WriteCallback): void {
  if (chunk.length === 0) return cb();
  (Object.getPrototypeOf(this) as Duplex)._write.call(this, chunk, encoding, cb);
}

/**
 * A backend that closes an idle keep-alive connection (Node's servers after 5 s, nginx after 75 s)
 * ends the tunnel's readable side, and nothing more: an Http2Stream is half-open, where a TCP socket
 * would close and leave the Agent's pool. Left there, the next request was written into a tunnel
 * nobody reads and hung until its client gave up. Destroyed here, it leaves the pool at once; a
 * request caught in flight fails as a reset, which the forwarder retries.
 */
function dropEnded(this: Duplex): void {
  this.destroy();
}

const noop = function (this: unknown) {
  return this;
};
const socketLike = { setKeepAlive: noop, ref: noop, unref: noop };

/** The labels of a pod of another node that opts out, which is all its entry says of them (as the agent reads it). */
const optedOut = { [enrollLabels[0]!]: 'none' };

const { NGHTTP2_NO_ERROR } = http2.constants;

export class Upstreams {
  readonly counters: UpstreamCounters = { resets: 0 };
  private readonly agents = new Map<string, TunnelAgent>();
  private readonly sessions = new Map<string, Promise<ClientHttp2Session>>();
  /** One listener for every tunnel's 'close'; the stream is its `this`. */
  private readonly onTunnelClose: (this: ClientHttp2Stream) => void;

  constructor(private readonly o: UpstreamOptions) {
    const counters = this.counters;
    // A tunnel closed by both ends' END_STREAM, or destroyed without an error, has code NO_ERROR.
    this.onTunnelClose = function () {
      if (this.rstCode !== NGHTTP2_NO_ERROR) counters.resets++;
    };
  }

  /** The http.Agent for HTTP/1.1 requests to `ep`, its tunnels kept alive and reused. */
  agent(ep: Endpoint): http.Agent {
    let a = this.agents.get(ep.address);
    if (!a) {
      a = new TunnelAgent(() => this.tunnel(ep), this.o.maxConnectionsPerEndpoint ?? 256);
      this.agents.set(ep.address, a);
    }
    return a;
  }

  /** The HTTP/2 session to `ep` (h2c over the tunnel), opened on first use and reused while it lives. */
  session(ep: Endpoint): Promise<ClientHttp2Session> {
    const key = ep.address;
    let s = this.sessions.get(key);
    if (!s) {
      s = this.tunnel(ep).then((stream) => {
        const session = http2.connect(`http://${key}`, { createConnection: () => stream as unknown as Socket });
        const forget = () => {
          if (this.sessions.get(key) === s) this.sessions.delete(key);
        };
        session.on('close', forget);
        session.on('goaway', forget);
        session.on('error', forget);
        return session;
      });
      s.catch(() => this.sessions.delete(key));
      this.sessions.set(key, s);
    }
    return s;
  }

  /** A byte stream to `ep`: an HBONE tunnel when the pod is in the mesh, plain TCP otherwise. */
  async tunnel(ep: Endpoint): Promise<Duplex> {
    const w = ep.workload;
    if (!w || !this.enrolled(w)) return this.plain(ep);
    const node = this.o.state.node(w.node);
    if (!node) throw new UpstreamUnavailable(`the address of node ${w.node} is not known yet`, 'UH');
    const cert = this.o.certificate();
    if (!cert) throw new UpstreamUnavailable('the waypoint has no certificate yet', 'UF');
    const destination = workloadIdentity(w, this.o.trustDomain);
    const stream = await this.o.pool.connect({
      identity: cert.id,
      secureContext: cert.secureContext,
      nodeAddress: node.ip,
      authority: ep.address,
      expectedIdentity: spiffeId(destination),
      servername: serverName(destination),
      // A pod addressed directly came through no Service: no host= for the destination's telemetry.
      headers: { forwarded: addressedPod(ep.service) ? `for=${this.o.ownIp}` : `for=${this.o.ownIp};host=${serviceHostname(ep.service)}` },
    });
    // Node 20's Http2Stream corrupts string chunks written together through writev (the first
    // chunk of an HTTP/1.1 head arrived as garbage): one chunk at a time instead.
    const writable = stream as unknown as { _writev: unknown; _write: typeof writeNonEmpty };
    writable._writev = null;
    writable._write = writeNonEmpty;
    stream.once('close', this.onTunnelClose);
    return stream;
  }

  private plain(ep: Endpoint): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const s = new Socket().setNoDelay(true);
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
      s.connect(ep.port, ep.ip);
    });
  }

  private enrolled(w: WorkloadEntry): boolean {
    return isEnrolled(this.o.state.namespaceLabels(w.namespace), w.labels ?? (w.optOut ? optedOut : undefined));
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    for (const s of this.sessions.values()) void s.then((x) => x.destroy(), () => undefined);
    this.agents.clear();
    this.sessions.clear();
  }
}
