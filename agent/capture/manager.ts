// Which pods of this node are captured, kept in step with enrollment: for every enrolled pod the
// agent opens its listeners inside the pod's network namespace (15001 outbound, 15006 inbound,
// SO_REUSEPORT so a new agent can open beside an old one) and then installs the redirect, in that
// order, so redirected traffic always finds a listener. When the pod leaves the mesh the redirect
// goes first and the listeners close; connections already open finish normally.
// Until the HBONE proxy exists, captured connections are forwarded in plain TCP (proxy/forward.ts).

import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { closeFd, listenerIn, openNetns } from '../../native/netns.js';
import type { WorkloadEntry } from '../../shared/protocol/config.js';
import type { AgentState } from '../state/state.js';
import { createForwarder, type Forwarder } from '../proxy/forward.js';
import { installCapture, ports, removeCapture } from './redirect.js';

interface Captured {
  workload: string;
  netns: string;
  nsFd: number;
  servers: Server[];
  outbound: Forwarder;
  inbound: Forwarder;
}

export interface CaptureEvents {
  onChange?: (workload: string, captured: boolean, error?: string) => void;
}

export class CaptureManager {
  private readonly pods = new Map<string, Captured>();
  private readonly failed = new Map<string, string>();
  /** When each pod became wanted, and how long it took until it was captured. */
  private readonly wantedSince = new Map<string, number>();
  private readonly latencyMs = new Map<string, number>();
  /** Pods already checked for rules a previous agent left. */
  private readonly checked = new Set<string>();
  private busy: Promise<void> = Promise.resolve();
  private readonly onConfig = () => this.schedule();

  constructor(private readonly o: { state: AgentState; log: Logger } & CaptureEvents) {}

  start(): void {
    this.o.state.on('config', this.onConfig);
    this.schedule();
  }

  async stop(): Promise<void> {
    this.o.state.off('config', this.onConfig);
    await this.busy;
    // The redirect stays in place on purpose: a restarted agent opens its listeners beside it,
    // and the pod never sends a byte uncaptured meanwhile. Listeners close with the process.
  }

  /** Per pod and direction: connections opened and closed, bytes each way. */
  counters() {
    return [...this.pods.values()].flatMap((c) => [
      { workload: c.workload, direction: 'outbound', ...c.outbound.counters },
      { workload: c.workload, direction: 'inbound', ...c.inbound.counters },
    ]);
  }

  status() {
    return { captured: [...this.pods.keys()], failed: Object.fromEntries(this.failed), latencyMs: Object.fromEntries(this.latencyMs) };
  }

  /** Reconciles one at a time, in order, so two config versions never race over one pod. */
  private schedule(): void {
    this.busy = this.busy.then(() => this.reconcile()).catch((err: unknown) => this.o.log.error({ err: errorMessage(err) }, 'capture reconcile failed'));
  }

  private async reconcile(): Promise<void> {
    const wanted = new Map<string, WorkloadEntry>();
    const now = performance.now();
    for (const w of this.o.state.localWorkloads()) {
      if (!w.netns || !this.o.state.isEnrolled(w)) continue;
      const key = `${w.namespace}/${w.name}`;
      wanted.set(key, w);
      if (!this.pods.has(key) && !this.wantedSince.has(key)) this.wantedSince.set(key, now);
    }
    // A few pods at a time: listeners wait for their 'listening' event, the rules are instant.
    const todo = [...wanted].filter(([key]) => !this.pods.has(key));
    const workers = Array.from({ length: Math.min(8, todo.length) }, async () => {
      for (let next = todo.shift(); next; next = todo.shift()) await this.capture(next[0], next[1]);
    });
    await Promise.all(workers);
    for (const [key, c] of this.pods) if (!wanted.has(key)) await this.release(c);
    // A previous agent run may have left rules in pods that left the mesh while no agent ran:
    // look at each local pod once, and clean what is not wanted.
    for (const w of this.o.state.localWorkloads()) {
      const key = `${w.namespace}/${w.name}`;
      if (!w.netns || wanted.has(key) || this.checked.has(key) || !existsSync(w.netns)) continue;
      this.checked.add(key);
      try {
        const fd = openNetns(w.netns);
        try {
          removeCapture(fd);
        } finally {
          closeFd(fd);
        }
      } catch (err) {
        this.o.log.warn({ workload: key, err: errorMessage(err) }, 'cleaning stale capture failed');
      }
    }
  }

  private async capture(key: string, w: WorkloadEntry): Promise<void> {
    const netns = w.netns!;
    if (!existsSync(netns)) return;
    let nsFd = -1;
    const servers: Server[] = [];
    try {
      nsFd = openNetns(netns);
      const outbound = createForwarder(nsFd);
      const inbound = createForwarder(nsFd);
      for (const [port, f] of [
        [ports.outbound, outbound],
        [ports.inbound, inbound],
      ] as const) {
        // Half-open: a client that finished sending still gets the whole answer.
        const server = createServer({ allowHalfOpen: true }, (socket) => f.handle(socket));
        server.on('error', (err) => this.o.log.warn({ workload: key, port, err: err.message }, 'capture listener error'));
        server.listen({ fd: listenerIn(nsFd, '0.0.0.0', port, { reusePort: true }) });
        await once(server, 'listening');
        servers.push(server);
      }
      installCapture(nsFd);
      this.pods.set(key, { workload: key, netns, nsFd, servers, outbound, inbound });
      this.failed.delete(key);
      const since = this.wantedSince.get(key);
      if (since !== undefined) this.latencyMs.set(key, Math.round((performance.now() - since) * 10) / 10);
      this.wantedSince.delete(key);
      this.o.log.info({ workload: key }, 'pod captured');
      this.o.onChange?.(key, true);
    } catch (err) {
      // Nothing half-done stays: no rules (installCapture cleans up), no listeners.
      for (const s of servers) s.close();
      if (nsFd >= 0) closeFd(nsFd);
      const message = errorMessage(err);
      this.failed.set(key, message);
      this.o.log.error({ workload: key, err: message }, 'capture failed; retrying with the next change');
      this.o.onChange?.(key, false, message);
    }
  }

  private async release(c: Captured): Promise<void> {
    this.pods.delete(c.workload);
    this.latencyMs.delete(c.workload);
    this.checked.add(c.workload);
    try {
      removeCapture(c.nsFd);
    } catch (err) {
      this.o.log.error({ workload: c.workload, err: errorMessage(err) }, 'removing capture failed');
    }
    let open = c.servers.length;
    for (const s of c.servers) s.close(() => --open === 0 && closeFd(c.nsFd));
    this.o.log.info({ workload: c.workload }, 'pod released from capture');
    this.o.onChange?.(c.workload, false);
  }
}
