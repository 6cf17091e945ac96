// The push channel to node agents: a WebSocket over TLS on which each agent, authenticated by its
// node's token, receives its node's share (full on connect and on request, deltas after) and
// answers every version with an ack or a nack. One session per node; a new one replaces the old.
// A slow agent is not fed faster than it reads: while its socket is backed up, versions coalesce
// into one later delta.

import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import { type AgentMessage, nodeHeader, pushPath, replacedCloseCode } from '../../shared/protocol/config.js';
import type { ShareBuilder } from './share.js';
import { authenticateNode, type Authenticator, type NodeAuth, type TokenCheck } from './auth.js';
import type { TrustBundle } from '../../shared/identity/svid.js';

export interface AgentStatus {
  node: string;
  connected: boolean;
  /** How the agent proved its node: its token (bootstrap) or its node certificate. */
  auth?: 'token' | 'certificate';
  /** The last version the agent acknowledged. */
  ackedVersion: number;
  sentVersion: number;
  lastNack?: { version: number; reason: string; at: string };
  connectedAt?: string;
  disconnectedAt?: string;
}

interface Session {
  node: string;
  ws: WebSocket;
  sent: number;
  /** A newer version is waiting for the socket to drain. */
  behind: boolean;
  /** Waiting for, or in the middle of, a full push; deltas wait for it. */
  full: 'queued' | 'sending' | undefined;
  lastResync: number;
  /** Answered our last ping (keepalive). */
  alive: boolean;
}

/** Above this many queued bytes a session stops getting pushes until it drains. */
const highWaterMark = 8 * 1024 * 1024;
/**
 * Full pushes are megabytes each; when a whole fleet connects at once (a controller restart),
 * sending them all together only piles ciphertext up in memory. A few at a time go as fast.
 */
const maxFullInFlight = 32;

export interface PushOptions {
  share: ShareBuilder;
  /** The nodes expected to connect (listed as disconnected until they do); others may join. */
  nodes: string[];
  /** Checks a node's bootstrap token (a ServiceAccount token bound to the node, by TokenReview). */
  checkToken: TokenCheck;
  /** The CA's trust bundle, to accept node certificates in place of tokens. */
  bundle?: () => TrustBundle;
  tls: { key: string; cert: string };
  log: Logger;
  /** Called when an agent reports a change of the pods it captures. */
  onCapture?: (node: string, report: { captured: ReadonlySet<string>; failed: Readonly<Record<string, string>> }) => void;
  /** Other requests of authenticated agents on the same TLS port (the CA's CSR endpoint). */
  onRequest?: (req: IncomingMessage, res: ServerResponse, auth: NodeAuth) => void;
}

export class PushServer {
  readonly server: Server;
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024, perMessageDeflate: false });
  private readonly sessions = new Map<string, Session>();
  private readonly status = new Map<string, AgentStatus>();
  private readonly ackWaiters = new Set<() => void>();
  private readonly drainTimer: NodeJS.Timeout;
  private readonly pingTimer: NodeJS.Timeout;
  private readonly auth: Authenticator;
  /** What each node's agent last said it captures: `namespace/pod`. */
  private readonly captured = new Map<string, Set<string>>();
  private readonly captureFailures = new Map<string, Record<string, string>>();
  private readonly fullQueue: Session[] = [];
  private fullInFlight = 0;

  constructor(private readonly o: PushOptions) {
    for (const node of o.nodes) this.statusOf(node);
    this.auth = { checkToken: o.checkToken, ...(o.bundle ? { bundle: o.bundle } : {}) };
    // Node certificates are asked for but checked here, not by TLS, so the token still works.
    this.server = createServer({ key: o.tls.key, cert: o.tls.cert, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false }, (req, res) => {
      void authenticateNode(req, this.auth).then((result) => {
        if (!result.ok) {
          o.log.warn({ node: req.headers[nodeHeader], remote: req.socket.remoteAddress, path: req.url, reason: result.reason }, 'request refused: the node is not authenticated');
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'Unauthorized', message: 'no valid node certificate or node token' } }));
          return;
        }
        if (o.onRequest) o.onRequest(req, res, result.auth);
        else res.writeHead(404).end();
      });
    });
    this.server.on('upgrade', (req, socket, head) => void this.upgrade(req, socket, head));
    this.drainTimer = setInterval(() => this.flushBehind(), 20);
    this.drainTimer.unref();
    // Keepalive: an agent that does not answer two pings in a row is gone (half-open, or stuck),
    // and must not hold a full-push slot or count as connected.
    this.pingTimer = setInterval(() => {
      for (const s of this.sessions.values()) {
        if (!s.alive) {
          this.o.log.warn({ node: s.node }, 'agent stopped answering pings; closing its connection');
          s.ws.terminate();
          continue;
        }
        s.alive = false;
        s.ws.ping();
      }
    }, 15_000);
    this.pingTimer.unref();
  }

  agents(): AgentStatus[] {
    return [...this.status.values()].sort((a, b) => a.node.localeCompare(b.node));
  }

  /** Sends a node's agent everything again (an operator's request); false when it is not connected. */
  resync(node: string): boolean {
    const s = this.sessions.get(node);
    if (!s) return false;
    this.o.log.info({ node }, 'full resync requested');
    this.sendFull(s);
    return true;
  }

  /** Sends the newest version to every connected agent; call after ShareBuilder.apply. */
  publish(): void {
    for (const [node, s] of this.sessions) this.sendDelta(node, s);
  }

  /**
   * Resolves when every connected agent has acknowledged `version` or later, or after `timeoutMs`,
   * with the connected agents that have not. Agents that are not connected are not waited for;
   * `agents()` shows them.
   */
  async waitForAcks(version: number, timeoutMs: number): Promise<AgentStatus[]> {
    const pending = () => this.agents().filter((a) => a.connected && a.ackedVersion < version);
    if (pending().length === 0) return [];
    return new Promise((resolve) => {
      const check = () => {
        if (pending().length > 0) return;
        done();
      };
      const timer = setTimeout(() => done(), timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.ackWaiters.delete(check);
        resolve(pending());
      };
      this.ackWaiters.add(check);
    });
  }

  close(): void {
    clearInterval(this.drainTimer);
    clearInterval(this.pingTimer);
    for (const s of this.sessions.values()) s.ws.close(1001, 'controller stopping');
    this.server.close();
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://controller');
    const result = url.pathname === pushPath ? await authenticateNode(req, this.auth) : { ok: false as const, reason: `no route ${url.pathname}` };
    if (!result.ok) {
      this.o.log.warn({ node: req.headers[nodeHeader], remote: req.socket.remoteAddress, path: url.pathname, reason: result.reason }, 'agent connection refused');
      socket.end('HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      return;
    }
    // The token review took a round trip: the agent may have given up meanwhile.
    if (socket.destroyed) return;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.attach(result.auth, ws));
  }

  /** A node's status entry, made when a node first appears. */
  private statusOf(node: string): AgentStatus {
    let st = this.status.get(node);
    if (!st) this.status.set(node, (st = { node, connected: false, ackedVersion: 0, sentVersion: 0 }));
    return st;
  }

  private attach({ node, via }: NodeAuth, ws: WebSocket): void {
    const old = this.sessions.get(node);
    if (old) old.ws.close(replacedCloseCode, 'replaced by a newer connection from the same node');
    const session: Session = { node, ws, sent: 0, behind: false, full: undefined, lastResync: 0, alive: true };
    ws.on('pong', () => (session.alive = true));
    this.sessions.set(node, session);
    const st = this.statusOf(node);
    st.connected = true;
    st.ackedVersion = 0;
    st.auth = via;
    st.connectedAt = new Date().toISOString();
    this.o.log.info({ node, auth: via }, 'agent connected');
    ws.on('message', (data, isBinary) => this.onMessage(node, session, isBinary ? '' : data.toString()));
    ws.on('close', () => {
      if (this.sessions.get(node) !== session) return;
      this.sessions.delete(node);
      if (session.full === 'sending') this.fullDone();
      session.full = undefined;
      st.connected = false;
      st.disconnectedAt = new Date().toISOString();
      this.o.log.info({ node }, 'agent disconnected');
      this.notifyAcks();
    });
    ws.on('error', (err) => this.o.log.warn({ node, err: err.message }, 'agent connection error'));
    this.sendFull(session);
  }

  private onMessage(node: string, session: Session, text: string): void {
    let msg: AgentMessage;
    try {
      msg = JSON.parse(text) as AgentMessage;
    } catch {
      session.ws.close(1003, 'messages must be JSON');
      return;
    }
    if (typeof msg !== 'object' || msg === null) {
      session.ws.close(1003, 'messages must be JSON objects');
      return;
    }
    const st = this.status.get(node)!;
    switch (msg.type) {
      case 'ack':
        // An agent can only acknowledge what it was sent.
        if (typeof msg.version === 'number' && msg.version > st.ackedVersion && msg.version <= session.sent) st.ackedVersion = msg.version;
        this.notifyAcks();
        return;
      case 'nack': {
        st.lastNack = { version: Number(msg.version), reason: String(msg.reason), at: new Date().toISOString() };
        this.o.log.warn({ node, version: msg.version, reason: msg.reason }, 'agent rejected a config version');
        this.notifyAcks();
        // The agent kept its previous version; bring it back in step, at most every 10 s.
        const now = Date.now();
        if (now - session.lastResync > 10_000) {
          session.lastResync = now;
          this.sendFull(session);
        }
        return;
      }
      case 'capture':
        if (Array.isArray(msg.captured)) {
          this.captured.set(node, new Set(msg.captured.filter((x): x is string => typeof x === 'string')));
          this.captureFailures.set(node, typeof msg.failed === 'object' && msg.failed !== null ? msg.failed : {});
          this.o.onCapture?.(node, { captured: this.captured.get(node)!, failed: this.captureFailures.get(node)! });
        }
        return;
      case 'resync':
        this.o.log.info({ node, reason: msg.reason }, 'agent asked for a full resync');
        this.sendFull(session);
        return;
      default:
        session.ws.close(1003, `unknown message type ${(msg as { type?: unknown }).type}`);
    }
  }

  private sendFull(s: Session): void {
    if (s.full) return;
    s.full = 'queued';
    this.fullQueue.push(s);
    this.pumpFull();
  }

  /**
   * A full push is one binary WebSocket message holding gzip members that decompress, one after
   * the other, to the push's JSON: its head, the part common to all nodes (compressed once per
   * revision and shared by every node's push), and this node's own entries (which replace common
   * ones of the same key, since an agent applies upserts in order). The JSON of a large cluster
   * shrinks about tenfold, and the compression is paid once for the fleet instead of per agent.
   */
  private pumpFull(): void {
    while (this.fullInFlight < maxFullInFlight && this.fullQueue.length > 0) {
      const s = this.fullQueue.shift()!;
      if (s.full !== 'queued' || this.sessions.get(s.node) !== s) continue;
      s.full = 'sending';
      this.fullInFlight++;
      const share = this.o.share;
      const { common, commonGzip, own } = share.fullPush(s.node);
      const head = gzipSync(`{"type":"config","full":true,"from":0,"to":${share.revision},"upserts":[`);
      const tail = gzipSync(`${common.length && own.length ? ',' : ''}${own.join(',')}],"deletes":[]}`);
      this.mark(s, share.revision);
      s.ws.send(Buffer.concat([head, commonGzip, tail]), { binary: true }, () => {
        if (s.full !== 'sending') return;
        s.full = undefined;
        this.fullDone();
        // Whatever changed while it was sent follows as a delta.
        this.sendDelta(s.node, s);
      });
    }
  }

  private fullDone(): void {
    this.fullInFlight--;
    this.pumpFull();
  }

  private sendDelta(node: string, s: Session): void {
    const share = this.o.share;
    if (s.sent === share.revision || s.full) return;
    if (s.ws.bufferedAmount > highWaterMark) {
      s.behind = true;
      return;
    }
    const delta = share.deltaSince(node, s.sent);
    if (!delta) return this.sendFull(s);
    const text = `{"type":"config","full":false,"from":${s.sent},"to":${share.revision},"upserts":[${delta.upserts.join(',')}],"deletes":${JSON.stringify(delta.deletes)}}`;
    this.mark(s, share.revision);
    s.ws.send(text);
  }

  private mark(s: Session, version: number): void {
    s.behind = false;
    s.sent = version;
    this.status.get(s.node)!.sentVersion = version;
  }

  private flushBehind(): void {
    for (const [node, s] of this.sessions) if (s.behind) this.sendDelta(node, s);
  }

  private notifyAcks(): void {
    for (const check of [...this.ackWaiters]) check();
  }
}
