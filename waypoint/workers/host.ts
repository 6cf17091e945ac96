// The waypoint's worker threads, seen from its main thread: each is started with the waypoint's
// configuration and gets every certificate and configuration snapshot the main thread's agent link
// receives; once the main thread is ready they open their own listeners on 15008. Their access lines
// come back here to the one access log, their metrics are summed into the one scrape. A worker that
// dies ends the waypoint, as an uncaught error in the main thread would: its pod is restarted.

import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../shared/log.js';
import { shareCertificate, type AgentLink } from '../agent-link.js';
import type { AccessLog } from '../telemetry/access-log.js';
import type { FromWorker, ToWorker, WorkerMetrics, WorkerSetup } from './protocol.js';
import type { WaypointConfig } from '../config.js';
import type { SharedCounters } from '../upstream/shared-counters.js';

/** How long a worker may take to answer for a scrape before it is left out of it. */
const answerMs = 5000;

export class WaypointWorkers {
  private readonly workers: Worker[] = [];
  private readonly waiting = new Map<number, (m: WorkerMetrics | undefined) => void>();
  private readonly listening: Promise<void>[] = [];
  private readonly stopped: Promise<void>[] = [];
  private nextId = 1;
  private stopping = false;
  /** The configuration version each worker routes by (-1 before its first). */
  private readonly versions: number[] = [];

  /** `count`: the waypoint's event loops, the main thread's included; count - 1 threads are started. */
  constructor(
    private readonly o: { config: WaypointConfig; count: number; link: AgentLink; access: AccessLog; shared: SharedCounters; log: Logger },
  ) {}

  /** Starts the threads; they follow the link's certificate and snapshots from now on. */
  start(): void {
    const { link } = this.o;
    for (let index = 1; index < this.o.count; index++) {
      const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { config: this.o.config, index, shared: this.o.shared.buffer } satisfies WorkerSetup });
      this.workers.push(w);
      this.versions.push(-1);
      let listening!: () => void;
      let stopped!: () => void;
      this.listening.push(new Promise((resolve) => (listening = resolve)));
      this.stopped.push(new Promise((resolve) => (stopped = resolve)));
      w.on('message', (m: FromWorker) => {
        if (m.type === 'access') this.o.access.writeLines(m.text);
        else if (m.type === 'applied') this.versions[index - 1] = m.version;
        else if (m.type === 'metrics') this.waiting.get(m.id)?.(m.metrics);
        else if (m.type === 'listening') listening();
        else stopped();
      });
      w.on('error', (err) => this.o.log.error({ worker: index, err: err.message }, 'waypoint worker failed'));
      w.on('exit', (code) => {
        stopped();
        if (this.stopping) return;
        this.o.log.fatal({ worker: index, code }, 'a waypoint worker ended; the waypoint ends with it');
        // The access lines already taken go out first (for a second at most).
        void Promise.race([this.o.access.flush(), delay(1000)]).finally(() => process.exit(1));
      });
      if (link.certificate) w.postMessage({ type: 'certificate', certificate: shareCertificate(link.certificate) } satisfies ToWorker);
    }
    link.on('certificate', (c) => this.post({ type: 'certificate', certificate: shareCertificate(c) }));
    link.on('snapshot', (snapshot) => this.post({ type: 'snapshot', snapshot }));
  }

  /** The oldest configuration version any worker routes by (what readiness and /config report with the main thread's). */
  oldestVersion(): number {
    return this.versions.length < this.workers.length ? -1 : Math.min(...this.versions);
  }

  /** Every worker opens its listener on 15008; resolves once all listen. */
  async listen(): Promise<void> {
    this.post({ type: 'listen' });
    await Promise.all(this.listening);
  }

  /** Each worker's metrics for one scrape; a worker that does not answer in time is left out, and logged. */
  async metrics(): Promise<WorkerMetrics[]> {
    const answers = await Promise.all(
      this.workers.map(
        (w, i) =>
          new Promise<WorkerMetrics | undefined>((resolve) => {
            const id = this.nextId++;
            const timer = setTimeout(() => {
              this.waiting.delete(id);
              this.o.log.warn({ worker: i + 1 }, 'waypoint worker gave no metrics in time; the scrape leaves it out');
              resolve(undefined);
            }, answerMs);
            this.waiting.set(id, (m) => {
              clearTimeout(timer);
              this.waiting.delete(id);
              resolve(m);
            });
            w.postMessage({ type: 'metrics', id } satisfies ToWorker);
          }),
      ),
    );
    return answers.filter((a): a is WorkerMetrics => a !== undefined);
  }

  /** The workers stop taking tunnels, let open ones run for up to `graceMs`, hand their last access lines over and end. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    this.post({ type: 'stop', graceMs });
    // A worker stuck past its grace (and two seconds to hand its lines over) is ended regardless.
    await Promise.race([Promise.all(this.stopped), delay(graceMs + 2000)]);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private post(m: ToWorker): void {
    for (const w of this.workers) w.postMessage(m);
  }
}
