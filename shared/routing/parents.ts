// Which Service ports a route attaches to, per parentRef, and whether as a producer or a consumer
// route (GEP-1294 "Namespace boundaries"). Only Service parents (core group) are the waypoint's;
// other parents (Gateways) belong to other controllers and are left alone.

import type { RouteObject, RouteScope, ServiceLookup } from './types.js';

export interface ParentRefSpec {
  group?: string;
  kind?: string;
  namespace?: string;
  name: string;
  sectionName?: string;
  port?: number;
}

/** One parentRef of a route, resolved against the Services. */
export interface ResolvedParent {
  /** Position in spec.parentRefs. */
  index: number;
  /** The parentRef as written, for status (which must echo it). */
  ref: ParentRefSpec;
  namespace: string;
  name: string;
  scope: RouteScope;
  /** Service ports the route attaches to; empty when it attaches nowhere (see `problem`). */
  ports: number[];
  problem?: { reason: 'NoMatchingParent'; message: string };
}

const coreGroups = new Set(['', 'core']);

/**
 * The route's Service parentRefs. A parentRef of another kind is not returned. A parentRef of kind
 * Service with no group is returned with a problem: the spec defaults a parentRef's group to
 * gateway.networking.k8s.io, where there is no Service, and saying so beats silence.
 */
export function resolveParents(route: RouteObject, services: ServiceLookup): ResolvedParent[] {
  const refs = ((route.spec as { parentRefs?: ParentRefSpec[] }).parentRefs ?? []) as ParentRefSpec[];
  const out: ResolvedParent[] = [];
  refs.forEach((ref, index) => {
    if (ref.kind !== 'Service') return;
    const namespace = ref.namespace || route.namespace;
    const scope: RouteScope = namespace === route.namespace ? { type: 'producer' } : { type: 'consumer', namespace: route.namespace };
    const parent: ResolvedParent = { index, ref, namespace, name: ref.name, scope, ports: [] };
    out.push(parent);
    if (ref.group === undefined || !coreGroups.has(ref.group)) {
      const group = ref.group === undefined ? 'no group (which the spec defaults to gateway.networking.k8s.io)' : `group ${JSON.stringify(ref.group)}`;
      parent.problem = { reason: 'NoMatchingParent', message: `parentRef kind Service with ${group} names no Service; write group: "" for a core Service` };
      return;
    }
    const svc = services(namespace, ref.name);
    if (!svc) {
      parent.problem = { reason: 'NoMatchingParent', message: `Service ${namespace}/${ref.name} does not exist` };
      return;
    }
    const ports = svc.ports.filter((p) => (ref.port === undefined || p.port === ref.port) && (ref.sectionName === undefined || p.name === ref.sectionName));
    if (ports.length === 0) {
      const wanted = [ref.port !== undefined ? `port ${ref.port}` : '', ref.sectionName !== undefined ? `a port named ${ref.sectionName}` : ''].filter(Boolean).join(' and ');
      const has = svc.ports.map((p) => (p.name ? `${p.port} (${p.name})` : String(p.port))).join(', ') || 'none';
      parent.problem = {
        reason: 'NoMatchingParent',
        message: wanted ? `Service ${namespace}/${ref.name} has no ${wanted} (its ports: ${has})` : `Service ${namespace}/${ref.name} has no ports`,
      };
      return;
    }
    parent.ports = ports.map((p) => p.port);
  });
  return out;
}
