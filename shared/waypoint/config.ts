// What a waypoint is told by its node agent, whole, on connecting and after every change: the
// cluster's Services, workloads and nodes (where to route and how to reach each endpoint over HBONE),
// the trust bundles (whom to accept), the routes and destination rules it routes by, and the
// security policies attached to waypoints. A snapshot
// per change is simple and self-healing; a waypoint is one of few readers on its node.

import type { NamespaceEntry, NodeEntry, PolicyEntry, ServiceEntry, TrafficEntry, TrustBundleEntry, WorkloadEntry } from '../protocol/config.js';

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
  /** The security policies attached with targetRefs (to a Gateway, a Service or the waypoint class): the waypoint's to enforce. */
  policies: PolicyEntry[];
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

/**
 * `ambit explain --http` at the waypoint: the agent asks its waypoint, over the configuration
 * WebSocket, what the waypoint's security would do with a request, so the answer comes from the
 * code and the keys (a jwksUri's, cached) that the waypoint runs with.
 */
export interface WaypointExplainRequest {
  type: 'explain';
  id: number;
  /** `namespace/name` of the Service and the port the client dialled; empty when it dialled a pod (`ip`). */
  service: string;
  /** The pod address dialled, for traffic addressed to a pod (waypoint-for workload or all). */
  ip?: string;
  port: number;
  sourceIp: string;
  /** `<trust-domain>/ns/<ns>/sa/<sa>`. */
  sourcePrincipal: string;
  method: string;
  path: string;
  headers: Record<string, string>;
}

export interface WaypointExplainAnswer {
  type: 'explained';
  id: number;
  steps: string[];
  /** What the waypoint answers itself instead of routing: 400, 401, 403. */
  refused?: { status: number; message: string };
  error?: string;
}
