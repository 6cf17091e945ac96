// The ReplicaSet controller of the local cluster, as kube-controller-manager's: a ReplicaSet keeps
// spec.replicas pods of its template, each carrying a controller ownerReference to it, and adopts
// unowned pods its selector matches. Pure planning: where a pod runs and its address are the
// runtime's (cluster/runtime.ts), which commits the plan.

import { controllerOf, ownerReferenceTo } from '../../shared/resources/owners.js';
import { type ObjectMeta, type Pod, type ReplicaSet, selectorMatches } from '../../shared/resources/types.js';

export interface ReplicaSetPlan {
  /** Unowned pods a ReplicaSet's selector matches, with its ownerReference added. */
  adopted: Pod[];
  /** Pods beyond their ReplicaSet's replicas. */
  doomed: Pod[];
  /** One entry per pod to create. */
  wanted: ReplicaSet[];
}

export function planReplicaSets(replicaSets: ReplicaSet[], pods: Pod[]): ReplicaSetPlan {
  const plan: ReplicaSetPlan = { adopted: [], doomed: [], wanted: [] };
  const owned = new Map<string, Pod[]>();
  const unowned: Pod[] = [];
  for (const p of pods) {
    const uid = controllerOf(p)?.uid;
    if (uid === undefined) unowned.push(p);
    else owned.set(uid, [...(owned.get(uid) ?? []), p]);
  }
  for (const rs of replicaSets) {
    const mine = [...(owned.get(rs.metadata.uid!) ?? [])];
    for (let i = 0; i < unowned.length; i++) {
      const p = unowned[i]!;
      if (p.metadata.namespace !== rs.metadata.namespace || !selectorMatches(rs.spec.selector.matchLabels, p.metadata.labels)) continue;
      const adopted = structuredClone(p);
      adopted.metadata.ownerReferences = [...(p.metadata.ownerReferences ?? []), ownerReferenceTo(rs)];
      plan.adopted.push(adopted);
      mine.push(adopted);
      unowned.splice(i--, 1);
    }
    plan.doomed.push(...mine.slice(rs.spec.replicas));
    for (let i = mine.length; i < rs.spec.replicas; i++) plan.wanted.push(rs);
  }
  return plan;
}

/**
 * The Deployment a ReplicaSet's pods belong to, as Istio names a workload: its controlling
 * Deployment, else (orphaned) its own name without the `-<pod-template-hash>` suffix.
 */
export function deploymentNameOf(rs: ReplicaSet): string {
  const owner = controllerOf(rs);
  if (owner?.kind === 'Deployment') return owner.name;
  const hash = rs.metadata.labels?.['pod-template-hash'];
  return hash && rs.metadata.name.endsWith(`-${hash}`) ? rs.metadata.name.slice(0, -hash.length - 1) : rs.metadata.name;
}

/**
 * The metadata of a new pod of `rs`: its template's labels and annotations and the controller
 * reference to `rs` (by which telemetry names the workload, shared/resources/owners.ts podOwner).
 * Where it runs is the runtime's to add.
 */
export function podMetadataFor(rs: ReplicaSet, name: string): ObjectMeta & { annotations: Record<string, string> } {
  const tpl = rs.spec.template.metadata;
  return {
    name,
    namespace: rs.metadata.namespace!,
    labels: { ...tpl?.labels },
    annotations: { ...tpl?.annotations },
    ownerReferences: [ownerReferenceTo(rs)],
  };
}
