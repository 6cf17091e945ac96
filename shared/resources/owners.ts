// ownerReferences as Kubernetes' apimachinery reads them: the controller among an object's owners,
// and the reference a controller writes on what it makes. Who collects dependents is
// controller/resources/garbage-collector.ts's concern.

import type { OwnerReference, Resource } from './types.js';

/** The owner reference marked controller, if any (at most one is, validate.ts checks). */
export function controllerOf(r: Pick<Resource, 'metadata'>): OwnerReference | undefined {
  return r.metadata.ownerReferences?.find((o) => o.controller === true);
}

/**
 * The reference a controller puts on what it makes, as kube-controller-manager's do: controller and
 * blockOwnerDeletion set (foreground deletion of the owner waits for the dependent).
 */
export function ownerReferenceTo(owner: Resource): OwnerReference {
  if (!owner.metadata.uid) throw new Error(`${owner.kind} ${owner.metadata.name} has no uid yet: store it before it owns anything`);
  return { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.metadata.name, uid: owner.metadata.uid, controller: true, blockOwnerDeletion: true };
}
