// What a workload puts in the labels of Istio's metrics, for both proxies that report them: the node
// agent's TCP metrics and the waypoint's HTTP ones. Labels come from a pushed WorkloadEntry with
// Istio's defaults (shared/resources/canonical.ts); which metric carries them is each proxy's own.

import { canonicalOf, workloadName } from '../resources/canonical.js';
import { spiffeId } from '../identity/spiffe.js';
import type { WorkloadEntry } from '../protocol/config.js';

/** ztunnel's DefaultedUnknown: what a label holds when the proxy does not know its value. */
export const unknown = 'unknown';

/**
 * The labels Istio's TCP and HTTP metrics share, in Istio's order (ztunnel's CommonTrafficLabels,
 * istio/proxy's istio_stats): who, to whom, over what. Each metric adds its own after them.
 */
export const trafficLabels = [
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_service',
  'destination_service_namespace',
  'destination_service_name',
  'destination_workload',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_cluster',
  'request_protocol',
] as const;

/** One side of a connection or request, as its `source_*` or `destination_*` labels read. */
export interface WorkloadLabels {
  workload: string;
  namespace: string;
  canonicalService: string;
  canonicalRevision: string;
  cluster: string;
  /** Its SPIFFE ID (`spiffe://td/ns/n/sa/s`), for destination_principal. */
  principal: string;
}

export const unknownWorkload: Readonly<WorkloadLabels> = Object.freeze({
  workload: unknown,
  namespace: unknown,
  canonicalService: unknown,
  canonicalRevision: unknown,
  cluster: unknown,
  principal: unknown,
});

/**
 * A workload's labels, made once per workload entry: entries are replaced, never changed, when the
 * configuration changes, so a new entry gets its labels anew and the old one's are collected with it.
 */
export class WorkloadLabelCache {
  private readonly byEntry = new WeakMap<WorkloadEntry, WorkloadLabels>();

  constructor(private readonly o: { cluster: string; trustDomain: string }) {}

  of(w: WorkloadEntry | undefined): Readonly<WorkloadLabels> {
    if (!w) return unknownWorkload;
    let labels = this.byEntry.get(w);
    if (!labels) {
      const canonical = canonicalOf(w);
      labels = {
        workload: workloadName(w.owner, w.name),
        namespace: w.namespace,
        canonicalService: canonical.service,
        canonicalRevision: canonical.revision,
        cluster: this.o.cluster,
        principal: spiffeId({ trustDomain: this.o.trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount }),
      };
      this.byEntry.set(w, labels);
    }
    return labels;
  }
}

/** A principal label from an identity given with or without its scheme (`spiffe://td/ns/n/sa/s` or `td/ns/n/sa/s`). */
export function principalLabel(principal: string | undefined): string {
  if (!principal) return unknown;
  return principal.startsWith('spiffe://') ? principal : `spiffe://${principal}`;
}
