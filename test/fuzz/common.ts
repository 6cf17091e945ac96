// What every fuzzer shares: how many runs and how long (FUZZ_SCALE multiplies the defaults, FUZZ_SEED
// replays a run), the fast-check options built from them, and the handle on a target process: the
// server under test runs in a child of its own, so a crash shows as the child's exit and its memory
// is measured apart from the client's.

import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

/** FUZZ_SCALE=10 runs ten times the iterations and allows ten times the time. */
export const scale = Math.max(0.1, Number(process.env.FUZZ_SCALE ?? 1) || 1);
export const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

export function runs(n: number): number {
  return Math.max(1, Math.round(n * scale));
}

/** fast-check options: `numRuns` runs, stopped early (not failed) once `seconds` (scaled) have passed. */
export function budget(numRuns: number, seconds: number): fc.Parameters<unknown> {
  return { numRuns: runs(numRuns), seed, interruptAfterTimeLimit: seconds * scale * 1000, markInterruptAsFailure: false, endOnFailure: true };
}

export interface Memory {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export const mb = (bytes: number) => Math.round((bytes / 1024 / 1024) * 10) / 10;

/** A child process running one server under test, spoken to over IPC (request/answer by id). */
export class Target {
  private next = 1;
  private readonly waiting = new Map<number, (v: unknown) => void>();
  readonly stderr: string[] = [];
  exited: { code: number | null; signal: string | null } | undefined;

  private constructor(readonly child: ChildProcess) {
    child.on('message', (m: { id: number; result: unknown }) => {
      this.waiting.get(m.id)?.(m.result);
      this.waiting.delete(m.id);
    });
    child.stderr?.on('data', (d: Buffer) => {
      if (this.stderr.length < 200) this.stderr.push(d.toString());
    });
    child.once('exit', (code, signal) => {
      this.exited = { code, signal };
      for (const w of this.waiting.values()) w(undefined);
      this.waiting.clear();
    });
  }

  /** Starts `module` (a file beside this one, compiled) with --expose-gc and waits for its first answer to `start`. */
  static async start<T>(module: string, params: unknown): Promise<{ target: Target; info: T }> {
    const path = fileURLToPath(new URL(module, import.meta.url));
    const child = fork(path, [], { execArgv: ['--expose-gc', '--max-old-space-size=2048'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    const target = new Target(child);
    const info = (await target.call('start', params)) as T;
    if (!info) throw new Error(`target ${module} did not start: ${target.stderr.join('')}`);
    return { target, info };
  }

  /** The answer, or undefined when the child is gone (the caller reports that as a crash). */
  call(method: string, params?: unknown, timeoutMs = 30_000): Promise<unknown> {
    if (this.exited || !this.child.connected) return Promise.resolve(undefined);
    const id = this.next++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.child.send({ id, method, params });
    });
  }

  /** Memory of the target after a full GC. */
  async memory(): Promise<Memory> {
    const m = (await this.call('memory')) as Memory | undefined;
    if (!m) throw new TargetCrashed(this);
    return m;
  }

  alive(): boolean {
    return !this.exited;
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGTERM');
    await once(this.child, 'exit');
  }
}

export class TargetCrashed extends Error {
  constructor(t: Target) {
    super(`the target process exited (${JSON.stringify(t.exited)}): ${t.stderr.join('').slice(-4000)}`);
  }
}

/** The child's side of Target: answers `memory` itself, the rest with `handlers`. */
export function serveTarget(handlers: Record<string, (params: unknown) => unknown>): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  process.on('message', async (m: { id: number; method: string; params: unknown }) => {
    let result: unknown;
    if (m.method === 'memory') {
      gc?.();
      const u = process.memoryUsage();
      result = { rss: u.rss, heapUsed: u.heapUsed, external: u.external, arrayBuffers: u.arrayBuffers };
    } else result = await handlers[m.method]?.(m.params);
    process.send?.({ id: m.id, result: result ?? null });
  });
  // The parent's end is the test's end.
  process.on('disconnect', () => process.exit(0));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves with `value` after `ms`, unless `p` settles first. */
export function within<T, U>(p: Promise<T>, ms: number, value: U): Promise<T | U> {
  let timer: NodeJS.Timeout;
  return Promise.race([p.finally(() => clearTimeout(timer)), new Promise<U>((r) => (timer = setTimeout(() => r(value), ms)))]);
}

/** One fuzzer's line in the summary. */
export interface Outcome {
  name: string;
  runs: number;
  seconds: number;
  ok: boolean;
  notes: string[];
}
