// Which pods of this node are captured, kept in step with enrollment: for every enrolled pod the
// agent opens its listeners inside the pod's network namespace (15001 outbound, 15006 inbound,
// SO_REUSEPORT so a new agent can open beside an old one) and then installs the redirect through
// the chosen mode (netfilter or eBPF), in that order, so redirected traffic always finds a
// listener. When the pod leaves the mesh the redirect goes first and the listeners close; the
// connections captured so far finish normally (the pod drains), and what they still need in the pod
// (the transparency route, the nat chains of the netfilter mode) goes once the last has ended.
// Where each pod is (its network namespace, address, cgroup) comes from discovery/pods.ts.
// What happens to a captured connection is the proxy's (proxy/outbound.ts, proxy/inbound.ts).

import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { cgroup2Mount } from '../../shared/host/cgroup.js';
import { closeFd, inNetns, listenerIn, openNetns } from '../../native/netns.js';
import type { WorkloadEntry } from '../../shared/protocol/config.js';
import type { AgentState } from '../state/state.js';
import type { PodLocation } from '../discovery/pods.js';
import { ports, type InstalledRedirect, type Redirect, type UnwantedPod } from './redirect.js';
import { installTransparency, removeTransparency } from './transparent.js';

/** A captured pod, as the proxy sees it. */
export interface CapturedPod {
  /** `namespace/name`. */
  key: string;
  workload: WorkloadEntry;
  nsFd: number;
  netns: string;
  redirect: InstalledRedirect;
}

interface Captured extends CapturedPod {
  servers: Server[];
  /** When the pod was released (performance.now()), while it drains. */
  releasedAt?: number;
}

export interface CaptureEvents {
  onChange?: (workload: string, captured: boolean, error?: string) => void;
}

/** Where captured connections go: the proxy. */
export interface CaptureHandlers {
  outbound(pod: CapturedPod, socket: Socket): void;
  inbound(pod: CapturedPod, socket: Socket): void;
}

/** Listening sockets for one pod, made in its namespace: the outbound (15001) and inbound (15006). */
export interface PodListeners {
  outbound: number;
  inbound: number;
}

/**
 * The agent's worker threads (agent/workers/), which take a pod's connections beside the main
 * thread: each gets listeners of its own in the pod's SO_REUSEPORT groups, made here with the
 * main thread's, and is told when the pod is released and when it has drained.
 */
export interface CaptureWorkers {
  /** How many workers, each taking one more listener per port. */
  readonly count: number;
  /** The pod is captured; `listeners[i]` are worker i's, which it owns and closes from now on. */
  captured(pod: CapturedPod, listeners: PodListeners[]): void;
  /** No new connections are redirected to the pod's listeners. */
  released(key: string): void;
  /** The pod's listeners close: its last captured connection has ended, or the pod is gone. */
  drained(key: string): void;
}

export interface CaptureManagerOptions extends CaptureEvents {
  state: AgentState;
  redirect: Redirect;
  handlers: CaptureHandlers;
  log: Logger;
  /** Whether the proxy (any of its workers) still holds connections of the pod (`namespace/name`); none if not given. */
  inUse?: (workload: string) => boolean | Promise<boolean>;
  workers?: CaptureWorkers;
  /** Where a workload's pod is on this node (discovery), or undefined while the agent has not found it. */
  locate: (w: WorkloadEntry) => PodLocation | undefined;
}

/** How often a released pod is checked for its last captured connection. */
const drainCheckMs = 1000;

export class CaptureManager {
  private readonly pods = new Map<string, Captured>();
  /** Released pods whose captured connections have not all ended. */
  private readonly draining = new Map<string, Captured>();
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly byIp = new Map<string, Captured>();
  private readonly failed = new Map<string, string>();
  /** Capture failures since start, per pod: what the metric counts. */
  readonly failures = new Map<string, number>();
  /** When each pod became wanted, and how long it took until it was captured. */
  private readonly wantedSince = new Map<string, number>();
  private readonly latencyMs = new Map<string, number>();
  private busy: Promise<void> = Promise.resolve();
  private settle: (() => void) | undefined;
  /** Resolves once the first configuration's pods have all been captured or have failed. */
  readonly settled = new Promise<void>((resolve) => (this.settle = resolve));
  private retry: NodeJS.Timeout | undefined;
  private retryDelayMs = 0;
  private readonly onConfig = () => this.schedule();

  constructor(private readonly o: CaptureManagerOptions) {}

  /** Whether the workload, one of this node's, should be captured. */
  wants(w: WorkloadEntry): boolean {
    return this.o.state.isEnrolled(w);
  }

  /** The captured pod of this `namespace/name`, if it is captured now. */
  capturedPod(key: string): CapturedPod | undefined {
    return this.pods.get(key);
  }

  /** Reconciles again: where pods are has changed (a pod was discovered or forgotten). */
  refresh(): void {
    this.schedule();
  }

  /** The captured pod with this address, if it is one of this node's. */
  podAt(ip: string): CapturedPod | undefined {
    return this.byIp.get(ip);
  }

  captured(): IterableIterator<CapturedPod> {
    return this.pods.values();
  }

  get mode() {
    return this.o.redirect.mode;
  }

  start(): void {
    this.o.state.on('config', this.onConfig);
    this.schedule();
  }

  async stop(): Promise<void> {
    this.o.state.off('config', this.onConfig);
    clearTimeout(this.retry);
    clearInterval(this.drainTimer);
    await this.busy;
    // The redirect stays in place on purpose: a restarted agent opens its listeners beside it,
    // and the pod never sends a byte uncaptured meanwhile. Listeners close with the process.
    this.o.redirect.close();
  }

  /**
   * Stops taking new connections (an agent shutting down): every pod's listeners close and the
   * redirect stays. With SO_REUSEPORT and tcp_migrate_req, a new agent listening beside this one
   * takes the pods' new connections, including those still queued on these listeners.
   */
  stopAccepting(): void {
    for (const c of [...this.pods.values(), ...this.draining.values()]) for (const s of c.servers) s.close();
    // The workers' listeners close with their own stopAccepting (agent/workers/).
  }

  status() {
    return {
      mode: this.o.redirect.mode,
      captured: [...this.pods.keys()],
      draining: [...this.draining.keys()],
      failed: Object.fromEntries(this.failed),
      latencyMs: Object.fromEntries(this.latencyMs),
      kernel: this.o.redirect.stats(),
    };
  }

  /** Reconciles one at a time, in order, so two config versions never race over one pod. */
  private schedule(): void {
    this.busy = this.busy.then(() => this.reconcile()).catch((err: unknown) => this.o.log.error({ err: errorMessage(err) }, 'capture reconcile failed'));
  }

  private async reconcile(): Promise<void> {
    // Before the first push the agent knows no pods; cleaning then would release every pod.
    if (this.o.state.version === 0) return;
    const wanted = new Map<string, { w: WorkloadEntry; at: PodLocation }>();
    const unwanted: UnwantedPod[] = [];
    const now = performance.now();
    for (const w of this.o.state.localWorkloads()) {
      const key = `${w.namespace}/${w.name}`;
      const at = this.o.locate(w);
      if (!at) continue;
      if (!this.wants(w)) {
        unwanted.push({ workload: key, ip: at.ip, netns: at.netns, ...(at.cgroup ? { cgroup: this.cgroupDir(at.cgroup) } : {}) });
        continue;
      }
      wanted.set(key, { w, at });
      if (!this.pods.has(key) && !this.wantedSince.has(key)) this.wantedSince.set(key, now);
    }
    // A pod whose sandbox was replaced (a new network namespace, same name): the old capture goes first.
    for (const [key, c] of this.pods) if (wanted.has(key) && wanted.get(key)!.at.netns !== c.netns) await this.release(c);
    // A few pods at a time: listeners wait for their 'listening' event, the redirect is instant.
    const todo = [...wanted].filter(([key]) => !this.pods.has(key));
    const workers = Array.from({ length: Math.min(8, todo.length) }, async () => {
      for (let next = todo.shift(); next; next = todo.shift()) await this.capture(next[0], next[1].w, next[1].at);
    });
    await Promise.all(workers);
    this.settle?.();
    for (const [key, c] of this.pods) if (!wanted.has(key)) await this.release(c);
    // A previous agent run may have left redirects for pods that left the mesh while no agent ran.
    try {
      this.o.redirect.cleanStale(unwanted, new Set(wanted.keys()));
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'cleaning stale capture failed');
    }
    this.scheduleRetry();
  }

  /** Failed pods are tried again with backoff (0.5 s doubling to 30 s), not only on the next change. */
  private scheduleRetry(): void {
    clearTimeout(this.retry);
    if (this.failed.size === 0) {
      this.retryDelayMs = 0;
      return;
    }
    this.retryDelayMs = Math.min(30_000, this.retryDelayMs ? this.retryDelayMs * 2 : 500);
    this.retry = setTimeout(() => this.schedule(), this.retryDelayMs);
    this.retry.unref();
  }

  private cgroupDir(relative: string): string {
    return join(cgroup2Mount(), relative);
  }

  private async capture(key: string, entry: WorkloadEntry, at: PodLocation): Promise<void> {
    const netns = at.netns;
    if (!existsSync(netns)) return;
    // A new pod's address is known from its CNI event before the controller has it.
    const w = entry.ip === at.ip ? entry : { ...entry, ip: at.ip };
    let nsFd = -1;
    const servers: Server[] = [];
    const early: ['outbound' | 'inbound', Socket][] = [];
    /** The worker threads' listeners, theirs once handed over. */
    const forWorkers: PodListeners[] = [];
    try {
      nsFd = openNetns(netns);
      // Connections can reach the listeners before the redirect exists (sent to 15001 directly):
      // they find no destination and are refused.
      // A pod enrolled again while it drains: its leftovers are replaced below, not removed later.
      const old = this.draining.get(key);
      if (old) {
        this.draining.delete(key);
        for (const s of old.servers) s.close();
        this.o.workers?.drained(key);
        closeFd(old.nsFd);
      }
      const pod = { key, workload: w, nsFd, netns } as Captured;
      const listeners = { outbound: -1, inbound: -1 };
      for (const [port, dir] of [
        [ports.outbound, 'outbound'],
        [ports.inbound, 'inbound'],
      ] as const) {
        // Half-open: a client that finished sending still gets the whole answer. No Nagle: a proxy
        // must not hold a small write back for 40 ms waiting on the peer's delayed ACK.
        // Beside a running agent (a handover) connections arrive as soon as this listener joins the
        // port's SO_REUSEPORT group, before this agent's own redirect is in place: they wait for it.
        const fd = listenerIn(nsFd, '0.0.0.0', port, { reusePort: true });
        listeners[dir] = fd;
        const server = await podListener(fd, (socket) => (pod.redirect ? this.o.handlers[dir](pod, socket) : early.push([dir, socket])), (err) => this.o.log.warn({ workload: key, port, err: err.message }, 'capture listener error'));
        servers.push(server);
      }
      for (let i = 0; i < (this.o.workers?.count ?? 0); i++) {
        const l = { outbound: -1, inbound: -1 };
        forWorkers.push(l);
        l.outbound = listenerIn(nsFd, '0.0.0.0', ports.outbound, { reusePort: true });
        l.inbound = listenerIn(nsFd, '0.0.0.0', ports.inbound, { reusePort: true });
      }
      allowRequestMigration(nsFd, this.o.log);
      // Answers to the client addresses the proxy connects from must come back to it.
      await installTransparency(nsFd, netns);
      let redirect: InstalledRedirect;
      try {
        redirect = this.o.redirect.install({ workload: key, ip: w.ip, nsFd, listeners, ...(at.cgroup ? { cgroup: this.cgroupDir(at.cgroup) } : {}) });
      } catch (err) {
        await removeTransparency(nsFd, netns).catch(() => undefined);
        throw err;
      }
      Object.assign(pod, { redirect, servers });
      for (const [dir, socket] of early.splice(0)) if (!socket.destroyed) this.o.handlers[dir](pod, socket);
      // Connections the kernel queued on the workers' listeners meanwhile wait there for them.
      this.o.workers?.captured(pod, forWorkers.splice(0));
      this.pods.set(key, pod);
      this.byIp.set(w.ip, pod);
      this.failed.delete(key);
      const since = this.wantedSince.get(key);
      if (since !== undefined) this.latencyMs.set(key, Math.round((performance.now() - since) * 10) / 10);
      this.wantedSince.delete(key);
      this.o.log.info({ workload: key, mode: this.o.redirect.mode, how: redirect.how }, 'pod captured');
      this.o.onChange?.(key, true);
    } catch (err) {
      // Nothing half-done stays: the redirect installs all or nothing, and the listeners close.
      for (const s of servers) s.close();
      for (const l of forWorkers) for (const fd of [l.outbound, l.inbound]) if (fd >= 0) closeFd(fd);
      for (const [, socket] of early.splice(0)) socket.resetAndDestroy();
      if (nsFd >= 0) closeFd(nsFd);
      const message = errorMessage(err);
      this.failed.set(key, message);
      this.failures.set(key, (this.failures.get(key) ?? 0) + 1);
      this.o.log.error({ workload: key, mode: this.o.redirect.mode, err: message }, 'capture failed; retrying with backoff');
      this.o.onChange?.(key, false, message);
    }
  }

  private async release(c: Captured): Promise<void> {
    this.pods.delete(c.key);
    if (this.byIp.get(c.workload.ip) === c) this.byIp.delete(c.workload.ip);
    this.latencyMs.delete(c.key);
    try {
      c.redirect.remove();
    } catch (err) {
      this.o.log.error({ workload: c.key, err: errorMessage(err) }, 'removing capture failed');
    }
    // New connections are no longer redirected. The listeners stay until the pod has drained: a
    // connection redirected just before may still be on its way to them, or in their accept queue
    // (the first check is a second away).
    this.o.workers?.released(c.key);
    this.o.log.info({ workload: c.key }, 'pod released from capture; draining its connections');
    this.o.onChange?.(c.key, false);
    c.releasedAt = performance.now();
    this.draining.set(c.key, c);
    // Checked in the same queue as reconciles, so a pod enrolled again meanwhile is never half-removed.
    this.drainTimer ??= setInterval(() => {
      this.busy = this.busy.then(() => this.finishDrained()).catch((err: unknown) => this.o.log.error({ err: errorMessage(err) }, 'drain check failed'));
    }, drainCheckMs).unref();
  }

  /** Removes the leftovers of released pods whose last captured connection has ended (or whose pod is gone). */
  private async finishDrained(): Promise<void> {
    for (const [key, c] of this.draining) {
      if (existsSync(c.netns) && (performance.now() - (c.releasedAt ?? 0) < drainCheckMs || (await this.o.inUse?.(key)))) continue;
      this.draining.delete(key);
      for (const s of c.servers) s.close();
      this.o.workers?.drained(key);
      try {
        if (existsSync(c.netns)) {
          c.redirect.finish();
          await removeTransparency(c.nsFd, c.netns);
        }
        this.o.log.info({ workload: key }, 'pod drained');
      } catch (err) {
        this.o.log.warn({ workload: key, err: errorMessage(err) }, 'removing what the drained pod needed failed');
      } finally {
        closeFd(c.nsFd);
      }
    }
    if (this.draining.size === 0) {
      clearInterval(this.drainTimer);
      this.drainTimer = undefined;
    }
  }
}

/**
 * net.ipv4.tcp_migrate_req in a namespace (this thread's own when `nsFd` is undefined): when a
 * listener of a SO_REUSEPORT group closes, the connections waiting in its accept queue move to
 * another listener of the group instead of being reset. That is what lets an agent hand a pod over
 * to its successor without losing a connection. Per namespace; a kernel without it (before 5.14)
 * keeps working with that small loss, and says so.
 */
/**
 * A pod's listener on `fd`, a listening socket made in the pod's namespace (SO_REUSEPORT: the
 * agent's other workers and a successor agent listen beside it).
 */
export async function podListener(fd: number, onSocket: (socket: Socket) => void, onError: (err: Error) => void): Promise<Server> {
  // Half-open: a client that finished sending still gets the whole answer. No Nagle: a proxy
  // must not hold a small write back for 40 ms waiting on the peer's delayed ACK.
  const server = createServer({ allowHalfOpen: true, noDelay: true }, onSocket);
  server.on('error', onError);
  server.listen({ fd });
  await once(server, 'listening');
  return server;
}

export function allowRequestMigration(nsFd: number | undefined, log: Logger): void {
  const write = () => writeFileSync('/proc/sys/net/ipv4/tcp_migrate_req', '1');
  try {
    if (nsFd === undefined) write();
    else inNetns(nsFd, write);
  } catch (err) {
    log.warn({ err: errorMessage(err) }, 'cannot enable tcp_migrate_req: connections queued on a closing listener will be reset during an agent handover');
  }
}
