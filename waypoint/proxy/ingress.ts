// Where traffic enters the waypoint: HBONE on 15008 (mutual TLS with the waypoint's own SVID, the
// caller's identity taken from its certificate), one CONNECT tunnel per client connection, addressed
// to the Service VIP and port the client dialled, or to the address of a pod bound to this waypoint
// (`waypoint-for` workload or all; pod-destination.ts). Such a tunnel is accepted, then its first
// bytes say what it carries: HTTP/2 (the h2c preface), HTTP/1.1 (a request line), or anything else,
// which is passed through to an endpoint as L4. The port's declared protocol (its name: `http-`,
// `http2-`, `grpc-`, `tcp-`, as Istio reads it) wins over sniffing.

import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Identity } from '../../shared/identity/spiffe.js';
import type { HboneTunnel } from '../../shared/hbone/server.js';
import type { ServiceEntry } from '../../shared/protocol/config.js';

/** What the waypoint knows of a client connection, kept on its stream for the requests it carries. */
export interface TunnelContext {
  peer: Identity;
  peerUri: string;
  /** The source pod's address (the tunnel's peer is the source node proxy, which names it in Forwarded). */
  sourceIp: string | undefined;
  service: ServiceEntry;
  port: number;
}

export const kTunnel = Symbol('waypoint.tunnel');
export type TunnelStream = Duplex & { [kTunnel]?: TunnelContext };

export type Protocol = 'http1' | 'http2' | 'tcp';

export interface IngressHandlers {
  request(req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse, ctx: TunnelContext): void;
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: TunnelContext): void;
  tcp(stream: Duplex, ctx: TunnelContext): void;
}

const h2Preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const requestLine = /^[A-Z]{3,10} \S/;
/** How long a tunnel may stay silent before it is taken for a protocol where the server speaks first. */
const sniffTimeoutMs = 1000;
const forwardedFor = /(?:^|[;,\s])for="?(\d{1,3}(?:\.\d{1,3}){3})"?/;

/** Each Service entry's answers by port: entries are replaced, never changed, with each configuration. */
const declared = new WeakMap<ServiceEntry, Map<number, Protocol | undefined>>();

/** What a Service port declares, as Istio's protocol selection reads its name. */
export function declaredProtocol(service: ServiceEntry, port: number): Protocol | undefined {
  let ports = declared.get(service);
  if (ports?.has(port)) return ports.get(port);
  if (!ports) declared.set(service, (ports = new Map()));
  const protocol = protocolOfName(service.ports.find((p) => p.port === port)?.name?.toLowerCase() ?? '');
  ports.set(port, protocol);
  return protocol;
}

function protocolOfName(name: string): Protocol | undefined {
  if (/^(http2|grpc)(-|$)/.test(name)) return 'http2';
  if (/^http(-|$)/.test(name)) return undefined; // HTTP/1.1 or h2c upgrade-less prior knowledge: sniff which
  if (/^(tcp|tls|mongo|mysql|redis)(-|$)/.test(name)) return 'tcp';
  return undefined;
}

export class Ingress {
  readonly http1: http.Server;
  readonly http2: http2.Http2Server;
  private connecting: TunnelContext | undefined;

  constructor(
    private readonly handlers: IngressHandlers,
    private readonly serviceAt: (ip: string, port: number) => ServiceEntry | undefined,
  ) {
    this.http1 = http.createServer({ keepAliveTimeout: 60_000, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => {
      const ctx = (req.socket as TunnelStream)[kTunnel]!;
      handlers.request(req, res, ctx);
    });
    this.http1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => handlers.upgrade(req, socket, head, (socket as TunnelStream)[kTunnel]!));
    this.http1.on('clientError', (_err, socket: Duplex) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    this.http2 = http2.createServer({ maxSessionMemory: 64 });
    // The server wraps the tunnel (it is no socket) and its sessions see only the wrapper: the
    // context goes on the session, which the server makes synchronously within 'connection'.
    this.http2.on('session', (session) => {
      (session as unknown as TunnelStream)[kTunnel] = this.connecting;
    });
    this.http2.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const ctx = (req.stream.session as unknown as TunnelStream | undefined)?.[kTunnel];
      if (!ctx) return void res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      handlers.request(req, res, ctx);
    });
  }

  /** A CONNECT from a node proxy (or another HBONE client) to a Service or a pod behind this waypoint. */
  onTunnel(t: HboneTunnel): void {
    const service = this.serviceAt(t.authority.ip, t.authority.port);
    if (!service) return t.respond(503);
    const forwarded = t.headers['forwarded'];
    const m = typeof forwarded === 'string' ? forwardedFor.exec(forwarded) : null;
    const ctx: TunnelContext = { peer: t.peer, peerUri: t.peerUri, sourceIp: m?.[1] ?? t.peerAddress, service, port: t.authority.port };
    t.respond(200);
    const stream = t.stream as ServerHttp2Stream & TunnelStream;
    stream[kTunnel] = ctx;
    stream.on('error', () => undefined);
    // See upstream.ts: Node 20's Http2Stream corrupts string chunks written together.
    (stream as unknown as { _writev: unknown })._writev = null;
    const declared = declaredProtocol(service, t.authority.port);
    if (declared) return this.dispatch(stream, declared);
    this.sniff(stream);
  }

  private sniff(stream: ServerHttp2Stream & TunnelStream): void {
    const timer = setTimeout(() => {
      stream.off('readable', onReadable);
      this.dispatch(stream, 'tcp');
    }, sniffTimeoutMs);
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk === null) return;
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.unshift(chunk);
      const head = chunk.subarray(0, h2Preface.length);
      // A preface cut short still starts as one; a request line needs only its method and a space.
      const protocol: Protocol = h2Preface.subarray(0, head.length).equals(head) ? 'http2' : requestLine.test(chunk.subarray(0, 16).toString('latin1')) ? 'http1' : 'tcp';
      this.dispatch(stream, protocol);
    };
    stream.on('readable', onReadable);
    stream.once('close', () => clearTimeout(timer));
  }

  private dispatch(stream: ServerHttp2Stream & TunnelStream, protocol: Protocol): void {
    if (protocol === 'http1') this.http1.emit('connection', stream);
    else if (protocol === 'http2') {
      this.connecting = stream[kTunnel];
      this.http2.emit('connection', stream as unknown as Socket);
      this.connecting = undefined;
    }
    else this.handlers.tcp(stream, stream[kTunnel]!);
  }

  close(): void {
    this.http1.close();
    this.http1.closeAllConnections();
    this.http2.close();
  }
}
