// Where a captured connection goes: its original destination is a Service's ClusterIP (an endpoint
// is picked by the Service's load-balancing policy, preferring the client's node when the Service
// asks for it) or a pod's address (that pod), or something outside the cluster's workloads
// (passthrough). An enrolled destination is reached over HBONE, any other in plain TCP; one behind a
// waypoint through that waypoint (the Service's for a VIP, the pod's own, `waypoint-for` workload or
// all, for a pod address or an endpoint picked of a Service without one). On the destination's side,
// it names the Service a connection to a pod most likely came through, for telemetry, and the
// waypoints that alone may connect to a pod. The index is rebuilt on each config version; resolving
// allocates only its answer.

import { type NodeEntry, type ServiceEntry, serviceHostname, serviceKey, type WorkloadEntry } from '../../shared/protocol/config.js';
import { waypointHbonePort } from '../../shared/waypoint/names.js';
import type { AgentState } from '../state/state.js';
import type { Destination } from '../capture/redirect.js';

export type LoadBalancer = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

export interface Resolution {
  /** The Service the client addressed, when it addressed one (`namespace/name`). */
  service?: ServiceEntry;
  /** The pod the connection goes to, when it is a workload of the cluster. */
  workload?: WorkloadEntry;
  /** The address and port to reach: the endpoint's target port for a Service. */
  target: Destination;
  /** HBONE to an enrolled pod (through its node's agent), plain TCP otherwise. */
  protocol: 'HBONE' | 'TCP';
  /** The destination node's address, for HBONE. */
  node?: NodeEntry;
  /** How the choice was made, for `ambit explain` and the access log. */
  reason: string;
  /**
   * The connection goes through this waypoint (`workload` and `node` are then the waypoint pod's,
   * `target` the VIP or pod address the waypoint is asked for): the Service's, or the pod's own.
   */
  waypoint?: WaypointRef;
}

export interface ResolveFailure {
  error: 'no-endpoints' | 'no-node-address';
  reason: string;
}

export interface WaypointRef {
  namespace: string;
  name: string;
}

/** A waypoint that alone may connect to a pod: the one a Service it backs uses, or the pod's own. */
export interface WaypointGuard extends WaypointRef {
  /** The Service that uses it, when it guards the pod for a Service (else it is the pod's own). */
  service?: ServiceEntry;
}

/** Live connections per endpoint (`ip:port`), for LEAST_REQUEST; the proxy keeps it. */
export type ActiveCounts = Map<string, number>;

/** A Service a pod address is an endpoint of, as the inbound side looks it up per connection. */
interface EndpointOf {
  service: ServiceEntry;
  hostname: string;
  /** The pod's target ports in this Service (named ports resolved). */
  ports: number[];
}

export class Resolver {
  private byIp = new Map<string, WorkloadEntry>();
  private byVip = new Map<string, ServiceEntry>();
  /** The Services each pod address is an endpoint of, by namespace and name, with their host name and the pod's target ports. */
  private byEndpoint = new Map<string, EndpointOf[]>();
  private readonly next = new Map<string, number>();

  constructor(
    private readonly state: AgentState,
    private readonly active: ActiveCounts = new Map(),
    private readonly random: () => number = Math.random,
  ) {
    state.on('config', () => this.rebuild());
    this.rebuild();
  }

  rebuild(): void {
    const byIp = new Map<string, WorkloadEntry>();
    for (const w of this.state.workloads.values()) if (w.ip) byIp.set(w.ip, w);
    const byVip = new Map<string, ServiceEntry>();
    const byEndpoint = new Map<string, EndpointOf[]>();
    const services = [...this.state.services.values()].sort((a, b) => (a.namespace === b.namespace ? (a.name < b.name ? -1 : 1) : a.namespace < b.namespace ? -1 : 1));
    for (const s of services) {
      for (const p of s.ports) if (s.clusterIP) byVip.set(`${s.clusterIP}:${p.port}`, s);
      const hostname = serviceHostname(s);
      for (const e of s.endpoints) {
        const entry = { service: s, hostname, ports: Object.values(e.ports) };
        const list = byEndpoint.get(e.ip);
        if (list) list.push(entry);
        else byEndpoint.set(e.ip, [entry]);
      }
    }
    this.byIp = byIp;
    this.byVip = byVip;
    this.byEndpoint = byEndpoint;
  }

  /**
   * The Service a connection to pod address `ip`, port `port`, most likely came through, as ztunnel
   * guesses it for inbound metrics (guess_inbound_service, src/proxy.rs): the one the client's agent
   * named (`host`, believed only among the pod's own Services), else the first, by namespace and
   * name, whose target port for this pod is `port` (named ports are already resolved per endpoint).
   */
  inboundService(ip: string, port: number, host?: string): ServiceEntry | undefined {
    const of = this.byEndpoint.get(ip);
    if (!of) return undefined;
    if (host) for (const e of of) if (host === e.hostname) return e.service;
    for (const e of of) if (e.ports.includes(port)) return e.service;
    return undefined;
  }

  /**
   * The waypoints that must stand in front of pod `ip` on `port`: that of a Service the pod backs on
   * that port, when the Service uses one, and the pod's own (`waypoint-for` workload or all), on
   * every port. Only they may connect to it there; empty when none guards it.
   */
  waypointsGuarding(ip: string, port: number): WaypointGuard[] {
    const guards: WaypointGuard[] = [];
    for (const e of this.byEndpoint.get(ip) ?? []) {
      if (e.service.waypoint && e.ports.includes(port)) {
        guards.push({ ...e.service.waypoint, service: e.service });
        break;
      }
    }
    const own = this.byIp.get(ip)?.waypoint;
    if (own) guards.push(own);
    return guards;
  }

  workloadAt(ip: string): WorkloadEntry | undefined {
    return this.byIp.get(ip);
  }

  /**
   * The destination of a connection from `source` (a pod of this node) to `dst`. `peek` answers
   * without moving the round robin on (for `ambit explain`).
   */
  resolve(dst: Destination, source?: WorkloadEntry, peek = false): Resolution | ResolveFailure {
    const service = this.byVip.get(`${dst.ip}:${dst.port}`);
    if (service) return this.viaService(service, dst.port, source, peek);
    const workload = this.byIp.get(dst.ip);
    if (!workload) return { target: dst, protocol: 'TCP', reason: `${dst.ip} is not a workload of the mesh: passthrough` };
    const reason = `${dst.ip} is pod ${workload.namespace}/${workload.name}`;
    if (workload.waypoint && this.state.isEnrolled(workload)) return this.viaWaypoint(`${reason}, which uses waypoint ${workload.waypoint.namespace}/${workload.waypoint.name} for traffic addressed to it`, dst, workload.waypoint, peek);
    return this.toWorkload(workload, dst, reason);
  }

  private viaService(service: ServiceEntry, port: number, source: WorkloadEntry | undefined, peek: boolean): Resolution | ResolveFailure {
    if (service.waypoint) return this.viaWaypoint(`service ${service.namespace}/${service.name} uses waypoint ${service.waypoint.namespace}/${service.waypoint.name}`, { ip: service.clusterIP, port }, service.waypoint, peek, service);
    const name = `${service.namespace}/${service.name}`;
    const key = String(port);
    let candidates = service.endpoints.filter((e) => e.ports[key] !== undefined);
    if (candidates.length === 0) return { error: 'no-endpoints', reason: `service ${name} has no ready endpoint for port ${port}` };
    let scope = '';
    if (service.preferClose && source) {
      const near = candidates.filter((e) => e.node === source.node);
      if (near.length) {
        candidates = near;
        scope = ` on node ${source.node} (PreferClose)`;
      }
    }
    const lb = service.loadBalancer ?? 'ROUND_ROBIN';
    let pick: (typeof candidates)[number];
    if (lb === 'RANDOM') pick = candidates[Math.floor(this.random() * candidates.length)]!;
    else if (lb === 'LEAST_REQUEST') {
      // Istio's LEAST_REQUEST picks the less loaded of two random endpoints (power of two choices).
      const a = candidates[Math.floor(this.random() * candidates.length)]!;
      const b = candidates[Math.floor(this.random() * candidates.length)]!;
      pick = (this.active.get(`${a.ip}:${a.ports[key]}`) ?? 0) <= (this.active.get(`${b.ip}:${b.ports[key]}`) ?? 0) ? a : b;
    } else {
      const n = this.next.get(name) ?? 0;
      if (!peek) this.next.set(name, n + 1);
      pick = candidates[n % candidates.length]!;
    }
    const target = { ip: pick.ip, port: pick.ports[key]! };
    const workload = this.byIp.get(pick.ip);
    const reason = `service ${name}: endpoint ${target.ip}:${target.port} of ${candidates.length}${scope} by ${lb}`;
    if (!workload) return { service, target, protocol: 'TCP', reason };
    // The Service has no waypoint but the endpoint has its own: through it, addressed to the pod, as
    // ztunnel does (the pod takes connections only from its waypoint).
    if (workload.waypoint && this.state.isEnrolled(workload)) return this.viaWaypoint(`${reason}; pod ${workload.namespace}/${workload.name} uses waypoint ${workload.waypoint.namespace}/${workload.waypoint.name}`, target, workload.waypoint, peek, service);
    const r = this.toWorkload(workload, target, reason);
    return 'error' in r ? r : { ...r, service };
  }

  /**
   * A destination behind a waypoint (`why` says whose): the connection goes over HBONE to a waypoint
   * pod's own 15008 (not its node's: waypoints terminate HBONE themselves), still addressed to what
   * the waypoint is to reach, a Service's VIP and port (the waypoint picks the endpoint) or a pod's
   * address and port. With no waypoint pod ready, the connection is refused rather than sent around
   * the waypoint, whose rules would then be bypassed.
   */
  private viaWaypoint(why: string, target: Destination, at: WaypointRef, peek: boolean, service?: ServiceEntry): Resolution | ResolveFailure {
    const waypoint = this.state.services.get(serviceKey(at.namespace, at.name));
    const key = String(waypointHbonePort);
    const candidates = waypoint?.endpoints.filter((e) => e.ports[key] !== undefined && this.byIp.has(e.ip)) ?? [];
    if (candidates.length === 0) return { error: 'no-endpoints', reason: `${why}, which has no ready pod: refused rather than bypassed` };
    const id = `waypoint/${at.namespace}/${at.name}`;
    const n = this.next.get(id) ?? 0;
    if (!peek) this.next.set(id, n + 1);
    const pick = candidates[n % candidates.length]!;
    const workload = this.byIp.get(pick.ip)!;
    return {
      ...(service ? { service } : {}),
      workload,
      target,
      protocol: 'HBONE',
      node: { name: pick.node, ip: pick.ip },
      waypoint: at,
      reason: `${why}: HBONE to waypoint pod ${workload.namespace}/${workload.name} (${pick.ip}:${waypointHbonePort}), asking for ${target.ip}:${target.port}`,
    };
  }

  private toWorkload(workload: WorkloadEntry, target: Destination, reason: string): Resolution | ResolveFailure {
    if (!this.state.isEnrolled(workload)) return { workload, target, protocol: 'TCP', reason: `${reason}; not enrolled: plain TCP` };
    const node = this.state.nodes.get(`node/${workload.node}`);
    if (!node) return { error: 'no-node-address', reason: `${reason}; the address of node ${workload.node} is not known yet` };
    return { workload, target, protocol: 'HBONE', node, reason: `${reason}; enrolled: HBONE to node ${workload.node} (${node.ip})` };
  }
}
