// The agent's connection to the controller: WebSocket over TLS (the controller's CA pinned),
// authenticated by the node's token. Applies every push to the state and answers ack or nack.
// When the controller is away the agent keeps its last configuration and reconnects with
// exponential backoff and full jitter, so a fleet of agents does not return in lockstep.
// What a push does to the state (in order, off the event loop where it is heavy) is receiver.ts's.

import { WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import { pushPath, replacedCloseCode } from '../../shared/protocol/config.js';
import { nodeAuthentication, type NodeChannelOptions } from '../identity/caclient.js';
import type { AgentState } from '../state/state.js';
import { PushReceiver } from './receiver.js';

export interface ControlOptions extends NodeChannelOptions {
  state: AgentState;
  log: Logger;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class ControllerConnection {
  private ws: WebSocket | undefined;
  private attempts = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  connected = false;
  lastError: string | undefined;
  private lastCapture: string | undefined;
  /** What the current or last connection proved the node with. */
  authenticatedWith: 'token' | 'certificate' = 'token';

  private readonly receiver: PushReceiver;

  constructor(private readonly o: ControlOptions) {
    this.receiver = new PushReceiver({ state: o.state, log: o.log, resync: (reason) => this.resync(reason) });
  }

  /** Resolves when every push received so far has been applied or refused (for tests). */
  settled(): Promise<void> {
    return this.receiver.idle();
  }

  start(): void {
    this.connect();
  }

  stop(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.ws?.close(1001, 'agent stopping');
  }

  /** Tells the controller which pods are captured (resent after every reconnect). */
  reportCapture(captured: string[], failed: Record<string, string>): void {
    this.lastCapture = JSON.stringify({ type: 'capture', captured, failed });
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(this.lastCapture);
  }

  /** Reconnects now, e.g. to present a node certificate that was just issued. */
  reconnect(): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.close(1000, 'reconnecting with new credentials');
    else if (this.ws?.readyState === WebSocket.CONNECTING) this.ws.terminate();
  }

  /** Asks the controller for everything again. */
  resync(reason: string): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: 'resync', reason }));
  }

  private connect(): void {
    const auth = nodeAuthentication(this.o);
    this.authenticatedWith = auth.tls.cert ? 'certificate' : 'token';
    const controller = this.o.url();
    const ws = new WebSocket(`${controller}${pushPath}`, {
      ca: this.o.ca(),
      ...auth.tls,
      headers: auth.headers,
      maxPayload: 256 * 1024 * 1024,
      perMessageDeflate: false,
      handshakeTimeout: 5000,
    });
    this.ws = ws;
    let attemptError: string | undefined;
    // Keepalive: the controller pings every 15 s; silence for 40 s means the connection is dead
    // (a half-open TCP connection would otherwise look connected for many minutes).
    let silence: NodeJS.Timeout | undefined;
    const heard = () => {
      clearTimeout(silence);
      silence = setTimeout(() => {
        this.lastError = 'no word from the controller for 40 s';
        ws.terminate();
      }, 40_000);
      silence.unref();
    };
    ws.on('ping', heard);
    ws.on('open', () => {
      this.connected = true;
      this.attempts = 0;
      this.lastError = undefined;
      heard();
      if (this.lastCapture) ws.send(this.lastCapture);
      this.o.log.info({ controller }, 'connected to the controller');
    });
    // Full pushes come gzip-compressed as binary messages, deltas as text.
    ws.on('message', (data, isBinary) => {
      heard();
      this.receiver.receive(data as Buffer, isBinary, (m) => ws.send(JSON.stringify(m)));
    });
    // The first error of an attempt says why; the ones that follow it only say the socket closed.
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode === 401 && auth.tls.cert) this.o.onCertificateRejected?.();
      attemptError ??= `controller refused the connection: HTTP ${res.statusCode}`;
      this.lastError = attemptError;
      ws.terminate();
    });
    ws.on('error', (err) => {
      attemptError ??= err.message;
      this.lastError = attemptError;
    });
    ws.on('close', (code) => {
      clearTimeout(silence);
      if (this.connected) this.o.log.warn({ controller, err: this.lastError }, 'lost the controller; serving the last configuration');
      // Unreachable, or gone: another replica, if there is one, gets the next attempt.
      if (!this.closed && code !== replacedCloseCode && code !== 1000) this.o.failed?.(controller);
      this.connected = false;
      if (this.closed) return;
      // The controller keeps one session per node, and a newer one from this node took over: most
      // likely this agent's successor (an upgrade). Coming straight back would take the session from
      // it, so wait as long as the longest backoff (the successor soon has this agent stopped).
      const replaced = code === replacedCloseCode;
      if (replaced) this.o.log.warn('another agent of this node connected to the controller (an upgrade?); trying again later');
      this.retry(replaced);
    });
  }

  /** Full jitter below an exponential ceiling; `patient`: between half the longest backoff and all of it. */
  private retry(patient = false): void {
    const min = this.o.minBackoffMs ?? 250;
    const max = this.o.maxBackoffMs ?? 10_000;
    const ceiling = Math.min(max, min * 2 ** this.attempts++);
    const delay = Math.round(patient ? max / 2 + (Math.random() * max) / 2 : Math.random() * ceiling);
    if (this.attempts <= 3 || this.attempts % 10 === 0) this.o.log.info({ delayMs: delay, attempt: this.attempts, err: this.lastError }, 'reconnecting to the controller');
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
