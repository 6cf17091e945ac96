// What the controller's reconcilers read the cluster through, and how they write back: reads from
// the informers' cache (ClusterCache), writes through the Kubernetes API, as a client, under one
// field manager, so the same reconcilers run against a real cluster and the local one.

import { AmbitError } from '../../shared/errors.js';
import type { KubeClient } from '../../shared/kube/client.js';
import { resourceKind } from '../../shared/kube/paths.js';
import type { Resource, ResourceRef } from '../../shared/resources/types.js';
import type { ChangeEvent } from '../store/store.js';

export interface ClusterReader {
  get(kind: string, namespace: string, name: string): Resource | undefined;
  list(kind?: string, namespace?: string): Resource[];
}

/** A reader that also knows the revision of what it holds: the one agents should run. */
export interface RevisionedReader extends ClusterReader {
  readonly revision: number;
}

export interface ClusterView extends ClusterReader {
  on(event: 'change', fn: (e: ChangeEvent) => void): unknown;
  off(event: 'change', fn: (e: ChangeEvent) => void): unknown;
}

/** The field manager the controller's writes are made as (what `kubectl get -o yaml --show-managed-fields` names). */
export const fieldManager = 'ambit-controller';

export class ControllerWriter {
  /**
   * `mayWrite` fences every write (the leader election's verdict): a pass still running when this
   * replica stops leading writes nothing more.
   */
  constructor(
    private readonly client: KubeClient,
    private readonly mayWrite: () => boolean = () => true,
  ) {}

  private fence(): void {
    if (!this.mayWrite()) throw new AmbitError('NotLeader', 'this controller replica no longer leads; the leader writes');
  }

  /** Server-side apply of objects the controller owns (it takes fields others set on them). */
  async apply(resources: Resource[]): Promise<void> {
    for (const r of resources) {
      this.fence();
      await this.client.apply(resourceKind(r.kind), r, fieldManager, true);
    }
  }

  /** Deletes; objects already gone are no error. */
  async delete(refs: ResourceRef[]): Promise<void> {
    for (const ref of refs) {
      this.fence();
      await this.client.delete(resourceKind(ref.kind), ref.namespace, ref.name);
    }
  }

  /**
   * Replaces an object's status through its status subresource, whatever its resourceVersion: a
   * status is computed whole from the cluster as it is, so the last one written is the right one.
   */
  async status(r: Resource, status: unknown): Promise<void> {
    this.fence();
    await this.client.patch(resourceKind(r.kind), r.metadata.namespace ?? '', r.metadata.name, [{ op: 'add', path: '/status', value: status }], 'json', 'status');
  }
}
