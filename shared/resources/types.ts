// The Kubernetes-shaped resources ambit understands, as TypeScript types. Their JSON Schemas live in
// schemas.ts; what a kind is called on the command line lives in kinds.ts.

export type Labels = Record<string, string>;

export interface ObjectMeta {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Record<string, string>;
  /** Set by the controller: a counter that grows with every change of the store. */
  resourceVersion?: string;
  uid?: string;
  creationTimestamp?: string;
  /** Set by the Kubernetes API: grows by one with every change of the spec (anything but metadata and status). */
  generation?: number;
  /**
   * The objects this one depends on (Kubernetes' OwnerReference): when all of them are gone, the
   * garbage collector deletes this one (controller/resources/garbage-collector.ts).
   */
  ownerReferences?: OwnerReference[];
  managedFields?: { manager: string; operation: 'Apply' | 'Update'; apiVersion: string; time: string; fieldsType: 'FieldsV1'; fieldsV1: Record<string, unknown>; subresource?: string }[];
}

/** An owner, named as Kubernetes names it: the owner's own namespace is the dependent's. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  /** The managing controller; at most one owner of an object is. */
  controller?: boolean;
  /** Foreground deletion waits for this dependent (the local cluster deletes both in one commit). */
  blockOwnerDeletion?: boolean;
}

export interface Resource<Kind extends string = string, Spec = unknown> {
  apiVersion: string;
  kind: Kind;
  metadata: ObjectMeta;
  spec?: Spec;
  status?: unknown;
}

export type Namespace = Resource<'Namespace', never>;
export type ServiceAccount = Resource<'ServiceAccount', never>;

export interface ServicePort {
  name?: string;
  protocol?: 'TCP';
  port: number;
  targetPort?: number | string;
  appProtocol?: string;
}

export interface ServiceSpec {
  type?: 'ClusterIP';
  clusterIP?: string;
  /** Kubernetes' PreferClose: endpoints on the client's node first (ambit has no zones). */
  trafficDistribution?: 'PreferClose';
  selector?: Labels;
  ports: ServicePort[];
}
export type Service = Resource<'Service', ServiceSpec>;

export interface Container {
  name: string;
  /** Recorded for manifests written for a real cluster; the local cluster runs `command` on the host. */
  image?: string;
  command: string[];
  args?: string[];
  env?: { name: string; value: string }[];
  workingDir?: string;
  ports?: { containerPort: number; name?: string; protocol?: 'TCP' }[];
}

export interface PodSpec {
  serviceAccountName?: string;
  nodeName?: string;
  containers: Container[];
}

export interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels: Labels };
  template: { metadata?: { labels?: Labels; annotations?: Record<string, string> }; spec: PodSpec };
}
export type Deployment = Resource<'Deployment', DeploymentSpec>;

/** What a Deployment's controller makes for each template: it owns the Pods, the Deployment owns it. */
export interface ReplicaSetSpec {
  replicas: number;
  selector: { matchLabels: Labels };
  template: DeploymentSpec['template'];
}
export type ReplicaSet = Resource<'ReplicaSet', ReplicaSetSpec> & { spec: ReplicaSetSpec };

/**
 * discovery.k8s.io/v1 EndpointSlice, as Kubernetes' EndpointSlice controller writes it for a Service
 * with a selector (cluster/controllers/endpointslices.ts): no spec, its fields are top-level.
 */
export interface EndpointSliceEndpoint {
  addresses: string[];
  conditions: { ready: boolean; serving: boolean; terminating: boolean };
  nodeName?: string;
  targetRef: { kind: 'Pod'; namespace: string; name: string; uid: string };
}
export interface EndpointSlicePort {
  name: string;
  port: number;
  protocol: 'TCP';
  appProtocol?: string;
}
export type EndpointSlice = Resource<'EndpointSlice', never> & {
  addressType: 'IPv4';
  endpoints: EndpointSliceEndpoint[];
  ports: EndpointSlicePort[];
};

export interface PodStatus {
  phase: 'Pending' | 'Running' | 'Failed';
  podIP: string;
  hostIP: string;
  /** Why the pod is not running, when it is not. */
  message?: string;
  restarts: number;
  startTime?: string;
  containerStatuses: ContainerStatus[];
}

export interface ContainerStatus {
  name: string;
  /** Host process id of the container's main process while it runs. */
  pid?: number;
  restartCount: number;
  state: 'running' | 'waiting';
}
/** Pods are made by the local cluster's runtime from Deployments, never applied by users. */
export interface Pod extends Resource<'Pod', PodSpec> {
  spec: PodSpec & { nodeName: string };
  status: PodStatus;
}


export function resourceName(r: Pick<Resource, 'kind' | 'metadata'>): string {
  const ns = r.metadata?.namespace;
  return ns ? `${r.kind} ${ns}/${r.metadata?.name}` : `${r.kind} ${r.metadata?.name}`;
}

/** Identity of a resource in the store: kind, namespace ('' for cluster-scoped) and name. */
export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}

export function refOf(r: Resource): ResourceRef {
  return { kind: r.kind, namespace: r.metadata.namespace ?? '', name: r.metadata.name };
}

export function keyOf(ref: ResourceRef): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** A Service port's targetPort on a pod: a number is used as is, a name looked up in the pod's container ports. */
export function resolveTargetPort(target: number | string, pod: Pod): number | undefined {
  if (typeof target === 'number') return target;
  for (const c of pod.spec.containers) for (const p of c.ports ?? []) if (p.name === target) return p.containerPort;
  return undefined;
}

export function selectorMatches(selector: Labels | undefined, labels: Labels | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  for (const [k, v] of Object.entries(selector)) if (labels?.[k] !== v) return false;
  return true;
}
