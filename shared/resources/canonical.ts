// Istio's names for a workload in telemetry: its workload name (from the pod's owner) and its
// canonical service and revision (from the pod's labels). The controller derives them once per pod
// and pushes them with the workload to every node; agents read them here, with Istio's defaults,
// so that both ends of a connection label it alike. What a metric does with them is the agent's.

import type { Labels } from './types.js';

/** Istio's workload name: the Deployment's, from the pod's owner (`Deployment/web-v1` gives web-v1), else the pod's. */
export function workloadName(owner: string | undefined, pod: string): string {
  return owner?.split('/')[1] || pod;
}

// The order is Istio's (istio/istio pkg/kube/labels: nameLabels, revisionLabels): the first label
// present wins, even when empty, as Go's `labels[key]; ok` reads it.
const nameLabels = ['service.istio.io/canonical-name', 'app.kubernetes.io/name', 'app'];
const revisionLabels = ['service.istio.io/canonical-revision', 'app.kubernetes.io/version', 'version'];

/** What istiod sends as the canonical revision of a workload that has none of the labels. */
export const defaultCanonicalRevision = 'latest';

export interface CanonicalNames {
  service: string;
  revision: string;
}

/** Istio's CanonicalService(labels, workloadName): the label order above, then the workload name and `latest`. */
export function canonicalNames(labels: Labels | undefined, workload: string): CanonicalNames {
  return {
    service: firstLabel(labels, nameLabels) ?? workload,
    revision: firstLabel(labels, revisionLabels) ?? defaultCanonicalRevision,
  };
}

/**
 * The fields a pushed workload carries for them: only where they differ from what an agent derives
 * without labels (the workload name, `latest`), which is most pods' case, so most pushes grow by nothing.
 */
export function canonicalFields(labels: Labels | undefined, owner: string, pod: string): { canonicalService?: string; canonicalRevision?: string } {
  const workload = workloadName(owner, pod);
  const c = canonicalNames(labels, workload);
  return {
    ...(c.service !== workload ? { canonicalService: c.service } : {}),
    ...(c.revision !== defaultCanonicalRevision ? { canonicalRevision: c.revision } : {}),
  };
}

/** A pushed workload's canonical names, as every agent reads them whether or not it holds the pod's labels. */
export function canonicalOf(w: { name: string; owner?: string; canonicalService?: string; canonicalRevision?: string }): CanonicalNames {
  return { service: w.canonicalService ?? workloadName(w.owner, w.name), revision: w.canonicalRevision ?? defaultCanonicalRevision };
}

function firstLabel(labels: Labels | undefined, keys: string[]): string | undefined {
  if (!labels) return undefined;
  for (const k of keys) if (Object.hasOwn(labels, k)) return labels[k];
  return undefined;
}
