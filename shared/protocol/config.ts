// What the controller pushes to a node agent: the node's share of the cluster as typed entries,
// keyed so that a delta can add, replace or remove one entry. Shared by controller and agent.

import type { Labels } from '../resources/types.js';

/** A workload (pod) as an agent needs it. Pods of other nodes carry only what routing and policy use. */
export interface WorkloadEntry {
  uid: string;
  name: string;
  namespace: string;
  ip: string;
  node: string;
  serviceAccount: string;
  labels: Labels;
  /** Deployment that owns it, e.g. `Deployment/web-v1`; the `source_workload` of telemetry. */
  owner: string;
  phase: string;
}

export interface ServiceEntry {
  name: string;
  namespace: string;
  clusterIP: string;
  ports: { name?: string; port: number; targetPort: number | string }[];
  /** Workload uids behind the Service, with the port each port maps to. */
  endpoints: { uid: string; ip: string; node: string; ports: Record<string, number> }[];
}

export interface NamespaceEntry {
  name: string;
  labels: Labels;
}

/** An Istio security resource (AuthorizationPolicy, PeerAuthentication, RequestAuthentication) as applied. */
export interface PolicyEntry {
  kind: string;
  name: string;
  namespace: string;
  spec: unknown;
}

export type ConfigEntry =
  | { kind: 'workload'; key: string; value: WorkloadEntry }
  | { kind: 'service'; key: string; value: ServiceEntry }
  | { kind: 'namespace'; key: string; value: NamespaceEntry }
  | { kind: 'policy'; key: string; value: PolicyEntry };

export type EntryKind = ConfigEntry['kind'];
export const entryKinds: EntryKind[] = ['workload', 'service', 'namespace', 'policy'];

/**
 * One push. A full push replaces everything the agent holds; a delta applies to version `from`
 * and yields version `to` (the controller's store revision). The agent answers with an Ack or Nack.
 */
export interface ConfigPush {
  type: 'config';
  full: boolean;
  from: number;
  to: number;
  upserts: ConfigEntry[];
  deletes: string[];
}

export interface Ack {
  type: 'ack';
  version: number;
}

export interface Nack {
  type: 'nack';
  version: number;
  reason: string;
}

/** The agent asks for everything again (it lost track, or an operator asked it to). */
export interface ResyncRequest {
  type: 'resync';
  reason: string;
}

export type AgentMessage = Ack | Nack | ResyncRequest;
export type ControllerMessage = ConfigPush;

/** HTTP header naming the node on the agent's WebSocket upgrade request. */
export const nodeHeader = 'x-ambit-node';
export const pushPath = '/v1/agents/connect';
