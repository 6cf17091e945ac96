// The controller's view of the cluster, read only through the Kubernetes API: one informer per kind
// it acts on, folded into one stream of change events shaped as the store's (ChangeEvent), with one
// revision that only moves forward. Whether a real cluster or the local one serves the API, this is
// what the push to agents is computed from.

import { EventEmitter } from 'node:events';
import type { Logger } from '../../shared/log.js';
import { Informer, type InformerChange } from '../../shared/kube/informer.js';
import type { KubeClient } from '../../shared/kube/client.js';
import { resourceKind } from '../../shared/kube/paths.js';
import { refOf, type Resource } from '../../shared/resources/types.js';
import type { Change, ChangeEvent } from '../store/store.js';

/** What the node agents' configuration is computed from (see push/share.ts). */
export const pushedKinds = [
  'Namespace',
  'Pod',
  'Service',
  'TrustBundle',
  'Gateway',
  'HTTPRoute',
  'GRPCRoute',
  'DestinationRule',
  'FaultInjection',
  'LocalRateLimit',
  'AuthorizationPolicy',
  'PeerAuthentication',
  'RequestAuthentication',
];

/** Everything the controller reads: what it pushes, and what its waypoint deployer owns. */
export const controllerKinds = [...pushedKinds, 'ServiceAccount', 'Deployment'];

export class ClusterCache extends EventEmitter<{ change: [ChangeEvent] }> {
  private readonly informers: Informer[];
  private started = false;
  private waiters: { version: number; kinds: readonly string[] | undefined; resolve: (ok: boolean) => void; timer: NodeJS.Timeout }[] = [];
  /**
   * The revision of the newest change folded in: at least every resourceVersion seen, and one more
   * than the last revision when events of different kinds arrive out of resourceVersion order, so
   * an agent's acknowledged revision always covers everything it was sent.
   */
  revision = 0;

  constructor(client: KubeClient, kinds: string[], log: Logger) {
    super();
    this.informers = kinds.map((kind) => new Informer(client, { kind: resourceKind(kind), log }));
    for (const i of this.informers) {
      i.on('change', (changes, rv) => this.onChange(changes, rv));
      i.on('progress', () => this.settleWaiters());
    }
  }

  /** Lists every kind; resolves when all of them are in the cache. Changes are emitted from then on. */
  async start(): Promise<void> {
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.synced));
    this.started = true;
  }

  stop(): void {
    for (const i of this.informers) i.stop();
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
  }

  get(kind: string, namespace: string, name: string): Resource | undefined {
    return this.informers.find((i) => i.kind === kind)?.get(namespace, name);
  }

  list(kind?: string, namespace?: string): Resource[] {
    const of = kind ? this.informers.filter((i) => i.kind === kind) : this.informers;
    const all = of.flatMap((i) => i.list());
    return namespace === undefined ? all : all.filter((r) => (r.metadata.namespace ?? '') === namespace);
  }

  /** The oldest resourceVersion every kind (or every one of `kinds`) has caught up with, by change or bookmark. */
  progress(kinds?: readonly string[]): number {
    let min = Infinity;
    for (const i of this.informers) if (!kinds || kinds.includes(i.kind)) min = Math.min(min, Number(i.lastResourceVersion) || 0);
    return min;
  }

  /**
   * Resolves true once every kind has seen the API server's `version`, so `revision` includes every
   * change up to it, false after `timeoutMs`. With `kinds`, only those are waited for: the change
   * of a kind arrives as its event, while the others learn of the version from a bookmark.
   */
  waitForProgress(version: number, timeoutMs: number, kinds?: readonly string[]): Promise<boolean> {
    if (this.progress(kinds) >= version) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = {
        version,
        kinds,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(false);
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  private onChange(changes: InformerChange[], rv: string): void {
    this.revision = Math.max(this.revision + (this.started ? 1 : 0), Number(rv) || 0);
    if (!this.started) return;
    const out: Change[] = changes.map((c) => (c.type === 'upsert' ? c : { type: 'delete', ref: refOf(c.resource), resource: c.resource }));
    this.emit('change', { revision: this.revision, changes: out });
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    this.waiters = this.waiters.filter((w) => {
      if (this.progress(w.kinds) < w.version) return true;
      clearTimeout(w.timer);
      w.resolve(true);
      return false;
    });
  }
}
