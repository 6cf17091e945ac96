// What a waypoint is told by its node agent, whole, on connecting and after every change: the
// cluster's Services, workloads and nodes (where to route and how to reach each endpoint over HBONE),
// the trust bundles (whom to accept), and the routes and destination rules it routes by. A snapshot
// per change is simple and self-healing; a waypoint is one of few readers on its node.

import type { NamespaceEntry, NodeEntry, ServiceEntry, TrafficEntry, TrustBundleEntry, WorkloadEntry } from '../protocol/config.js';

export interface WaypointSnapshot {
  type: 'snapshot';
  /** The agent's config version this was taken at. */
  version: number;
  trustDomain: string;
  services: ServiceEntry[];
  workloads: WorkloadEntry[];
  nodes: NodeEntry[];
  namespaces: NamespaceEntry[];
  trustBundles: TrustBundleEntry[];
  traffic: TrafficEntry[];
}

/** The waypoint's certificate request to its node agent, and the answer. */
export interface WaypointCertificateRequest {
  csr: string;
  ttlSeconds?: number;
}

export interface WaypointCertificateResponse {
  chain: string[];
  trustBundle: string[];
  notBefore: string;
  notAfter: string;
  serial: string;
}
