// What the controller pushes to a node agent: the node's share of the cluster as typed entries,
// keyed so that a delta can add, replace or remove one entry. Shared by controller and agent.

import type { Labels } from '../resources/types.js';
import type { Identity } from '../identity/spiffe.js';

/**
 * A workload (pod) as an agent needs it. Pods of other nodes carry only what routing, identity and
 * telemetry use; the node's own pods also carry their labels (enrollment, policy selectors). What
 * telemetry reads of the labels is derived once by the controller and sent to every node, so that
 * the agents at both ends of a connection label it alike.
 */
export interface WorkloadEntry {
  name: string;
  namespace: string;
  ip: string;
  node: string;
  serviceAccount: string;
  /** Deployment that owns it, e.g. `Deployment/web-v1`; the `source_workload` of telemetry. */
  owner: string;
  labels?: Labels;
  uid?: string;
  phase?: string;
  /** The pod opts out of the mesh (`ambit.dev/dataplane-mode: none`); sent to every node, as labels are not. */
  optOut?: true;
  /**
   * Istio's canonical service and revision (shared/resources/canonical.ts), each sent only where it
   * is not the default: the workload name, and `latest`.
   */
  canonicalService?: string;
  canonicalRevision?: string;
  /**
   * The waypoint its pod-addressed traffic goes through: the pod's (or its namespace's) use-waypoint
   * label names a Gateway whose `istio.io/waypoint-for` is `workload` or `all`. Unset for the default
   * `service`, whose waypoint takes only the traffic addressed to a Service.
   */
  waypoint?: { namespace: string; name: string };
}

/** The SPIFFE identity a workload runs as: its namespace and ServiceAccount in the trust domain. */
export function workloadIdentity(w: Pick<WorkloadEntry, 'namespace' | 'serviceAccount'>, trustDomain: string): Identity {
  return { trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount };
}

/** A node, where HBONE tunnels to its pods go (its agent's 15008). */
export interface NodeEntry {
  name: string;
  ip: string;
}

export interface ServiceEntry {
  name: string;
  namespace: string;
  clusterIP: string;
  ports: { name?: string; port: number; targetPort: number | string }[];
  /** Workloads behind the Service: address, node, and the target of each Service port. */
  endpoints: { ip: string; node: string; ports: Record<string, number> }[];
  /** From a DestinationRule's trafficPolicy.loadBalancer.simple; round robin when absent. */
  loadBalancer?: 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';
  /** The Service's `trafficDistribution: PreferClose`: endpoints on the client's node first. */
  preferClose?: true;
  /**
   * The waypoint its traffic goes through (a Service labelled `istio.io/use-waypoint`): the Gateway's
   * namespace and name, which are also those of the waypoint's own Service entry.
   */
  waypoint?: { namespace: string; name: string };
}

/** A Service's host name as Istio's telemetry and ztunnel's Forwarded `host=` spell it. */
export function serviceHostname(s: { name: string; namespace: string }): string {
  return `${s.name}.${s.namespace}.svc.cluster.local`;
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

/**
 * A traffic-management resource as applied (HTTPRoute, GRPCRoute, DestinationRule, FaultInjection,
 * LocalRateLimit):
 * agents keep it for the waypoints of their node, which route by it.
 */
export interface TrafficEntry {
  kind: string;
  name: string;
  namespace: string;
  /** Gateway API precedence breaks ties between routes by age. */
  creationTimestamp?: string;
  generation?: number;
  spec: unknown;
}

/** The roots that workload certificates of a trust domain chain to (several during a rotation). */
export interface TrustBundleEntry {
  trustDomain: string;
  roots: string[];
}

export type ConfigEntry =
  | { kind: 'workload'; key: string; value: WorkloadEntry }
  | { kind: 'service'; key: string; value: ServiceEntry }
  | { kind: 'namespace'; key: string; value: NamespaceEntry }
  | { kind: 'policy'; key: string; value: PolicyEntry }
  | { kind: 'trustbundle'; key: string; value: TrustBundleEntry }
  | { kind: 'node'; key: string; value: NodeEntry }
  | { kind: 'traffic'; key: string; value: TrafficEntry };

export type EntryKind = ConfigEntry['kind'];
export const entryKinds: EntryKind[] = ['workload', 'service', 'namespace', 'policy', 'trustbundle', 'node', 'traffic'];

/**
 * An entry on the wire: its key says its kind and, for workloads and services, its namespace and
 * name (`workload/shop/web-1`, `service/shop/web`, `namespace/shop`, `policy/<Kind>/<ns>/<name>`,
 * `traffic/<Kind>/<ns>/<name>`),
 * which the value then leaves out. A full push carries tens of thousands of them, so every byte
 * counts several million times across a fleet.
 */
export interface WireEntry {
  key: string;
  value: Record<string, unknown>;
}

export function workloadKey(namespace: string, name: string): string {
  return `workload/${namespace}/${name}`;
}

export function serviceKey(namespace: string, name: string): string {
  return `service/${namespace}/${name}`;
}

/** The wire form of an entry: drops what the key says. */
export function encodeEntry(e: ConfigEntry): WireEntry {
  if (e.kind === 'workload' || e.kind === 'service') {
    const { name, namespace, ...rest } = e.value;
    return { key: e.key, value: rest };
  }
  return { key: e.key, value: e.value as unknown as Record<string, unknown> };
}

/** The entry a wire entry stands for, or a reason it is malformed. */
export function decodeEntry(w: WireEntry): ConfigEntry | string {
  if (!w || typeof w.key !== 'string' || !w.value || typeof w.value !== 'object') return 'an entry needs a key and a value';
  const parts = w.key.split('/');
  const kind = parts[0] as EntryKind;
  if (!entryKinds.includes(kind)) return `entry ${JSON.stringify(w.key)} is of unknown kind ${JSON.stringify(kind)}`;
  if (kind === 'workload' || kind === 'service') {
    if (parts.length !== 3) return `entry key ${JSON.stringify(w.key)} must be ${kind}/<namespace>/<name>`;
    const value: Record<string, unknown> = { ...w.value, namespace: parts[1], name: parts[2] };
    if (kind === 'workload') {
      if (typeof value.ip !== 'string' || typeof value.node !== 'string') return `workload ${w.key} needs ip and node`;
      return { kind, key: w.key, value: value as unknown as WorkloadEntry };
    }
    if (!Array.isArray(value.endpoints)) return `service ${w.key} needs endpoints`;
    return { kind, key: w.key, value: value as unknown as ServiceEntry };
  }
  return { kind, key: w.key, value: w.value } as unknown as ConfigEntry;
}
/**
 * One push. A full push replaces everything the agent holds; a delta applies to version `from`
 * and yields version `to` (the controller's store revision). The agent answers with an Ack or Nack.
 */
export interface ConfigPush {
  type: 'config';
  full: boolean;
  from: number;
  to: number;
  upserts: WireEntry[];
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

/** The pods of the node whose traffic the agent captures now (sent whenever that changes). */
export interface CaptureStatus {
  type: 'capture';
  captured: string[];
  failed: Record<string, string>;
}

export type AgentMessage = Ack | Nack | ResyncRequest | CaptureStatus;
export type ControllerMessage = ConfigPush;

/** HTTP header naming the node on the agent's WebSocket upgrade request. */
export const nodeHeader = 'x-ambit-node';
export const pushPath = '/v1/agents/connect';
/** WebSocket close code the controller sends a node's session when a newer one from that node replaces it. */
export const replacedCloseCode = 4000;

/**
 * The agents' ServiceAccount: an agent proves its node with a token of it bound to the node (or to
 * the agent's pod), asked for this audience, which the controller checks by TokenReview.
 */
export const agentServiceAccount = { namespace: 'ambit-system', name: 'ambit-agent' } as const;
export const agentTokenAudience = 'ambit-controller';

/**
 * Where the controller's leader publishes the mesh CA's roots for the agents of a real cluster, as
 * istiod publishes `istio-ca-root-cert`: a ConfigMap the agent DaemonSet mounts, read as the agent's
 * `--controller-ca` (the roots that signed the controller's serving certificate).
 */
export const caRootConfigMap = { namespace: 'ambit-system', name: 'ambit-ca-root-cert', key: 'root-cert.pem' } as const;
