// Dialing another node's HBONE port: the TCP socket (from the caller's factory, so the agent can
// make it in a pod's network namespace with its mark), TLS 1.3 with ALPN h2 presenting the source
// identity's certificate, session resumption, and the check of the server's SVID. When to dial and
// what to run over the connection is the pool's.

import type { X509Certificate } from 'node:crypto';
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import type { Socket } from 'node:net';
import { spiffeId } from '../identity/spiffe.js';
import { SvidInvalid, type TrustBundle, validateSvid } from '../identity/svid.js';
import { HboneConnectFailed, HbonePeerUntrusted, hbonePort, peerChain } from './protocol.js';

export interface NodeDialRequest {
  /** SPIFFE ID of the source workload, whose certificate is presented. */
  identity: string;
  /** Its certificate: a SecureContext, or key and chain as PEM (a context is then built once per identity). */
  secureContext?: SecureContext;
  key?: string;
  cert?: string;
  nodeAddress: string;
  nodePort?: number;
  /** SPIFFE ID the server must present (the destination workload's); any valid SVID when absent. */
  expectedIdentity?: string;
  /** SNI, for a server that picks its certificate by name; none by default. */
  servername?: string;
}

export interface DialerOptions {
  trustBundle: () => TrustBundle;
  createConnection?: (host: string, port: number) => Socket;
  handshakeTimeoutMs: number;
  /** Incremented here: TLS handshakes completed, and of them, resumed. */
  counters: { handshakes: number; resumed: number };
}

/** A ticket to resume with, the context it was made under, and the server chain validated then (a resumption presents none). */
interface Resumption {
  ticket: Buffer;
  context: SecureContext;
  chain: Buffer[];
}

const maxTickets = 4096;

export class NodeDialer {
  /** By source identity and node; the expected identity is checked again on the chain kept. */
  private readonly tickets = new Map<string, Resumption>();
  private readonly contexts = new Map<string, { key: string; cert: string; context: SecureContext }>();

  constructor(private readonly o: DialerOptions) {}

  /**
   * Calls `done` once, with a TLS socket whose server passed the checks, or with a typed error
   * (HboneConnectFailed, HbonePeerUntrusted). The returned function abandons the dial.
   */
  dial(req: NodeDialRequest, done: (err: Error | undefined, tls?: TLSSocket) => void): () => void {
    const port = req.nodePort ?? hbonePort;
    const node = `${req.nodeAddress}:${port}`;
    let finished = false;
    const finish = (err: Error | undefined, tls?: TLSSocket) => {
      if (finished) return;
      finished = true;
      done(err, tls);
    };
    let tls: TLSSocket;
    let context: SecureContext;
    // Per expected peer too: a session resumed under another server name presents no certificate,
    // and the chain kept with the ticket would be another workload's (wrong-identity, a reset).
    const ticketKey = `${req.identity} ${req.expectedIdentity ?? '*'} ${req.servername ?? ''} ${node}`;
    let resume: Resumption | undefined;
    try {
      context = this.contextOf(req);
      const known = this.tickets.get(ticketKey);
      resume = known?.context === context ? known : undefined;
      tls = tlsConnect({
        ...(this.o.createConnection ? { socket: this.o.createConnection(req.nodeAddress, port) } : { host: req.nodeAddress, port }),
        secureContext: context,
        ALPNProtocols: ['h2'],
        minVersion: 'TLSv1.3',
        // SPIFFE certificates name no host; the server's SVID is checked below instead.
        rejectUnauthorized: false,
        ...(req.servername ? { servername: req.servername } : {}),
        ...(resume ? { session: resume.ticket } : {}),
      });
    } catch (err) {
      finish(err instanceof HboneConnectFailed ? err : new HboneConnectFailed('tcp', `could not connect to ${node}: ${(err as Error).message}`, err));
      return () => undefined;
    }
    tls.setTimeout(this.o.handshakeTimeoutMs, () => tls.destroy(new HboneConnectFailed('timeout', `the TLS handshake with ${node} took over ${this.o.handshakeTimeoutMs} ms`)));
    let validated: Buffer[] | undefined;
    tls.on('session', (ticket: Buffer) => {
      if (!validated) return;
      this.tickets.delete(ticketKey);
      if (this.tickets.size >= maxTickets) this.tickets.delete(this.tickets.keys().next().value!);
      this.tickets.set(ticketKey, { ticket, context, chain: validated });
    });
    tls.once('error', (err) => {
      if (err instanceof HboneConnectFailed) return finish(err);
      const stage = (err as NodeJS.ErrnoException).syscall === 'connect' ? 'tcp' : 'tls';
      finish(new HboneConnectFailed(stage, `${stage === 'tcp' ? 'TCP connection' : 'TLS handshake'} to ${node} failed: ${err.message}`, err));
    });
    tls.once('secureConnect', () => {
      tls.setTimeout(0);
      this.o.counters.handshakes++;
      const resumed = tls.isSessionReused();
      if (resumed) this.o.counters.resumed++;
      try {
        validated = this.checkServer(tls, resumed ? (resume?.chain ?? []) : peerChain(tls), node, req.expectedIdentity);
      } catch (err) {
        if (resume && this.tickets.get(ticketKey) === resume) this.tickets.delete(ticketKey);
        tls.destroy();
        return finish(err as Error);
      }
      finish(undefined, tls);
    });
    return () => {
      if (!finished) tls.destroy(new HboneConnectFailed('closed', `the dial to ${node} was abandoned`));
    };
  }

  clear(): void {
    this.tickets.clear();
    this.contexts.clear();
  }

  /** Returns the chain as DER, to keep with the ticket: parsed certificates would cost kilobytes each. */
  private checkServer(tls: TLSSocket, chain: (Buffer | X509Certificate)[], node: string, expected: string | undefined): Buffer[] {
    if (tls.alpnProtocol !== 'h2') throw new HbonePeerUntrusted('not-h2', `${node} did not agree to HTTP/2 (ALPN ${tls.alpnProtocol || 'none'})`);
    let uri: string;
    try {
      uri = spiffeId(validateSvid(chain, this.o.trustBundle()));
    } catch (err) {
      if (err instanceof SvidInvalid) throw new HbonePeerUntrusted(err.reason, `the server at ${node}: ${err.message}`);
      throw err;
    }
    if (expected && uri !== expected) throw new HbonePeerUntrusted('wrong-identity', `the server at ${node} is ${uri}, not the expected ${expected}`);
    return chain.map((c) => (Buffer.isBuffer(c) ? c : c.raw));
  }

  private contextOf(req: NodeDialRequest): SecureContext {
    if (req.secureContext) return req.secureContext;
    if (!req.key || !req.cert) throw new HboneConnectFailed('credentials', `no certificate for ${req.identity}: pass secureContext, or key and cert`);
    const known = this.contexts.get(req.identity);
    if (known && known.key === req.key && known.cert === req.cert) return known.context;
    const context = createSecureContext({ key: req.key, cert: req.cert, minVersion: 'TLSv1.3' });
    this.contexts.set(req.identity, { key: req.key, cert: req.cert, context });
    return context;
  }
}
