// What both ends of HBONE (HTTP/2 CONNECT over mutual TLS on port 15008) agree on: the port, the
// flow-control windows, how a peer's certificate chain is read off a TLS socket, the strict form
// of a CONNECT authority, and the typed errors a tunnel can fail with. The client is pool.ts, the
// server hbone-server.ts.

import type { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { AmbitError } from '../errors.js';
import type { SvidFailure } from '../identity/svid.js';
import type { Identity } from '../identity/spiffe.js';

export const hbonePort = 15008;

/**
 * Which HTTP/2 carries HBONE: Node's http2 (nghttp2), or ambit's own (shared/hbone/h2/), written
 * for CONNECT streams only, with large DATA frames and one write per event-loop turn. Both speak
 * standard HTTP/2 to the other end, so either side may run either.
 */
export type H2Implementation = 'node' | 'ambit';
export const defaultH2Implementation: H2Implementation = 'ambit';

/**
 * A tunnel's byte stream, as both implementations give it (Node's Http2Stream or ambit's H2Stream):
 * a Duplex with the RST_STREAM code it closed with, and close(code) to reset it.
 */
export type HboneStream = Duplex & {
  /** NO_ERROR (0) for a stream both ends ended; the code of the RST_STREAM otherwise. */
  readonly rstCode: number | undefined;
  close(code?: number): void;
  /** The session it runs on; undefined once it is gone (Node's). */
  readonly session?: { goaway(code?: number, lastStreamId?: number): void } | undefined;
};

/** The server's side of a tunnel: it answers the CONNECT with respond(). */
export type HboneServerStream = HboneStream & {
  readonly headersSent: boolean;
  respond(headers: Record<string, string | number>, options?: { endStream?: boolean }): void;
};

/**
 * Receive windows. HTTP/2's 64 KiB default caps one tunnel at 64 KiB per round trip; these let a
 * bulk transfer run at memory speed on loopback while still bounding what a stalled reader buffers.
 */
export const defaultStreamWindow = 4 * 1024 * 1024;
export const defaultSessionWindow = 16 * 1024 * 1024;
/** nghttp2 memory per session in MB; above its 10 MB default so that full windows never trip it. */
export const maxSessionMemoryMb = 64;

const kPeerChain = Symbol('hbone.peerChain');

/**
 * The presented chain, leaf first, already parsed (validateSvid takes it as it is). On a resumed TLS
 * session only the leaf is left (or nothing, client side). Not getPeerCertificate(true): it turns
 * every field of every certificate into JS objects, and validating the DER it gives parses it
 * again: about 0.7 ms of CPU per side of a handshake (a chain with an intermediate), against 0.3 ms
 * this way (scripts/bench/hbone.ts, "new HBONE session"). getPeerX509Certificate takes the chain
 * out of the socket as it reads it (Node 20, nodejs/node#65579), so the result is kept on the
 * socket, and a second call gets the same chain.
 */
export function peerChain(socket: TLSSocket): X509Certificate[] {
  const held = socket as TLSSocket & { [kPeerChain]?: X509Certificate[] };
  if (held[kPeerChain]) return held[kPeerChain];
  const chain: X509Certificate[] = [];
  for (let c = socket.getPeerX509Certificate(); c && chain.length < 6; c = c.issuerCertificate) chain.push(c);
  held[kPeerChain] = chain;
  return chain;
}

export interface Authority {
  ip: string;
  port: number;
}

const octet = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const authorityPattern = new RegExp(`^(${octet}\\.${octet}\\.${octet}\\.${octet}):([1-9]\\d{0,4})$`);

/** `a.b.c.d:port` in canonical form (no leading zeros, port 1-65535, not 0.0.0.0); anything else is undefined. */
export function parseAuthority(text: string | undefined): Authority | undefined {
  if (!text || text.length > 21) return undefined;
  const m = authorityPattern.exec(text);
  if (!m) return undefined;
  const port = Number(m[6]);
  if (port > 65535 || m[1] === '0.0.0.0') return undefined;
  return { ip: m[1]!, port };
}

/** The node answered the CONNECT with a status other than 200 (403: denied by policy; 503: destination unreachable). */
export class HboneConnectRefused extends AmbitError {
  constructor(
    readonly status: number,
    readonly authority: string,
    readonly node: string,
  ) {
    super('HboneConnectRefused', `the node at ${node} answered ${status} to CONNECT ${authority}`);
  }
}

export type PeerProblem = SvidFailure | 'wrong-identity' | 'not-h2';

/** The server at the other end is not who it should be: its SVID does not validate, or names another identity. */
export class HbonePeerUntrusted extends AmbitError {
  constructor(
    readonly reason: PeerProblem,
    message: string,
  ) {
    super('HbonePeerUntrusted', message);
  }
}

export type ConnectStage = 'tcp' | 'tls' | 'refused-certificate' | 'session' | 'stream' | 'timeout' | 'closed' | 'credentials';

/** No tunnel: the connection, handshake or session failed at `stage`; `cause` holds the underlying error. */
export class HboneConnectFailed extends AmbitError {
  constructor(
    readonly stage: ConnectStage,
    message: string,
    override readonly cause?: unknown,
  ) {
    super('HboneConnectFailed', message);
  }
}

/**
 * The name the client asks for (SNI) so that the destination node presents the destination
 * workload's certificate: SNI takes a host name, so the identity is spelt as one.
 */
export function serverName(i: Identity): string {
  return `${i.serviceAccount}.${i.namespace}.sa.${i.trustDomain}`;
}
