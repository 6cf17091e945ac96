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

/** A CronJob's Jobs are named `<cronjob>-<scheduled time in minutes>`. */
const cronJobName = /^(.+)-\d{8,10}$/;

/**
 * The workload a pod belongs to, as `Kind/name`, as Istio names it for telemetry from the pod's
 * controller: a ReplicaSet whose name ends in the pod's `pod-template-hash` is its Deployment's, a
 * Job named as a CronJob names its Jobs is the CronJob's, any other controller is itself. A pod
 * without a controller is its own workload: ''.
 */
export function podOwner(p: Pick<Resource, 'metadata'>): string {
  const c = controllerOf(p);
  if (!c) return '';
  const hash = p.metadata.labels?.['pod-template-hash'];
  if (c.kind === 'ReplicaSet' && hash && c.name.endsWith(`-${hash}`)) return `Deployment/${c.name.slice(0, -hash.length - 1)}`;
  const cron = c.kind === 'Job' ? cronJobName.exec(c.name) : null;
  return cron ? `CronJob/${cron[1]}` : `${c.kind}/${c.name}`;
}
