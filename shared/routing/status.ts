// The status a route should carry for each of its Service parentRefs: Accepted, ResolvedRefs and,
// when some rules were dropped, PartiallyInvalid, with the reasons the Gateway API defines. Computed
// by the same compile the waypoint runs, so the status says what the proxy really does.

import { type ParentRefSpec, resolveParents } from './parents.js';
import { compileRoute, type CompiledRoute } from './rules.js';
import { attach, groupKey, routeKey } from './table.js';
import type { RouteObject, RouteProblem, ServiceLookup } from './types.js';

export const waypointControllerName = 'ambit.dev/waypoint';

export interface RouteCondition {
  type: 'Accepted' | 'ResolvedRefs' | 'PartiallyInvalid';
  status: 'True' | 'False';
  reason: string;
  message: string;
  observedGeneration?: number;
}

/** One entry of status.parents; the writer adds lastTransitionTime, keeping it while a condition holds. */
export interface RouteParentStatus {
  parentRef: ParentRefSpec;
  controllerName: string;
  conditions: RouteCondition[];
}

const refReasons = new Set(['BackendNotFound', 'InvalidKind']);

function describe(p: RouteProblem): string {
  return `${p.field}: ${p.message}`;
}

/**
 * Status for each Service parentRef of `route` (parentRefs of other kinds are other controllers' to
 * report). `routes` are the config version's routes: a GRPCRoute on the
 * same Service port makes an HTTPRoute Conflicted. Cross-namespace backendRefs are allowed without a
 * ReferenceGrant, as GEP-1294 says of mesh routes, so RefNotPermitted is never reported.
 */
export function routeStatus(route: RouteObject, services: ServiceLookup, routes: RouteObject[] = [route]): RouteParentStatus[] {
  const compiled = new Map<RouteObject, CompiledRoute>([[route, compileRoute(route, services)]]);
  // Only a GRPCRoute can take a Service port from an HTTPRoute; nothing takes one from a GRPCRoute.
  if (route.kind === 'HTTPRoute') for (const r of routes) if (r.kind === 'GRPCRoute') compiled.set(r, compileRoute(r, services));
  const mine = compiled.get(route)!;
  const { conflicted } = attach([...compiled.keys()], compiled, services);
  const myConflicts = conflicted.get(routeKey(route)) ?? new Set<string>();
  const fatal = mine.problems.filter((p) => !refReasons.has(p.reason));
  const refs = mine.problems.filter((p) => refReasons.has(p.reason));
  const generation = route.generation;
  const condition = (type: RouteCondition['type'], ok: boolean, reason: string, message: string): RouteCondition => {
    const c: RouteCondition = { type, status: ok ? 'True' : 'False', reason, message };
    if (generation !== undefined) c.observedGeneration = generation;
    return c;
  };

  const resolvedRefs = refs.length
    ? condition('ResolvedRefs', false, refs[0]!.reason, refs.map(describe).join('; '))
    : condition('ResolvedRefs', true, 'ResolvedRefs', 'all references resolved');

  return resolveParents(route, services).map((parent) => {
    const conditions: RouteCondition[] = [];
    const svc = `Service ${parent.namespace}/${parent.name}`;
    if (parent.problem) {
      conditions.push(condition('Accepted', false, parent.problem.reason, parent.problem.message));
    } else if (mine.rules.length === 0) {
      conditions.push(condition('Accepted', false, fatal[0]?.reason ?? 'UnsupportedValue', `every rule is invalid: ${fatal.map(describe).join('; ')}`));
    } else {
      const lost = parent.ports.filter((port) => myConflicts.has(groupKey(parent.namespace, parent.name, port, parent.scope)));
      const kept = parent.ports.filter((port) => !lost.includes(port));
      const conflict = `a GRPCRoute attaches to ${svc} port ${lost.join(', ')}, and GRPCRoute takes a port before HTTPRoute (GEP-1294)`;
      if (kept.length === 0) {
        conditions.push(condition('Accepted', false, 'Conflicted', conflict));
      } else {
        const who = parent.scope.type === 'producer' ? 'every client' : `clients in namespace ${parent.scope.namespace}`;
        const ports = `port${kept.length > 1 ? 's' : ''} ${kept.join(', ')}`;
        conditions.push(condition('Accepted', true, 'Accepted', `routes requests from ${who} to ${svc} ${ports}${lost.length ? `; not port ${lost.join(', ')}: ${conflict}` : ''}`));
        if (mine.dropped.length) {
          // The spec's "Drop Rule" approach: the message must start with "Dropped Rule".
          const which = mine.dropped.map((i) => `${i}`).join(', ');
          conditions.push(condition('PartiallyInvalid', true, 'UnsupportedValue', `Dropped Rule${mine.dropped.length > 1 ? 's' : ''} ${which}: ${fatal.map(describe).join('; ')}`));
        }
      }
    }
    conditions.push(resolvedRefs);
    return { parentRef: parent.ref, controllerName: waypointControllerName, conditions };
  });
}
