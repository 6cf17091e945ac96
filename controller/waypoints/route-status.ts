// Route status, written back as the Gateway API asks of a mesh implementation: for each Service
// parentRef of an HTTPRoute or GRPCRoute, Accepted and ResolvedRefs (and PartiallyInvalid when rules
// were dropped) computed by the same compile the waypoint runs (shared/routing/status.ts), so that
// the status says what the waypoint really does. ambit adds one condition the Gateway API leaves to
// implementations: whether a waypoint serves the Service at all, without which the route does nothing.

import type { Logger } from '../../shared/log.js';
import type { Resource, Service } from '../../shared/resources/types.js';
import { servingWaypoint } from './bound.js';
import { routeStatus, waypointControllerName, type RouteCondition, type RouteObject, type RouteParentStatus } from '../../shared/routing/index.js';
import type { ClusterView, ControllerWriter } from '../kube/view.js';
import { followChanges } from './reconcile.js';

const routeKinds = new Set(['HTTPRoute', 'GRPCRoute']);
export const waypointBoundCondition = 'ambit.dev/WaypointBound';

type Condition = RouteCondition | { type: string; status: 'True' | 'False'; reason: string; message: string; observedGeneration?: number };
interface ParentStatus extends Omit<RouteParentStatus, 'conditions'> {
  conditions: (Condition & { lastTransitionTime?: string })[];
}

export class RouteStatusWriter {
  private stopFollowing: (() => void) | undefined;

  constructor(
    private readonly store: ClusterView,
    private readonly writer: ControllerWriter,
    private readonly log: Logger,
  ) {}

  start(): void {
    // A status written here changes only status, and finds nothing to write on the pass it causes.
    const concerns = (r: Resource) => routeKinds.has(r.kind) || r.kind === 'Service' || r.kind === 'Namespace' || r.kind === 'Gateway';
    this.stopFollowing = followChanges(this.store, concerns, () => this.write(), this.log, 'route status');
  }

  stop(): void {
    this.stopFollowing?.();
  }

  private async write(): Promise<void> {
    const services = (ns: string, name: string) => {
      const s = this.store.get('Service', ns, name) as Service | undefined;
      return s ? { namespace: ns, name, ports: s.spec!.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port })) } : undefined;
    };
    const resources = [...this.store.list('HTTPRoute'), ...this.store.list('GRPCRoute')];
    const routes: RouteObject[] = resources.map((r) => ({ kind: r.kind as RouteObject['kind'], namespace: r.metadata.namespace!, name: r.metadata.name, ...(r.metadata.creationTimestamp ? { creationTimestamp: r.metadata.creationTimestamp } : {}), ...(r.metadata.generation ? { generation: r.metadata.generation } : {}), spec: r.spec }));
    const updates: Resource[] = [];
    resources.forEach((r, i) => {
      const computed = routeStatus(routes[i]!, services, routes);
      // Routes attached to Gateways only are other controllers' to report.
      if (computed.length === 0) return;
      const old = ((r.status as { parents?: ParentStatus[] } | undefined)?.parents ?? []).filter((p) => p.controllerName === waypointControllerName);
      const parents: ParentStatus[] = computed.map((p) => {
        const conditions: Condition[] = [...p.conditions, this.waypointBound(p, r.metadata.namespace!, routes[i]!.generation)];
        const before = old.find((o) => JSON.stringify(o.parentRef) === JSON.stringify(p.parentRef));
        return {
          ...p,
          conditions: conditions.map((c) => {
            const was = before?.conditions.find((x) => x.type === c.type);
            return { ...c, lastTransitionTime: was && was.status === c.status && was.lastTransitionTime ? was.lastTransitionTime : new Date().toISOString() };
          }),
        };
      });
      const others = ((r.status as { parents?: ParentStatus[] } | undefined)?.parents ?? []).filter((p) => p.controllerName !== waypointControllerName);
      const status = { parents: [...others, ...parents] };
      if (JSON.stringify(status) !== JSON.stringify(r.status)) updates.push({ ...r, status });
    });
    for (const u of updates) await this.writer.status(u, u.status);
  }

  /** Whether a waypoint serves the parent Service: a route on a Service without one routes nothing. */
  private waypointBound(p: RouteParentStatus, routeNamespace: string, generation: number | undefined): Condition {
    const served = servingWaypoint(this.store, p.parentRef.namespace ?? routeNamespace, p.parentRef.name);
    const gen = generation !== undefined ? { observedGeneration: generation } : {};
    if ('reason' in served) return { type: waypointBoundCondition, status: 'False', reason: served.reason, message: served.reason === 'NoWaypoint' ? `${served.message}: this route does nothing until one serves it` : served.message, ...gen };
    return { type: waypointBoundCondition, status: 'True', reason: 'WaypointBound', message: `served by waypoint ${served.waypoint}`, ...gen };
  }
}
