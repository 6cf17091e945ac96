// The Deployment controller of the local cluster, as kube-controller-manager's: each Deployment
// owns one ReplicaSet per pod template (`<deployment>-<pod-template-hash>`), the current one scaled
// to the Deployment's replicas, the others to zero and then deleted. Pure planning: the runtime
// commits the plan; the pods are the ReplicaSet controller's (replicasets.ts).

import { createHash } from 'node:crypto';
import type { Deployment, OwnerReference, Pod, ReplicaSet, Resource, ResourceRef } from '../../shared/resources/types.js';
import { controllerOf, ownerReferenceTo } from '../../shared/resources/owners.js';

/** The label that tells a template's pods (and its ReplicaSet) from another template's, as in Kubernetes. */
export const hashLabel = 'pod-template-hash';

/** A digest of the pod template: a changed template is a new ReplicaSet (a rollout). */
export function templateHash(d: Deployment): string {
  return createHash('sha256').update(JSON.stringify(d.spec!.template)).digest('hex').slice(0, 10);
}

/** The ReplicaSet a Deployment wants for its current template, not yet stored (no uid of its own). */
export function replicaSetFor(d: Deployment): ReplicaSet {
  const hash = templateHash(d);
  const tpl = structuredClone(d.spec!.template);
  const labels = { ...tpl.metadata?.labels, [hashLabel]: hash };
  return {
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: { name: `${d.metadata.name}-${hash}`, namespace: d.metadata.namespace!, labels, ownerReferences: [ownerReferenceTo(d)] },
    spec: {
      replicas: d.spec!.replicas ?? 1,
      selector: { matchLabels: { ...d.spec!.selector.matchLabels, [hashLabel]: hash } },
      template: { ...tpl, metadata: { ...tpl.metadata, labels } },
    },
  };
}

export interface DeploymentPlan {
  /** ReplicaSets to create, scale or adopt. */
  upserts: ReplicaSet[];
  /** Old ReplicaSets scaled to zero whose pods are gone. */
  deletes: ResourceRef[];
}

/**
 * What the Deployments want of the ReplicaSets: for each, its current ReplicaSet at its replicas,
 * and its others at zero (every old pod goes at once, as the local cluster always rolled out).
 * An unowned ReplicaSet of the current template's name is adopted, as Kubernetes adopts orphans
 * matching a Deployment's selector (after `kubectl delete deploy --cascade=orphan` and apply again).
 */
export function planDeployments(deployments: Deployment[], replicaSets: ReplicaSet[], pods: Pod[]): DeploymentPlan {
  const plan: DeploymentPlan = { upserts: [], deletes: [] };
  const byKey = new Map(replicaSets.map((rs) => [`${rs.metadata.namespace}/${rs.metadata.name}`, rs]));
  const podOwners = new Set(pods.map((p) => controllerOf(p)?.uid).filter((u): u is string => !!u));
  for (const d of deployments) {
    const want = replicaSetFor(d);
    const have = byKey.get(`${d.metadata.namespace}/${want.metadata.name}`);
    const haveOwner = have && controllerOf(have);
    if (!have) plan.upserts.push(want);
    else if (!haveOwner || haveOwner.uid === d.metadata.uid) {
      // Kept as stored but for what the Deployment decides: its replicas and its owner.
      const next = withOwner(have, want.metadata.ownerReferences![0]!);
      next.spec = { ...next.spec, replicas: want.spec.replicas };
      if (!haveOwner || next.spec.replicas !== have.spec.replicas) plan.upserts.push(next);
    }
    // A ReplicaSet of that name owned by another controller is left alone (Kubernetes would bump
    // collisionCount and hash again; two owners of one name do not happen here).
    for (const rs of replicaSets) {
      if (rs.metadata.namespace !== d.metadata.namespace || rs.metadata.name === want.metadata.name || controllerOf(rs)?.uid !== d.metadata.uid) continue;
      if (rs.spec.replicas !== 0) plan.upserts.push({ ...rs, spec: { ...rs.spec, replicas: 0 } });
      else if (!podOwners.has(rs.metadata.uid!)) plan.deletes.push({ kind: 'ReplicaSet', namespace: rs.metadata.namespace!, name: rs.metadata.name });
    }
  }
  return plan;
}

function withOwner<T extends Resource>(r: T, owner: OwnerReference): T {
  const next = structuredClone(r);
  next.metadata.ownerReferences = [...(r.metadata.ownerReferences ?? []).filter((o) => !o.controller && o.uid !== owner.uid), owner];
  return next;
}
