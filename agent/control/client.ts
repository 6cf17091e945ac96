// The agent's connection to the controller: WebSocket over TLS (the controller's CA pinned),
// authenticated by the node's token. Applies every push to the state and answers ack or nack.
// When the controller is away the agent keeps its last configuration and reconnects with
// exponential backoff and full jitter, so a fleet of agents does not return in lockstep.

import { gunzipSync } from 'node:zlib';
import { WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import { type ConfigPush, pushPath } from '../../shared/protocol/config.js';
import { nodeAuthentication, type NodeChannelOptions } from '../identity/caclient.js';
import { type AgentState, ConfigRejected } from '../state/state.js';

/** The largest push an agent accepts, decompressed. */
const maxPushBytes = 512 * 1024 * 1024;

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

  constructor(private readonly o: ControlOptions) {}

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
    const ws = new WebSocket(`${this.o.url}${pushPath}`, {
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
      this.o.log.info({ controller: this.o.url }, 'connected to the controller');
    });
    // Full pushes come gzip-compressed as binary messages, deltas as text.
    ws.on('message', (data, isBinary) => {
      heard();
      let text: string;
      try {
        text = isBinary ? gunzipSync(data as Buffer, { maxOutputLength: maxPushBytes }).toString() : data.toString();
      } catch (err) {
        ws.send(JSON.stringify({ type: 'nack', version: -1, reason: `a compressed push did not decompress: ${(err as Error).message}` }));
        return;
      }
      this.onPush(ws, text);
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
    ws.on('close', () => {
      clearTimeout(silence);
      if (this.connected) this.o.log.warn({ err: this.lastError }, 'lost the controller; serving the last configuration');
      this.connected = false;
      if (!this.closed) this.retry();
    });
  }

  private retry(): void {
    const min = this.o.minBackoffMs ?? 250;
    const max = this.o.maxBackoffMs ?? 10_000;
    const ceiling = Math.min(max, min * 2 ** this.attempts++);
    const delay = Math.round(Math.random() * ceiling);
    if (this.attempts <= 3 || this.attempts % 10 === 0) this.o.log.info({ delayMs: delay, attempt: this.attempts, err: this.lastError }, 'reconnecting to the controller');
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private onPush(ws: WebSocket, text: string): void {
    let push: ConfigPush;
    try {
      push = JSON.parse(text) as ConfigPush;
    } catch {
      ws.send(JSON.stringify({ type: 'nack', version: -1, reason: 'push is not JSON' }));
      return;
    }
    if (typeof push !== 'object' || push === null || push.type !== 'config') {
      ws.send(JSON.stringify({ type: 'nack', version: -1, reason: 'a push must be a JSON object of type config' }));
      return;
    }
    try {
      this.o.state.apply(push);
      ws.send(JSON.stringify({ type: 'ack', version: push.to }));
    } catch (err) {
      const reason = err instanceof ConfigRejected ? err.reason : (err as Error).message;
      this.o.log.warn({ version: push.to, reason }, 'rejected a config push');
      ws.send(JSON.stringify({ type: 'nack', version: push.to, reason }));
      // A delta that does not fit our version: we lost track, so ask for everything.
      if (!push.full && push.from !== this.o.state.version) this.resync(reason);
    }
  }
}
