// The agent's worker threads, seen from the main thread: started with one configuration and one
// certificate set (copies kept current with every push and every issued certificate), handed a
// listener of their own in each captured pod, and asked for what the query API, metrics and the
// drain need of their connections. A worker that dies ends the agent, as an uncaught error in the
// main thread would: its supervisor starts a fresh one, which takes the pods over.
//
// Threads, not processes: a thread shares the process's Node binary, libuv and code pages, its fds
// (the pods' namespaces, the eBPF map) and cgroup, and ends with it even on SIGKILL; a worker
// thread costs a few MB of RSS where a process costs the 60 MB of another agent (BENCHMARKS.md).

import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import type { CpuProfile } from '../../shared/telemetry/profile.js';
import type { Logger } from '../../shared/log.js';
import type { AgentState } from '../state/state.js';
import type { Topic, RemoteSource } from '../api/events.js';
import type { CapturedPod, CaptureWorkers, PodListeners } from '../capture/manager.js';
import type { CertificateManager } from '../identity/manager.js';
import { shareCertificate } from '../identity/set.js';
import type { PodCounters } from '../proxy/proxy.js';
import type { WorkerMetrics } from '../telemetry/metrics.js';
import type { FromWorker, Question, ToWorker, WorkerSetup } from './protocol.js';
import { closeFd } from '../../native/netns.js';

export interface WorkersOptions {
  /** What every worker is started with; `index` is filled in per worker. */
  setup: Omit<WorkerSetup, 'index'>;
  state: AgentState;
  certificates: CertificateManager;
  log: Logger;
}

/** How long a question to a worker may take before its answer is left out. */
const answerMs = 5000;

export class ProxyWorkers implements CaptureWorkers {
  /** Worker threads: the agent's event loops but the main thread's. */
  readonly count: number;
  private readonly workers: Worker[] = [];
  private nextId = 1;
  private readonly waiting = new Map<number, (m: { value: unknown; error?: string }) => void>();
  private readonly emitters = new Map<Topic, Set<(data: unknown) => void>>();
  private stopping = false;

  constructor(private readonly o: WorkersOptions) {
    this.count = o.setup.count - 1;
  }

  /** Starts the threads, each from the state and certificates held now, and waits until each is ready. */
  async start(): Promise<void> {
    const ready: Promise<void>[] = [];
    for (let index = 1; index <= this.count; index++) {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { ...this.o.setup, index } satisfies WorkerSetup });
      this.workers.push(w);
      ready.push(
        new Promise((resolve) => {
          w.on('message', (m: FromWorker) => (m.type === 'ready' ? resolve() : this.received(m)));
        }),
      );
      w.on('error', (err) => this.o.log.error({ worker: index, err: err.message }, 'agent worker failed'));
      w.on('exit', (code) => {
        if (this.stopping) return;
        this.o.log.fatal({ worker: index, code }, 'an agent worker ended; the agent ends with it');
        process.exit(1);
      });
      w.postMessage({ type: 'push', push: this.o.state.snapshot() } satisfies ToWorker);
      for (const c of this.o.certificates.current()) w.postMessage({ type: 'certificate', certificate: shareCertificate(c) } satisfies ToWorker);
    }
    this.o.state.on('push', (push) => this.post({ type: 'push', push }));
    this.o.certificates.on('issued', (c) => this.post({ type: 'certificate', certificate: shareCertificate(c) }));
    this.o.certificates.on('dropped', (id) => this.post({ type: 'certificate-dropped', id }));
    await Promise.all(ready);
  }

  captured(pod: CapturedPod, listeners: PodListeners[]): void {
    const shared = { key: pod.key, workload: pod.workload, netns: pod.netns, how: pod.redirect.how, source: pod.redirect.source };
    this.workers.forEach((w, i) => {
      const l = listeners[i]!;
      if (this.stopping) return void [l.outbound, l.inbound].forEach(closeFd);
      w.postMessage({ type: 'capture', pod: shared, listeners: l } satisfies ToWorker);
    });
  }

  released(key: string): void {
    this.post({ type: 'release', key });
  }

  drained(key: string): void {
    this.post({ type: 'drained', key });
  }

  /** Every worker listens on 15008 beside the main thread. */
  async listen(host: string): Promise<void> {
    await this.ask({ ask: 'listen', host });
  }

  /** The workers' listeners close (the pods' and 15008); open tunnels run for up to `graceMs`. */
  stopAccepting(graceMs: number): void {
    this.post({ type: 'stop-accepting', graceMs });
  }

  /** Connections the workers hold open now. */
  async size(): Promise<number> {
    return (await this.ask<number>({ ask: 'size' })).reduce((a, b) => a + b, 0);
  }

  /** Whether any worker still holds a connection of the pod `namespace/name`. */
  async holds(workload: string): Promise<boolean> {
    return (await this.ask<boolean>({ ask: 'holds', workload })).some(Boolean);
  }

  /** `rows` (the main thread's per pod and direction) with every worker's counts added. */
  async addCounters<R extends PodCounters & { workload: string; direction: string }>(rows: R[]): Promise<R[]> {
    const theirs = await this.ask<R[]>({ ask: 'counters', workloads: [...new Set(rows.map((r) => r.workload))] });
    const byKey = new Map(rows.map((r) => [`${r.direction} ${r.workload}`, { ...r }]));
    for (const t of theirs.flat()) {
      const r = byKey.get(`${t.direction} ${t.workload}`);
      if (!r) continue;
      for (const k of ['opened', 'closed', 'failed', 'sent', 'received'] as const) r[k] += t[k];
    }
    return [...byKey.values()];
  }

  /** Each worker's share of the traffic (NodeProxy.load). */
  load(): Promise<unknown[]> {
    return this.ask({ ask: 'load' });
  }

  /** A CPU profile of every worker over the same `ms` (the admin API's /debug/cpuprofile). */
  async profile(ms: number): Promise<CpuProfile[]> {
    const profiles = await this.ask<CpuProfile>({ ask: 'profile', ms }, ms + answerMs);
    // A missing answer would shift every later worker's number: none rather than mislabelled ones.
    if (profiles.length !== this.count) throw new Error(`${this.count - profiles.length} of ${this.count} workers gave no profile (the agent's log says why)`);
    return profiles;
  }

  /** Worker `index`'s heap snapshot, streamed (V8 pauses that thread while it writes it). */
  heapSnapshot(index: number): Promise<Readable> {
    const w = this.workers[index - 1];
    if (!w) throw new Error(`no worker ${index}: the agent has workers 1 to ${this.count} beside the main thread (0)`);
    return w.getHeapSnapshot();
  }

  /** Each worker's metrics, for the one scrape on 15020. */
  metrics(): Promise<WorkerMetrics[]> {
    return this.ask<WorkerMetrics>({ ask: 'metrics' });
  }

  /** The data path's events of one topic from every worker (the query API's `subscribe`). */
  readonly subscribe: RemoteSource = (topic, emit) => {
    let set = this.emitters.get(topic);
    if (!set) {
      this.emitters.set(topic, (set = new Set()));
      this.post({ type: 'subscribe', topic });
    }
    set.add(emit);
    return () => {
      if (!set.delete(emit) || set.size > 0) return;
      this.emitters.delete(topic);
      this.post({ type: 'unsubscribe', topic });
    };
  };

  /** Cuts what the workers still hold and ends the threads. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.ask({ ask: 'stop' });
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private post(m: ToWorker): void {
    for (const w of this.workers) w.postMessage(m);
  }

  /** Every worker's answer; one that errs or does not answer in time is left out (and logged). */
  private async ask<T>(question: Question, withinMs = answerMs): Promise<T[]> {
    const answers = await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<{ value: unknown; error?: string } | undefined>((resolve) => {
            const id = this.nextId++;
            const timer = setTimeout(() => {
              this.waiting.delete(id);
              resolve({ value: undefined, error: `no answer within ${withinMs} ms` });
            }, withinMs);
            this.waiting.set(id, (m) => {
              clearTimeout(timer);
              resolve(m);
            });
            w.postMessage({ type: 'ask', id, question } satisfies ToWorker);
          }),
      ),
    );
    const out: T[] = [];
    answers.forEach((a, i) => {
      if (a?.error) this.o.log.warn({ worker: i + 1, question: question.ask, err: a.error }, 'agent worker did not answer');
      else out.push(a?.value as T);
    });
    return out;
  }

  private received(m: FromWorker): void {
    if (m.type === 'reply') {
      const done = this.waiting.get(m.id);
      this.waiting.delete(m.id);
      done?.(m.error ? { value: m.value, error: m.error } : { value: m.value });
    } else if (m.type === 'event') {
      for (const emit of this.emitters.get(m.topic) ?? []) emit(m.data);
    }
  }
}
