// Server-side printing: the meta.k8s.io/v1 `Table` that `kubectl get` asks for (Accept
// `application/json;as=Table;v=v1;g=meta.k8s.io`), with the columns the real API server gives each
// kind, so kubectl prints what users know. kubectl upper-cases the names and hides priority-1
// columns unless `-o wide`.

import type { CoreEvent } from '../../shared/resources/events.js';
import { controllerOf } from '../../shared/resources/owners.js';
import { type Deployment, type EndpointSlice, type Pod, type ReplicaSet, type Resource, type Service } from '../../shared/resources/types.js';
import type { ApiResource } from './routes.js';
import { cellOf, parseJsonPath } from './json-path.js';
import type { PrinterColumn } from './crd-validation.js';
import { podOwner } from '../../shared/resources/owners.js';

export interface TableColumnDefinition {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  format: string;
  description: string;
  priority: number;
}

export interface TableRow {
  cells: unknown[];
  object?: unknown;
}

export interface Table {
  kind: 'Table';
  apiVersion: 'meta.k8s.io/v1';
  metadata: { resourceVersion: string };
  columnDefinitions: TableColumnDefinition[];
  rows: TableRow[];
}

/** `includeObject`: what each row carries besides its cells (the real server's default is Metadata). */
export type IncludeObject = 'None' | 'Metadata' | 'Object';

export interface TableContext {
  includeObject: IncludeObject;
  /** The pods of a namespace, for the columns of a Deployment that count them. */
  podsIn: (namespace: string) => Pod[];
  now: number;
}

interface Column {
  def: TableColumnDefinition;
  cell: (r: Resource, ctx: TableContext) => unknown;
}

const col = (name: string, description: string, cell: Column['cell'], o: { type?: TableColumnDefinition['type']; format?: string; priority?: number } = {}): Column => ({
  def: { name, type: o.type ?? 'string', format: o.format ?? '', description, priority: o.priority ?? 0 },
  cell,
});

const nameColumn = col('Name', 'Name must be unique within a namespace.', (r) => r.metadata.name, { format: 'name' });
const ageColumn = col('Age', 'CreationTimestamp is a timestamp representing the server time when this object was created.', (r, ctx) => age(r.metadata.creationTimestamp, ctx.now));

/** Go's duration.HumanDuration, which kubectl's AGE column shows: `45s`, `3m20s`, `5h10m`, `12d`. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`;
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`;
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24)}d`;
  if (hours < 24 * 365 * 8) {
    const days = Math.floor(hours / 24) % 365;
    return days === 0 ? `${Math.floor(hours / 24 / 365)}y` : `${Math.floor(hours / 24 / 365)}y${days}d`;
  }
  return `${Math.floor(hours / 24 / 365)}y`;
}

function age(timestamp: string | undefined, now: number): string {
  return timestamp ? humanDuration(now - Date.parse(timestamp)) : '<unknown>';
}

const none = '<none>';
const labelsText = (labels: Record<string, string> | undefined) => (labels && Object.keys(labels).length ? Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') : none);

function podStatus(p: Pod): string {
  const s = p.status;
  if (!s) return 'Unknown';
  // What kubectl shows for a container that keeps exiting: the kubelet's back-off reason.
  if (s.phase === 'Running' && s.containerStatuses?.some((c) => c.state === 'waiting' && c.restartCount > 0)) return 'CrashLoopBackOff';
  return s.phase;
}

const podColumns: Column[] = [
  nameColumn,
  col('Ready', 'The aggregate readiness state of this pod for accepting traffic.', (r) => {
    const p = r as Pod;
    const running = p.status?.containerStatuses?.filter((c) => c.state === 'running').length ?? 0;
    return `${running}/${p.spec.containers.length}`;
  }),
  col('Status', 'The aggregate status of the containers in this pod.', (r) => podStatus(r as Pod)),
  col('Restarts', 'The number of times the containers in this pod have been restarted.', (r) => String((r as Pod).status?.restarts ?? 0)),
  ageColumn,
  col('IP', 'IP address allocated to the pod.', (r) => (r as Pod).status?.podIP || none, { priority: 1 }),
  col('Node', 'Name of the node this pod runs on.', (r) => (r as Pod).spec.nodeName || none, { priority: 1 }),
  col('Nominated Node', 'Name of the node this pod is nominated to run on (the local scheduler never nominates).', () => none, { priority: 1 }),
  col('Readiness Gates', 'Pod readiness gates (the local cluster has none).', () => none, { priority: 1 }),
];

interface DeploymentCounts {
  replicas: number;
  ready: number;
  upToDate: number;
}

/**
 * The Deployment's replica counts: its status when something wrote one, else counted from its pods
 * (the local runtime writes pods, not yet Deployment status).
 */
function deploymentCounts(d: Deployment, ctx: TableContext): DeploymentCounts {
  const replicas = d.spec?.replicas ?? 1;
  const status = d.status as { readyReplicas?: number; updatedReplicas?: number } | undefined;
  if (status && (status.readyReplicas !== undefined || status.updatedReplicas !== undefined)) {
    return { replicas, ready: status.readyReplicas ?? 0, upToDate: status.updatedReplicas ?? 0 };
  }
  const pods = ctx.podsIn(d.metadata.namespace ?? 'default').filter((p) => podOwner(p) === `Deployment/${d.metadata.name}` && p.status?.phase !== 'Failed');
  const ready = pods.filter((p) => p.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.state === 'running')).length;
  return { replicas, ready, upToDate: pods.length };
}

const deploymentColumns: Column[] = [
  nameColumn,
  col('Ready', 'Number of the pods that are ready, of the desired number.', (r, ctx) => {
    const c = deploymentCounts(r as Deployment, ctx);
    return `${c.ready}/${c.replicas}`;
  }),
  col('Up-to-date', 'Total number of non-terminated pods targeted by this deployment that have the desired template spec.', (r, ctx) => deploymentCounts(r as Deployment, ctx).upToDate, { type: 'integer' }),
  col('Available', 'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.', (r, ctx) => deploymentCounts(r as Deployment, ctx).ready, { type: 'integer' }),
  ageColumn,
  col('Containers', 'Names of each container in the template.', (r) => (r as Deployment).spec!.template.spec.containers.map((c) => c.name).join(','), { priority: 1 }),
  col('Images', 'Images referenced by each container in the template.', (r) => (r as Deployment).spec!.template.spec.containers.map((c) => c.image ?? none).join(','), { priority: 1 }),
  col('Selector', 'Label selector for pods.', (r) => labelsText((r as Deployment).spec!.selector.matchLabels), { priority: 1 }),
];

/** A ReplicaSet's pods: those naming it as their controller, by uid (the real controller counts them too). */
function replicaSetPods(rs: ReplicaSet, ctx: TableContext): Pod[] {
  return ctx.podsIn(rs.metadata.namespace ?? 'default').filter((p) => controllerOf(p)?.uid === rs.metadata.uid && p.status?.phase !== 'Failed');
}
const isReady = (p: Pod) => p.status?.phase === 'Running' && p.status.containerStatuses?.every((c) => c.state === 'running');

// The real server's columns (printers.go, AddHandlers: replicaSetColumnDefinitions), counted from
// the pods because the local controller writes no ReplicaSet status.
const replicaSetColumns: Column[] = [
  nameColumn,
  col('Desired', 'Number of desired pods.', (r) => (r as ReplicaSet).spec?.replicas ?? 1, { type: 'integer' }),
  col('Current', 'Number of actually running pods.', (r, ctx) => replicaSetPods(r as ReplicaSet, ctx).length, { type: 'integer' }),
  col('Ready', 'Number of ready pods.', (r, ctx) => replicaSetPods(r as ReplicaSet, ctx).filter(isReady).length, { type: 'integer' }),
  ageColumn,
  col('Containers', 'Names of each container in the template.', (r) => (r as ReplicaSet).spec.template.spec.containers.map((c) => c.name).join(','), { priority: 1 }),
  col('Images', 'Images referenced by each container in the template.', (r) => (r as ReplicaSet).spec.template.spec.containers.map((c) => c.image ?? none).join(','), { priority: 1 }),
  col('Selector', 'Label selector for pods.', (r) => labelsText((r as ReplicaSet).spec.selector.matchLabels), { priority: 1 }),
];

// The real server's DaemonSet columns (printers.go daemonSetColumnDefinitions), from its status.
const daemonSetCount = (field: string) => (r: Resource) => ((r.status as Record<string, number> | undefined)?.[field] ?? 0);
const daemonSetColumns: Column[] = [
  nameColumn,
  col('Desired', 'The total number of nodes that should be running the daemon pod.', daemonSetCount('desiredNumberScheduled'), { type: 'integer' }),
  col('Current', 'The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.', daemonSetCount('currentNumberScheduled'), { type: 'integer' }),
  col('Ready', 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.', daemonSetCount('numberReady'), { type: 'integer' }),
  col('Up-to-date', 'The total number of nodes that are running updated daemon pod.', daemonSetCount('updatedNumberScheduled'), { type: 'integer' }),
  col('Available', 'The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.', daemonSetCount('numberAvailable'), { type: 'integer' }),
  col('Node Selector', 'NodeSelector is a selector which must be true for the pod to fit on a node.', (r) => labelsText((r as Resource & { spec: { template: { spec: { nodeSelector?: Record<string, string> } } } }).spec.template.spec.nodeSelector) , {}),
  ageColumn,
];

const serviceColumns: Column[] = [
  nameColumn,
  col('Type', 'The type of the service.', (r) => (r as Service).spec?.type ?? 'ClusterIP'),
  col('Cluster-IP', 'The IP address of the service.', (r) => (r as Service).spec?.clusterIP ?? none),
  col('External-IP', 'The external IP address of the service (the local cluster has none).', () => none),
  col('Port(s)', 'The ports the service exposes.', (r) => (r as Service).spec?.ports.map((p) => `${p.port}/${p.protocol ?? 'TCP'}`).join(',') || none),
  ageColumn,
  col('Selector', 'Route service traffic to pods with label keys and values matching this selector.', (r) => labelsText((r as Service).spec?.selector), { priority: 1 }),
];

const namespaceColumns: Column[] = [nameColumn, col('Status', 'The status of the namespace.', (r) => (r.status as { phase?: string } | undefined)?.phase ?? 'Active'), ageColumn];

type NodeStatus = { conditions?: { type: string; status: string }[]; addresses?: { type: string; address: string }[]; nodeInfo?: Record<string, string> };
const nodeStatus = (r: Resource) => (r.status ?? {}) as NodeStatus;
const nodeAddress = (r: Resource, type: string) => nodeStatus(r).addresses?.find((a) => a.type === type)?.address ?? none;

const nodeColumns: Column[] = [
  nameColumn,
  col('Status', 'The status of the node.', (r) => (nodeStatus(r).conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? 'Ready' : 'NotReady')),
  col('Roles', 'The roles of the node.', (r) => {
    const roles = Object.keys(r.metadata.labels ?? {}).filter((k) => k.startsWith('node-role.kubernetes.io/')).map((k) => k.slice('node-role.kubernetes.io/'.length));
    return roles.length ? roles.sort().join(',') : none;
  }),
  ageColumn,
  col('Version', 'Kubelet Version reported by the node.', (r) => nodeStatus(r).nodeInfo?.kubeletVersion ?? ''),
  col('Internal-IP', 'List of internal IPs.', (r) => nodeAddress(r, 'InternalIP'), { priority: 1 }),
  col('External-IP', 'List of external IPs.', (r) => nodeAddress(r, 'ExternalIP'), { priority: 1 }),
  col('OS-Image', 'OS image reported by the node.', (r) => nodeStatus(r).nodeInfo?.osImage ?? '', { priority: 1 }),
  col('Kernel-Version', 'Kernel version reported by the node.', (r) => nodeStatus(r).nodeInfo?.kernelVersion ?? '', { priority: 1 }),
  col('Container-Runtime', 'Container runtime version reported by the node.', (r) => nodeStatus(r).nodeInfo?.containerRuntimeVersion ?? '', { priority: 1 }),
];

const serviceAccountColumns: Column[] = [nameColumn, col('Secrets', 'Number of secrets of the service account (ambit issues SVIDs instead).', () => 0, { type: 'integer' }), ageColumn];

const dataCount = (r: Resource) => {
  const d = r as Resource & { data?: Record<string, string>; binaryData?: Record<string, string> };
  return Object.keys(d.data ?? {}).length + Object.keys(d.binaryData ?? {}).length;
};
const configMapColumns: Column[] = [nameColumn, col('Data', 'Number of keys in the config map.', dataCount, { type: 'integer' }), ageColumn];
const secretColumns: Column[] = [nameColumn, col('Type', 'The type of the secret.', (r) => (r as Resource & { type?: string }).type ?? 'Opaque'), col('Data', 'Number of keys in the secret.', dataCount, { type: 'integer' }), ageColumn];

// kubectl's printEndpointSlice: the first three ports (their numbers) and addresses, then how many more.
const listWithMore = (list: string[], max = 3) => (list.length > max ? `${list.slice(0, max).join(',')} + ${list.length - max} more...` : list.join(',') || '<unset>');
const endpointSliceColumns: Column[] = [
  nameColumn,
  col('AddressType', 'addressType specifies the type of address carried by this EndpointSlice.', (r) => (r as EndpointSlice).addressType),
  col('Ports', 'ports specifies the list of network ports exposed by each endpoint in this slice.', (r) => listWithMore(((r as EndpointSlice).ports ?? []).map((p) => String(p.port ?? p.name ?? '*')))),
  col('Endpoints', 'endpoints is a list of unique endpoints in this slice.', (r) => listWithMore(((r as EndpointSlice).endpoints ?? []).flatMap((e) => e.addresses))),
  ageColumn,
];

const leaseColumns: Column[] = [nameColumn, col('Holder', 'holderIdentity contains the identity of the holder of a current lease.', (r) => (r.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? ''), ageColumn];

// kubectl's printEvent: LAST SEEN falls back to the first time, which falls back to eventTime; a
// series carries its own count and last time; OBJECT is `kind/name` in lower case.
const eventTimes = (e: CoreEvent, now: number) => {
  const first = e.firstTimestamp ? age(e.firstTimestamp, now) : age(e.eventTime, now);
  const last = e.series ? age(e.series.lastObservedTime, now) : e.lastTimestamp ? age(e.lastTimestamp, now) : first;
  return { first, last };
};
const eventColumns: Column[] = [
  col('Last Seen', 'The time at which the most recent occurrence of this event was recorded.', (r, ctx) => eventTimes(r as CoreEvent, ctx.now).last),
  col('Type', 'Type of this event (Normal, Warning).', (r) => (r as CoreEvent).type ?? ''),
  col('Reason', 'This should be a short, machine understandable string that gives the reason for the transition into the object\'s current status.', (r) => (r as CoreEvent).reason ?? ''),
  col('Object', 'The object that this event is about.', (r) => {
    const o = (r as CoreEvent).involvedObject ?? {};
    return o.name ? `${(o.kind ?? '').toLowerCase()}/${o.name}` : (o.kind ?? '').toLowerCase();
  }),
  col('Subobject', 'The field of the object this event is about (a container of a pod).', (r) => (r as CoreEvent).involvedObject?.fieldPath ?? '', { priority: 1 }),
  col('Source', 'The component reporting this event.', (r) => {
    const e = r as CoreEvent;
    const component = e.source?.component || e.reportingComponent || '';
    const instance = e.source?.host || e.reportingInstance || '';
    return instance ? `${component}, ${instance}` : component;
  }, { priority: 1 }),
  col('Message', 'A human-readable description of the status of this operation.', (r) => ((r as CoreEvent).message ?? '').trim()),
  col('First Seen', 'The time at which the event was first recorded.', (r, ctx) => eventTimes(r as CoreEvent, ctx.now).first, { priority: 1 }),
  col('Count', 'The number of times this event has occurred.', (r) => {
    const e = r as CoreEvent;
    return e.series ? (e.series.count ?? 0) : e.count || 1;
  }, { priority: 1 }),
  col('Name', 'Name must be unique within a namespace.', (r) => r.metadata.name, { priority: 1 }),
];

const webhookConfigurationColumns: Column[] = [
  nameColumn,
  col('Webhooks', 'Webhooks is a list of webhooks and the affected resources and operations.', (r) => ((r as Resource & { webhooks?: unknown[] }).webhooks ?? []).length, { type: 'integer' }),
  ageColumn,
];

const crdColumns: Column[] = [nameColumn, col('Created At', 'When the definition was created.', (r) => (r.metadata.creationTimestamp ?? '').replace(/\.\d+Z$/, 'Z'), { type: 'date' })];

const columnsByKind: Record<string, Column[]> = {
  CustomResourceDefinition: crdColumns,
  ValidatingWebhookConfiguration: webhookConfigurationColumns,
  Event: eventColumns,
  Lease: leaseColumns,
  ConfigMap: configMapColumns,
  Secret: secretColumns,
  Pod: podColumns,
  Deployment: deploymentColumns,
  ReplicaSet: replicaSetColumns,
  DaemonSet: daemonSetColumns,
  EndpointSlice: endpointSliceColumns,
  Service: serviceColumns,
  Namespace: namespaceColumns,
  Node: nodeColumns,
  ServiceAccount: serviceAccountColumns,
};

function rowObject(r: Resource, include: IncludeObject): unknown {
  if (include === 'None') return undefined;
  if (include === 'Object') return r;
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: r.metadata };
}

const columnTypes = new Set(['string', 'integer', 'number', 'boolean', 'date']);

/**
 * A CRD's additionalPrinterColumns after NAME, as the real server prints them: each a JSONPath
 * into the object; a `date` column shows its age, as kubectl's AGE does. No columns: NAME and AGE.
 */
function customColumns(columns: PrinterColumn[]): Column[] {
  if (!columns.length) return [nameColumn, ageColumn];
  return [
    nameColumn,
    ...columns.map((c) => {
      const steps = parseJsonPath(c.jsonPath);
      const type = (columnTypes.has(c.type) ? c.type : 'string') as TableColumnDefinition['type'];
      const cell: Column['cell'] = type === 'date' ? (r, ctx) => {
        const v = cellOf(steps, r);
        return typeof v === 'string' ? age(v, ctx.now) : '<unknown>';
      } : (r) => cellOf(steps, r) ?? (type === 'string' ? '' : null);
      return col(c.name, c.description ?? '', cell, { type: type === 'date' ? 'date' : type, format: c.format ?? '', priority: c.priority ?? 0 });
    }),
  ];
}

/** `objects` of `resource` as a Table; every row keeps its object's metadata unless told otherwise. */
export function toTable(resource: ApiResource, objects: Resource[], resourceVersion: string, ctx: TableContext): Table {
  const columns = resource.custom ? customColumns(resource.custom.printerColumns) : (columnsByKind[resource.kind] ?? [nameColumn, ageColumn]);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columns.map((c) => c.def),
    rows: objects.map((r) => {
      const object = rowObject(r, ctx.includeObject);
      return { cells: columns.map((c) => c.cell(r, ctx)), ...(object !== undefined ? { object } : {}) };
    }),
  };
}
