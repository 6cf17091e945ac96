// An informer: a cache of one kind's objects kept in step with the API server by list, then watch
// from the list's resourceVersion. It follows bookmarks (so a resumed watch starts late enough), lists
// again when the server says 410 Gone (and reports what changed meanwhile as if watched), resumes a
// watch that the server ended, and backs off with jitter while the server is away. It never stops on
// an error: a controller's cache must outlive the API server's restarts.

import { EventEmitter } from 'node:events';
import { Backoff } from '../backoff.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { keyOf, refOf, type Resource } from '../resources/types.js';
import { KubeApiError, type KubeClient, type ListOptions, type WatchEvent, type WatchHandle } from './client.js';
import type { ResourceKind } from './paths.js';

export type InformerChange = { type: 'upsert'; resource: Resource } | { type: 'delete'; resource: Resource };

export interface InformerOptions extends ListOptions {
  kind: ResourceKind;
  log: Logger;
  /** How long the server should keep one watch open; Kubernetes clients pick 5-10 minutes at random. */
  watchTimeoutSeconds?: () => number;
  backoff?: { minMs: number; maxMs: number };
}

interface Events {
  /** Objects changed, as of `resourceVersion` (a watch event's, or a relist's). */
  change: [changes: InformerChange[], resourceVersion: string];
  /** The informer has seen everything up to `resourceVersion` (a bookmark, or any change). */
  progress: [resourceVersion: string];
}

export class Informer extends EventEmitter<Events> {
  private readonly cache = new Map<string, Resource>();
  private resourceVersion = '';
  private stopped = false;
  private current: WatchHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private markSynced!: () => void;
  /** Resolves once the first list is in the cache. */
  readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));
  /** Counters for the controller's metrics and tests. */
  readonly counters = { lists: 0, watches: 0, events: 0, expired: 0, failures: 0 };

  constructor(
    private readonly client: KubeClient,
    private readonly o: InformerOptions,
  ) {
    super();
    this.backoff = new Backoff(o.backoff?.minMs ?? 250, o.backoff?.maxMs ?? 30_000);
  }

  get kind(): string {
    return this.o.kind.kind;
  }

  /** The newest resourceVersion this cache is known to reflect. */
  get lastResourceVersion(): string {
    return this.resourceVersion;
  }

  list(): Resource[] {
    return [...this.cache.values()];
  }

  get(namespace: string, name: string): Resource | undefined {
    return this.cache.get(keyOf({ kind: this.o.kind.kind, namespace, name }));
  }

  start(): this {
    void this.run(true);
    return this;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.current?.abort();
  }

  private async run(relist: boolean): Promise<void> {
    if (this.stopped) return;
    try {
      if (relist || !this.resourceVersion) await this.relist();
      if (this.stopped) return;
      const events = this.counters.events;
      const started = Date.now();
      await this.watch();
      // The server ended the watch (its timeout): resume at once from where it got to, unless it
      // ended at once with nothing in it (a proxy closing every stream): then back off.
      const empty = this.counters.events === events && Date.now() - started < 1000;
      this.schedule(false, empty ? this.backoff.next() : 0);
    } catch (err) {
      if (this.stopped) return;
      const expired = err instanceof KubeApiError && err.status === 410;
      if (expired) {
        // Our version is older than the server keeps: list again, no need to wait.
        this.counters.expired++;
        this.o.log.info({ kind: this.kind, resourceVersion: this.resourceVersion }, 'watch expired (410 Gone); listing again');
        this.schedule(true, 0);
        return;
      }
      this.counters.failures++;
      const delay = this.backoff.next();
      const log = this.backoff.failures <= 3 || this.backoff.failures % 10 === 0 ? this.o.log.warn.bind(this.o.log) : this.o.log.debug.bind(this.o.log);
      log({ kind: this.kind, err: errorMessage(err), retryInMs: delay, attempt: this.backoff.failures }, 'list or watch failed; retrying');
      this.schedule(!this.resourceVersion, delay);
    }
  }

  private schedule(relist: boolean, delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run(relist), delayMs);
  }

  /** Lists, and reports the difference from the cache as changes (all of it the first time). */
  private async relist(): Promise<void> {
    this.counters.lists++;
    const { items, resourceVersion } = await this.client.list(this.o.kind, this.o);
    if (this.stopped) return;
    const changes: InformerChange[] = [];
    const seen = new Set<string>();
    for (const r of items) {
      const key = keyOf(refOf(r));
      seen.add(key);
      const old = this.cache.get(key);
      if (old?.metadata.resourceVersion === r.metadata.resourceVersion) continue;
      this.cache.set(key, r);
      changes.push({ type: 'upsert', resource: r });
    }
    for (const [key, r] of this.cache) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      changes.push({ type: 'delete', resource: r });
    }
    this.resourceVersion = resourceVersion;
    this.backoff.reset();
    if (changes.length) this.emit('change', changes, resourceVersion);
    this.emit('progress', resourceVersion);
    this.markSynced();
  }

  private async watch(): Promise<void> {
    this.counters.watches++;
    let failure: Error | undefined;
    const timeoutSeconds = this.o.watchTimeoutSeconds?.() ?? Math.round(300 + Math.random() * 300);
    this.current = this.client.watch(this.o.kind, { ...this.o, resourceVersion: this.resourceVersion, timeoutSeconds }, (e) => {
      try {
        this.onEvent(e);
      } catch (err) {
        failure = err as Error;
        this.current?.abort();
      }
    });
    await this.current.done;
    this.current = undefined;
    if (failure) throw failure;
  }

  private onEvent(e: WatchEvent): void {
    if (e.type === 'ERROR') {
      throw new KubeApiError(e.object.code ?? 500, e.object.reason ?? '', `watch ${this.kind}: ${e.object.message ?? 'error event'}`);
    }
    const rv = e.object.metadata?.resourceVersion ?? '';
    this.counters.events++;
    this.backoff.reset();
    if (e.type === 'BOOKMARK') {
      this.resourceVersion = rv;
      this.emit('progress', rv);
      return;
    }
    const r = { ...e.object, apiVersion: e.object.apiVersion ?? this.o.kind.apiVersion, kind: e.object.kind ?? this.o.kind.kind };
    const key = keyOf(refOf(r));
    if (e.type === 'DELETED') this.cache.delete(key);
    else this.cache.set(key, r);
    this.resourceVersion = rv;
    this.emit('change', [{ type: e.type === 'DELETED' ? 'delete' : 'upsert', resource: r }], rv);
    this.emit('progress', rv);
  }
}
