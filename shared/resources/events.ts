// core/v1 Events: what Kubernetes checks of one beyond its schema (the involved object's namespace
// is the Event's own), and when it last happened, which both its LAST SEEN column and its expiry
// read. Storing, listing and expiring them are the API server's.

import type { FieldProblem } from '../errors.js';
import { resourceName, type Resource } from './types.js';

export interface CoreEvent extends Resource {
  involvedObject?: { kind?: string; namespace?: string; name?: string; uid?: string; fieldPath?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  source?: { component?: string; host?: string };
  firstTimestamp?: string;
  lastTimestamp?: string;
  eventTime?: string;
  series?: { count?: number; lastObservedTime?: string };
  reportingComponent?: string;
  reportingInstance?: string;
}

/**
 * Kubernetes' legacy Event validation: an Event about a namespaced object lives in that object's
 * namespace; one about a cluster-scoped object (no involvedObject.namespace) lives in `default`.
 * Events written the newer way (eventTime set) may name an involved object elsewhere.
 */
export function validateEvents(resources: Resource[]): FieldProblem[] {
  const problems: FieldProblem[] = [];
  resources.forEach((r, index) => {
    if (r.kind !== 'Event') return;
    const e = r as CoreEvent;
    if (e.eventTime) return;
    const want = e.involvedObject?.namespace || 'default';
    if ((e.metadata.namespace ?? 'default') !== want) {
      problems.push({ index, resource: resourceName(r), field: 'involvedObject.namespace', message: `Invalid value: ${JSON.stringify(e.involvedObject?.namespace ?? '')}: does not match event.namespace` });
    }
  });
  return problems;
}

/** When the Event last happened (ms since the epoch): its series', its last, its event time or first, else its creation. */
export function lastSeen(e: CoreEvent): number | undefined {
  for (const t of [e.series?.lastObservedTime, e.lastTimestamp, e.eventTime, e.firstTimestamp, e.metadata.creationTimestamp]) {
    const ms = t ? Date.parse(t) : NaN;
    if (!Number.isNaN(ms)) return ms;
  }
  return undefined;
}
