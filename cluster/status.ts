// What `ambit status` shows of the local cluster: nodes, pods with their addresses and nodes, and
// Services with their ClusterIPs and endpoints. Computed from the store and the topology.

import { type Deployment, type Pod, type Service } from '../shared/resources/types.js';
import type { Store } from '../controller/store/store.js';
import { endpointsOf } from './kube-proxy/services.js';
import { captureFailureAnnotation, redirectionAnnotation } from '../shared/enrollment.js';
import type { Topology } from './topology.js';
import { podOwner } from '../shared/resources/owners.js';
import { agentName } from '../deploy/manifests.js';
import { installNamespace } from '../deploy/values.js';

export interface ClusterStatus {
  name: string;
  nodes: { name: string; ip: string; podCIDR: string; netns: string; pods: number }[];
  pods: { namespace: string; name: string; uid: string; ip: string; node: string; phase: string; restarts: number; serviceAccount: string; labels: Record<string, string>; message?: string; capture?: string }[];
  services: { namespace: string; name: string; clusterIP: string; ports: { name?: string; port: number; endpoints: string[] }[] }[];
  /** Each Deployment's wanted replicas and how many of its pods run (`ambit up` waits for all). */
  deployments: { namespace: string; name: string; replicas: number; running: number }[];
  /** The agents' DaemonSet as its status counts them (`ambit up` waits until all are ready); absent if it is not installed. */
  agentsReady?: { desired: number; ready: number };
}

/** What the node's agent reported of the pod's capture, as the controller marked the Pod. */
function captureOf(p: Pod): string | undefined {
  const a = p.metadata.annotations ?? {};
  if (a[redirectionAnnotation] === 'enabled') return 'captured';
  return a[captureFailureAnnotation] ? `failed: ${a[captureFailureAnnotation]}` : undefined;
}

export function clusterStatus(t: Topology, store: Store): ClusterStatus {
  const pods = store.list('Pod') as Pod[];
  const services = store.list('Service') as Service[];
  const ports = endpointsOf(services, pods);
  const deployments = store.list('Deployment') as Deployment[];
  const agents = store.get('DaemonSet', installNamespace, agentName) as { status?: { desiredNumberScheduled?: number; numberReady?: number } } | undefined;
  return {
    name: t.name,
    nodes: t.nodes.map((n) => ({ name: n.name, ip: n.ip, podCIDR: n.podCIDR.text, netns: n.netns, pods: pods.filter((p) => p.spec.nodeName === n.name).length })),
    pods: pods.map((p) => ({
      namespace: p.metadata.namespace!,
      name: p.metadata.name,
      uid: p.metadata.uid ?? '',
      ip: p.status.podIP,
      node: p.spec.nodeName,
      phase: p.status.phase,
      restarts: p.status.restarts,
      serviceAccount: p.spec.serviceAccountName ?? 'default',
      labels: p.metadata.labels ?? {},
      ...(p.status.message ? { message: p.status.message } : {}),
      ...(captureOf(p) ? { capture: captureOf(p)! } : {}),
    })),
    services: services.map((s) => ({
      namespace: s.metadata.namespace!,
      name: s.metadata.name,
      clusterIP: s.spec!.clusterIP ?? '',
      ports: ports
        .filter((sp) => sp.service === s)
        .map((sp) => ({ ...(sp.name ? { name: sp.name } : {}), port: sp.port, endpoints: sp.endpoints.map((e) => `${e.ip}:${e.port}`) })),
    })),
    deployments: deployments.map((d) => ({
      namespace: d.metadata.namespace!,
      name: d.metadata.name,
      replicas: d.spec?.replicas ?? 1,
      running: pods.filter((p) => p.metadata.namespace === d.metadata.namespace && podOwner(p) === `Deployment/${d.metadata.name}` && p.status.phase === 'Running').length,
    })),
    ...(agents ? { agentsReady: { desired: agents.status?.desiredNumberScheduled ?? t.nodes.length, ready: agents.status?.numberReady ?? 0 } } : {}),
  };
}
