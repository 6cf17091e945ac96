// The garbage collector, as Kubernetes' controller-manager runs it: an object whose ownerReferences
// all name owners that are gone (deleted, or recreated under the same name with another uid) is
// deleted too; `Orphan` deletion strips the reference from the direct dependents instead.
// This module says what to delete or rewrite; apply.ts commits it with the owner's deletion.

import { kindInfo } from '../../shared/resources/kinds.js';
import { keyOf, type OwnerReference, type Resource, type ResourceRef, refOf } from '../../shared/resources/types.js';
import type { ChangeEvent, Store } from '../store/store.js';

/**
 * DeleteOptions.propagationPolicy. Background and Foreground differ in Kubernetes only in when the
 * owner disappears (first, or after its blocking dependents); the local cluster deletes owner and
 * dependents in one store commit, which satisfies both.
 */
export type PropagationPolicy = 'Orphan' | 'Background' | 'Foreground';
export const propagationPolicies: readonly PropagationPolicy[] = ['Orphan', 'Background', 'Foreground'];

/** Where an owner of `dependent` would be stored: the dependent's namespace for a namespaced kind. */
function ownerKey(dependent: Resource, o: OwnerReference): string | undefined {
  const info = kindInfo(o.kind);
  // A kind this server does not serve cannot be looked up; Kubernetes' collector leaves such a
  // dependent alone (it cannot resolve the owner), and so does this one.
  if (!info) return undefined;
  // A cluster-scoped dependent naming a namespaced owner has no namespace to look in: Kubernetes
  // calls the reference unresolvable and never collects the dependent for it.
  const namespace = info.namespaced ? (dependent.metadata.namespace ?? '') : '';
  if (info.namespaced && !namespace) return undefined;
  return keyOf({ kind: o.kind, namespace, name: o.name });
}

/**
 * The objects to delete besides `deleting` (keys of keyOf): every object whose owners are all
 * absent once `deleting` is gone, repeated until nothing more goes (a Deployment's ReplicaSet, then
 * its Pods). An object without ownerReferences is never garbage. An owner is absent when no object
 * of its kind and name exists, when that object is being deleted, or when its uid is not the
 * reference's (the owner was recreated; Kubernetes matches owners by uid).
 */
export function garbageOf(objects: Resource[], deleting: ReadonlySet<string>): ResourceRef[] {
  const byKey = new Map(objects.map((r) => [keyOf(refOf(r)), r]));
  const gone = new Set(deleting);
  const found: ResourceRef[] = [];
  const absent = (dependent: Resource, o: OwnerReference) => {
    const key = ownerKey(dependent, o);
    if (key === undefined) return false;
    const owner = byKey.get(key);
    return !owner || gone.has(key) || owner.metadata.uid !== o.uid;
  };
  for (let more = true; more; ) {
    more = false;
    for (const [key, r] of byKey) {
      const owners = r.metadata.ownerReferences;
      if (gone.has(key) || !owners?.length) continue;
      if (!owners.every((o) => absent(r, o))) continue;
      gone.add(key);
      found.push(refOf(r));
      more = true;
    }
  }
  return found;
}

/**
 * The direct dependents of `owners`, rewritten without their references to them: what `Orphan`
 * propagation leaves behind (a Deployment's ReplicaSet keeps running its Pods, unowned).
 */
export function orphansOf(objects: Resource[], owners: Resource[]): Resource[] {
  const uids = new Set(owners.map((o) => o.metadata.uid).filter((u): u is string => !!u));
  const out: Resource[] = [];
  for (const r of objects) {
    const refs = r.metadata.ownerReferences;
    if (!refs?.some((o) => uids.has(o.uid))) continue;
    const next = structuredClone(r);
    const kept = refs.filter((o) => !uids.has(o.uid));
    if (kept.length) next.metadata.ownerReferences = kept;
    else delete next.metadata.ownerReferences;
    out.push(next);
  }
  return out;
}

/**
 * Collects what no deletion took with it: dependents written with a reference to an owner that is
 * already gone or has another uid. Kubernetes' collector finds those from its informers; this one
 * sweeps the store (coalesced) after a change that can make garbage: a deletion, or an object
 * written with owner references. Other changes (a policy, a Service, a pod without owners) cannot,
 * and a sweep of a large store costs tens of milliseconds (about 70 ms at 12,000 objects).
 */
export class GarbageCollector {
  private pending = false;
  private stopped = false;
  private readonly onChange = (e: ChangeEvent) => {
    if (e.changes.some((c) => c.type === 'delete' || (c.resource.metadata.ownerReferences?.length ?? 0) > 0)) this.schedule();
  };

  constructor(private readonly store: Store) {}

  start(): void {
    this.store.on('change', this.onChange);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    this.store.off('change', this.onChange);
  }

  /** Deletes the garbage in the store now; returns what went. */
  sweep(): ResourceRef[] {
    const garbage = garbageOf(this.store.list(), new Set());
    if (garbage.length) this.store.commit([], garbage);
    return garbage;
  }

  private schedule(): void {
    if (this.pending || this.stopped) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (!this.stopped) this.sweep();
    });
  }
}
