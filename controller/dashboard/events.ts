// Live connection and denial events for the dashboard: the agents' `connections` and `denials`
// streams (agent/api/events.ts), relayed to browsers as server-sent events. The relay subscribes
// to the agents only while a browser listens, as the agents stream only while someone subscribes,
// and comes back to an agent that went away (restart, upgrade) with a growing, jittered pause.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../../shared/log.js';
import type { AgentEventMessage, AgentQuery } from './agent-link.js';

/** What a browser receives as `event: mesh`: an agent's event, with the node it came from. */
export interface RelayedEvent extends AgentEventMessage {
  node: string;
}

/** `event: relay`: whether the relay is streaming from a node's agent, and why not. */
export interface RelayState {
  node: string;
  streaming: boolean;
  reason?: string;
}

const topics = ['connections', 'denials'];
/** Events kept for a browser that arrives late (only those relayed while someone listened). */
const keep = 200;
/** A browser that stops reading is dropped past this much queued output. */
const maxQueued = 1024 * 1024;

interface NodeStream {
  stop: () => void;
  retry?: NodeJS.Timeout;
  failures: number;
  state: RelayState;
}

export class EventRelay {
  private readonly clients = new Set<ServerResponse>();
  private readonly streams = new Map<string, NodeStream>();
  private readonly recent: RelayedEvent[] = [];

  constructor(
    private readonly o: { nodes: () => string[]; query: AgentQuery; log: Logger },
  ) {}

  /** Serves one browser's `GET /api/events` until it goes away. */
  attach(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(`retry: 2000\n\n`);
    for (const e of this.recent) this.write(res, 'mesh', e);
    this.clients.add(res);
    for (const node of this.o.nodes()) this.start(node);
    for (const s of this.streams.values()) this.write(res, 'relay', s.state);
    // Comments keep idle connections open through proxies that time them out.
    const heartbeat = setInterval(() => res.write(': keepalive\n\n'), 15_000);
    req.on('close', () => {
      clearInterval(heartbeat);
      this.clients.delete(res);
      if (this.clients.size === 0) this.stopAll();
    });
  }

  close(): void {
    for (const c of this.clients) c.end();
    this.clients.clear();
    this.stopAll();
  }

  private start(node: string): void {
    if (this.streams.has(node)) return;
    const stream: NodeStream = { stop: () => undefined, failures: 0, state: { node, streaming: false, reason: 'connecting' } };
    this.streams.set(node, stream);
    this.connect(node, stream);
  }

  private connect(node: string, stream: NodeStream): void {
    stream.retry = undefined;
    stream.stop = this.o.query.subscribe(node, topics, {
      open: () => {
        stream.failures = 0;
        this.setState(stream, { node, streaming: true });
      },
      event: (e) => this.publish({ node, ...e }),
      close: (reason) => {
        this.setState(stream, { node, streaming: false, reason });
        if (this.clients.size === 0 || this.streams.get(node) !== stream) return;
        // 0.5 s doubling to 10 s, with full jitter, so a restarted agent is not hit in lockstep.
        const ceiling = Math.min(10_000, 500 * 2 ** stream.failures++);
        stream.retry = setTimeout(() => this.connect(node, stream), Math.random() * ceiling);
      },
    });
  }

  private setState(stream: NodeStream, state: RelayState): void {
    stream.state = state;
    if (!state.streaming) this.o.log.debug({ node: state.node, reason: state.reason }, 'event relay: agent stream down');
    for (const c of this.clients) this.write(c, 'relay', state);
  }

  private publish(e: RelayedEvent): void {
    this.recent.push(e);
    if (this.recent.length > keep) this.recent.shift();
    for (const c of this.clients) this.write(c, 'mesh', e);
  }

  private write(res: ServerResponse, event: string, data: unknown): void {
    if (res.writableLength > maxQueued) {
      res.destroy();
      this.clients.delete(res);
      return;
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  private stopAll(): void {
    for (const s of this.streams.values()) {
      clearTimeout(s.retry);
      s.stop();
    }
    this.streams.clear();
  }
}
