// From a request to the waypoint's plan for it: the route table (routing/) compiled once per
// configuration, the parent looked up by the Service and port the client dialled (not the Host
// header) and the client's namespace (consumer routes), the match and its filters, then the plan the
// forwarder runs. A Service with no route attached is forwarded to as it is, as Istio's waypoint does.

import type { Logger } from '../shared/log.js';
import { applyRequestFilters, compileRoutes, type RetryPolicy as CompiledRetry, type RouteObject, type RouteTable } from '../shared/routing/index.js';
import type { HTTPRouteRetry } from './upstream/retry.js';
import type { DownstreamRequest, Plan } from './proxy/forward.js';
import type { TunnelContext } from './proxy/ingress.js';
import type { WaypointState } from './state.js';
import type { Fault } from './upstream/fault.js';
import { addressedPod } from './pod-destination.js';

const retries = new WeakMap<CompiledRetry, HTTPRouteRetry>();
/** The Gateway API retry of a compiled rule, as the upstream policies read it: one object per rule, so they can cache on it. */
function routeRetry(r: CompiledRetry): HTTPRouteRetry {
  let out = retries.get(r);
  if (!out) retries.set(r, (out = { attempts: r.attempts, codes: [...r.codes], ...(r.backoffMs !== undefined ? { backoff: `${r.backoffMs}ms` } : {}) }));
  return out;
}

export class Router {
  private table: RouteTable;

  constructor(
    private readonly state: WaypointState,
    private readonly log: Logger,
    /** The FaultInjection an ExtensionRef filter names, compiled for this configuration. */
    private readonly faultOf: (namespace: string, name: string) => Fault | undefined,
  ) {
    this.table = this.compile();
    state.on('changed', () => {
      this.table = this.compile();
    });
  }

  private compile(): RouteTable {
    const routes: RouteObject[] = [];
    for (const t of this.state.traffic) if (t.kind === 'HTTPRoute' || t.kind === 'GRPCRoute') routes.push(t as RouteObject);
    const table = compileRoutes(routes, (ns, name) => this.state.service(ns, name));
    if (table.problems.length) this.log.warn({ problems: table.problems.slice(0, 20) }, 'some routes or rules are not in force');
    return table;
  }

  plan(req: DownstreamRequest, ctx: TunnelContext): Plan {
    // Addressed to a pod: routes attach to Services, never to it (Istio's waypoint does the same).
    if (addressedPod(ctx.service)) return { backend: { service: ctx.service, port: ctx.port } };
    const parent = this.table.lookup(ctx.service, ctx.port, ctx.peer.namespace);
    if (!parent) return { backend: { service: ctx.service, port: ctx.port } };
    const view = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers };
    const m = this.table.match(parent, view);
    // Routes are attached but none matches: Envoy's "no route" answer.
    if (!m) return { respond: { status: 404, flag: 'NR' } };
    const r = applyRequestFilters(m, view, { port: ctx.port });
    const route = `${m.rule.route.kind} ${m.rule.route.namespace}/${m.rule.route.name} rule ${m.rule.name ?? m.rule.index}`;
    const common = {
      route,
      routeRef: `${m.rule.route.namespace}/${m.rule.route.name}`,
      ...(r.responseHeaders.length ? { responseHeaders: r.responseHeaders } : {}),
    };
    if (r.redirect) return { ...common, respond: { status: r.redirect.status, headers: { location: r.redirect.location } } };
    if (r.failure || !r.backend) return { ...common, respond: { status: 500, flag: 'NR' } };
    const service = this.state.service(r.backend.namespace, r.backend.name);
    if (!service) return { ...common, respond: { status: 500, flag: 'NR' } };
    const plan: Plan = {
      ...common,
      backend: { service, port: r.backend.port ?? ctx.port },
      ...(r.headers.length ? { requestHeaders: r.headers } : {}),
      ...(r.path !== undefined ? { path: r.path } : {}),
      ...(r.host !== undefined ? { host: r.host } : {}),
      ...(r.timeouts.requestMs ? { timeoutMs: r.timeouts.requestMs } : {}),
      ...(r.timeouts.backendRequestMs ? { backendTimeoutMs: r.timeouts.backendRequestMs } : {}),
      ...(r.retry ? { retry: routeRetry(r.retry) } : {}),
    };
    for (const x of r.extensions) {
      // The one extension ambit knows (the routing engine refuses others at compile time).
      const fault = this.faultOf(m.rule.route.namespace, x.name);
      if (!fault) return { ...common, respond: { status: 500, flag: 'NR' } };
      const d = fault.decide();
      if (d.delayMs) plan.delayMs = d.delayMs;
      if (d.abort) {
        plan.respond = { status: d.abort.httpStatus, flag: 'FI', ...(d.abort.grpcStatus !== undefined ? { headers: { 'content-type': 'application/grpc', 'grpc-status': String(d.abort.grpcStatus), 'grpc-message': 'fault filter abort' } } : {}) };
      }
    }
    if (r.mirrors.length) {
      const mirrors: NonNullable<Plan['mirrors']> = [];
      for (const mirror of r.mirrors) {
        const s = this.state.service(mirror.backend.namespace, mirror.backend.name);
        // Already drawn by its share: every one left is sent.
        if (s) mirrors.push({ service: s, port: mirror.backend.port ?? ctx.port, percent: 100 });
      }
      plan.mirrors = mirrors;
    }
    return plan;
  }

  /** The routes' problems, for the controller's status and explain. */
  problems() {
    return this.table.problems;
  }
}

