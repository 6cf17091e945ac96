// The waypoint's view of the cluster, replaced whole by each snapshot its node agent sends: Services
// by address and by name, workloads by address (those bound to the waypoint also as destinations),
// nodes, the trust bundle, and the traffic resources (routes, destination rules, faults) and security
// policies that the routing, upstream and security modules compile. Readers take what they need per request from the indices; nothing here is
// rebuilt per request.

import { EventEmitter } from 'node:events';
import { TrustBundle } from '../shared/identity/svid.js';
import type { NodeEntry, PolicyEntry, ServiceEntry, TrafficEntry, WorkloadEntry } from '../shared/protocol/config.js';
import type { WaypointSnapshot } from '../shared/waypoint/config.js';
import type { Labels } from '../shared/resources/types.js';
import { podDestination } from './pod-destination.js';

export class WaypointState extends EventEmitter<{ changed: [number] }> {
  version = -1;
  private byVip = new Map<string, ServiceEntry>();
  private byName = new Map<string, ServiceEntry>();
  private byIp = new Map<string, WorkloadEntry>();
  private podDestinations = new Map<string, ServiceEntry>();
  private nodes = new Map<string, NodeEntry>();
  private namespaces = new Map<string, Labels>();
  traffic: TrafficEntry[] = [];
  /** Security policies attached to waypoints (targetRefs); security.ts compiles those that are this waypoint's. */
  policies: PolicyEntry[] = [];
  trustBundle = new TrustBundle({});

  apply(s: WaypointSnapshot): void {
    const byVip = new Map<string, ServiceEntry>();
    const byName = new Map<string, ServiceEntry>();
    for (const svc of s.services) {
      byName.set(`${svc.namespace}/${svc.name}`, svc);
      if (svc.clusterIP) for (const p of svc.ports) byVip.set(`${svc.clusterIP}:${p.port}`, svc);
    }
    const byIp = new Map<string, WorkloadEntry>();
    for (const w of s.workloads) if (w.ip) byIp.set(w.ip, w);
    this.byVip = byVip;
    this.byName = byName;
    this.byIp = byIp;
    this.podDestinations = new Map();
    this.nodes = new Map(s.nodes.map((n) => [n.name, n]));
    this.namespaces = new Map(s.namespaces.map((n) => [n.name, n.labels]));
    this.traffic = s.traffic;
    this.policies = s.policies ?? [];
    this.trustBundle = new TrustBundle(Object.fromEntries(s.trustBundles.map((b) => [b.trustDomain, b.roots])));
    this.version = s.version;
    this.emit('changed', s.version);
  }

  serviceAt(ip: string, port: number): ServiceEntry | undefined {
    return this.byVip.get(`${ip}:${port}`);
  }

  /**
   * Pod `ip` addressed on `port`, when it is bound to waypoint `namespace/name` for traffic addressed
   * to it (pod-destination.ts): one destination per pod and port, made once per snapshot.
   */
  podAt(ip: string, port: number, waypoint: { namespace: string; name: string }): ServiceEntry | undefined {
    const key = `${ip}:${port}`;
    let d = this.podDestinations.get(key);
    if (d) return d;
    const w = this.byIp.get(ip);
    if (!w?.waypoint || w.waypoint.namespace !== waypoint.namespace || w.waypoint.name !== waypoint.name) return undefined;
    this.podDestinations.set(key, (d = podDestination(w, port)));
    return d;
  }

  service(namespace: string, name: string): ServiceEntry | undefined {
    return this.byName.get(`${namespace}/${name}`);
  }

  workloadAt(ip: string): WorkloadEntry | undefined {
    return this.byIp.get(ip);
  }

  namespaceLabels(name: string): Labels | undefined {
    return this.namespaces.get(name);
  }

  node(name: string): NodeEntry | undefined {
    return this.nodes.get(name);
  }
}
