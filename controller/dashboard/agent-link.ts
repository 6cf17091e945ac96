// The dashboard's way to the node agents' query API (agent/api/server.ts): one-off calls (certs,
// version, explain-outbound/-inbound) and subscriptions (connections, denials). Agents bind that API
// to loopback inside their node's network namespace, so in the local cluster the socket is made
// there (native/netns.ts) and the agent sees a loopback client it trusts; how a node is reached is
// the `AgentDialer`'s business, everything above it speaks the API's JSON.

import { Socket } from 'node:net';
import { WebSocket } from 'ws';
import { AmbitError, errorMessage } from '../../shared/errors.js';
import { openNetns, tcpSocketIn } from '../../native/netns.js';

/** The agents' query API port (ztunnel's admin port, DESIGN.md), bound to loopback in each node. */
export const agentQueryPort = 15000;

/** A TCP socket on its way to a node agent's query API; undefined when the node is unknown. */
export type AgentDialer = (node: string) => Socket | undefined;

/** Outside the local cluster the controller has no way yet to the agents' loopback-bound API. */
export const noDialer: AgentDialer = () => {
  throw new AmbitError('AgentUnreachable', "this controller reaches the agents' query API only in the local cluster; use `ambit query NODE ... --address HOST:15000 --token-file FILE` meanwhile");
};

/** The local cluster's agents: 127.0.0.1:`port` inside each node's namespace (`/run/netns/<netns>`). */
export function netnsDialer(nodes: { name: string; netns: string }[], port: number): AgentDialer {
  const nsFds = new Map<string, number>();
  return (node) => {
    const layout = nodes.find((n) => n.name === node);
    if (!layout) return undefined;
    let ns = nsFds.get(node);
    if (ns === undefined) nsFds.set(node, (ns = openNetns(`/run/netns/${layout.netns}`)));
    // The socket must exist before Node connects it: net.connect() would make it a tick later,
    // back in the controller's own namespace (MACHINE.md).
    const socket = new Socket({ fd: tcpSocketIn(ns), readable: true, writable: true });
    return socket.connect(port, '127.0.0.1');
  };
}

export interface AgentEventMessage {
  topic: string;
  time: string;
  data: unknown;
}

export class AgentQuery {
  constructor(
    private readonly dial: AgentDialer,
    private readonly timeoutMs = 5000,
  ) {}

  /** One request to `node`'s agent; the connection closes after the answer. */
  async call(node: string, method: string, params?: unknown): Promise<unknown> {
    const ws = await this.open(node);
    try {
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new AmbitError('AgentTimeout', `the agent of ${node} did not answer ${method} within ${this.timeoutMs} ms; see \`ambit agents\``)), this.timeoutMs);
        ws.once('close', () => reject(new AmbitError('AgentUnreachable', `the agent of ${node} closed its query API during ${method}`)));
        ws.on('message', (data: Buffer) => {
          const msg = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: { code: string; message: string } };
          if (msg.id !== 1) return;
          clearTimeout(timer);
          if (msg.error) reject(new AmbitError(msg.error.code, `the agent of ${node}: ${msg.error.message}`));
          else resolve(msg.result);
        });
        ws.send(JSON.stringify({ id: 1, method, ...(params === undefined ? {} : { params }) }));
      });
    } finally {
      ws.close();
    }
  }

  /**
   * Streams `topics` of `node`'s agent to `on.event` until the returned function is called or the
   * agent goes away (`on.close`, with the reason); `on.open` once the agent has taken the
   * subscription. The caller decides whether to come back.
   */
  subscribe(node: string, topics: string[], on: { event: (e: AgentEventMessage) => void; open: () => void; close: (reason: string) => void }): () => void {
    let ws: WebSocket | undefined;
    let stopped = false;
    const closed = (reason: string) => {
      if (stopped) return;
      stopped = true;
      on.close(reason);
    };
    this.open(node).then(
      (socket) => {
        if (stopped) return socket.close();
        ws = socket;
        socket.on('message', (data: Buffer) => {
          const msg = JSON.parse(data.toString()) as Partial<AgentEventMessage> & { id?: number; result?: unknown; error?: { message: string } };
          if (msg.error) closed(`the agent of ${node}: ${msg.error.message}`);
          else if (typeof msg.topic === 'string') on.event(msg as AgentEventMessage);
          else if (msg.id === 1) on.open();
        });
        socket.once('close', () => closed(`the agent of ${node} closed its query API`));
        socket.send(JSON.stringify({ id: 1, method: 'subscribe', params: { topics } }));
      },
      (err: unknown) => closed(errorMessage(err)),
    );
    return () => {
      stopped = true;
      ws?.close();
    };
  }

  private open(node: string): Promise<WebSocket> {
    let socket: Socket | undefined;
    try {
      socket = this.dial(node);
    } catch (err) {
      return Promise.reject(err instanceof AmbitError ? err : new AmbitError('AgentUnreachable', `cannot open a socket to the agent of ${node}: ${errorMessage(err)}`));
    }
    if (!socket) return Promise.reject(new AmbitError('NotFound', `node ${node} is not in the cluster`));
    const ws = new WebSocket(`ws://127.0.0.1/`, { createConnection: () => socket, handshakeTimeout: this.timeoutMs, maxPayload: 32 * 1024 * 1024 });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(ws));
      ws.once('unexpected-response', (_req, res) => reject(new AmbitError('AgentRefused', `the agent of ${node} refused the query (HTTP ${res.statusCode})`)));
      ws.once('error', (err) => reject(new AmbitError('AgentUnreachable', `cannot reach the agent of ${node}: ${err.message}; is it running? see \`ambit agents\``)));
    });
  }
}
