// The route table of one config version: every route compiled once, merged per Service port and per
// group of clients (producer routes for everyone, consumer routes for their own namespace), ordered
// by precedence. Per request the proxy looks up the parent and matches against it.

import { matchRequest, orderEntries } from './match.js';
import { resolveParents } from './parents.js';
import { compileRoute, type CompiledRoute } from './rules.js';
import type { CompiledParent, RequestView, RouteMatch, RouteObject, RouteProblem, RouteScope, ServiceLookup } from './types.js';

/** The routes attached to one Service port from one scope, before merging. */
interface Attachment {
  service: { namespace: string; name: string };
  port: number;
  scope: RouteScope;
  routes: CompiledRoute[];
}

export interface Attachments {
  groups: Map<string, Attachment>;
  /** HTTPRoutes left out of a Service port because a GRPCRoute took it: route key -> group keys. */
  conflicted: Map<string, Set<string>>;
}

export function routeKey(r: { kind: string; namespace: string; name: string }): string {
  return `${r.kind}/${r.namespace}/${r.name}`;
}

export function groupKey(namespace: string, name: string, port: number, scope: RouteScope): string {
  return `${namespace}/${name}:${port}@${scope.type === 'producer' ? '' : scope.namespace}`;
}

/**
 * Which compiled routes attach where. GRPCRoutes and HTTPRoutes on the same Service port (and scope)
 * do not merge: GEP-1294 gives the port to GRPCRoute, and the HTTPRoutes there are reported
 * Conflicted. So a port is routed by one kind, and gRPC and plain HTTP requests to it alike are
 * matched against that kind's rules.
 */
export function attach(routes: RouteObject[], compiled: Map<RouteObject, CompiledRoute>, services: ServiceLookup): Attachments {
  const groups = new Map<string, Attachment>();
  for (const route of routes) {
    const c = compiled.get(route)!;
    // A route whose every rule is invalid is not accepted, so it changes nothing.
    if (c.rules.length === 0) continue;
    for (const parent of resolveParents(route, services)) {
      for (const port of parent.ports) {
        const key = groupKey(parent.namespace, parent.name, port, parent.scope);
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { service: { namespace: parent.namespace, name: parent.name }, port, scope: parent.scope, routes: [] }));
        // A route naming the same Service twice (say, with and without a port) attaches once.
        if (!g.routes.includes(c)) g.routes.push(c);
      }
    }
  }
  const conflicted = new Map<string, Set<string>>();
  for (const [key, g] of groups) {
    if (!g.routes.some((r) => r.id.kind === 'GRPCRoute') || !g.routes.some((r) => r.id.kind === 'HTTPRoute')) continue;
    for (const r of g.routes) {
      if (r.id.kind !== 'HTTPRoute') continue;
      const k = routeKey(r.id);
      if (!conflicted.has(k)) conflicted.set(k, new Set());
      conflicted.get(k)!.add(key);
    }
    g.routes = g.routes.filter((r) => r.id.kind === 'GRPCRoute');
  }
  return { groups, conflicted };
}

export class RouteTable {
  /** namespace -> service name -> port -> the producer parent and the consumer parents by client namespace. */
  private readonly parents = new Map<string, Map<string, Map<number, { producer?: CompiledParent; consumers: Map<string, CompiledParent> }>>>();

  constructor(
    parents: CompiledParent[],
    /** Everything the compile could not use, for logs; statuses come from routeStatus. */
    readonly problems: readonly RouteProblem[],
  ) {
    for (const p of parents) {
      let byName = this.parents.get(p.service.namespace);
      if (!byName) this.parents.set(p.service.namespace, (byName = new Map()));
      let byPort = byName.get(p.service.name);
      if (!byPort) byName.set(p.service.name, (byPort = new Map()));
      let slot = byPort.get(p.port);
      if (!slot) byPort.set(p.port, (slot = { consumers: new Map() }));
      if (p.scope.type === 'producer') slot.producer = p;
      else slot.consumers.set(p.scope.namespace, p);
    }
  }

  /**
   * The routes for a request from a client in `clientNamespace` to a Service port. Consumer routes in
   * the client's namespace replace the producer routes for it (GEP-1294: each group is merged on its
   * own, never with the other). Undefined when no route attaches: forward to the Service itself.
   */
  lookup(service: { namespace: string; name: string }, port: number, clientNamespace: string): CompiledParent | undefined {
    const slot = this.parents.get(service.namespace)?.get(service.name)?.get(port);
    if (!slot) return undefined;
    return slot.consumers.get(clientNamespace) ?? slot.producer;
  }

  /** The winning rule for a request; undefined means no rule matches (404; UNIMPLEMENTED for gRPC). */
  match(parent: CompiledParent, req: RequestView): RouteMatch | undefined {
    return matchRequest(parent, req);
  }
}

/** Compiles every route once; call once per config version, never per request. */
export function compileRoutes(routes: RouteObject[], services: ServiceLookup): RouteTable {
  const compiled = new Map<RouteObject, CompiledRoute>();
  for (const r of routes) compiled.set(r, compileRoute(r, services));
  const { groups } = attach(routes, compiled, services);
  const parents: CompiledParent[] = [];
  for (const g of groups.values()) {
    parents.push({
      service: g.service,
      port: g.port,
      protocol: g.routes.some((r) => r.id.kind === 'GRPCRoute') ? 'grpc' : 'http',
      scope: g.scope,
      entries: orderEntries(g.routes),
    });
  }
  return new RouteTable(parents, [...compiled.values()].flatMap((c) => c.problems));
}
