// The OpenAPI v3 component schemas of each served kind, derived from ambit's own JSON Schemas
// (shared/resources/schemas.ts) so that what `kubectl explain` shows is what the server accepts:
// closed objects stay closed. Named as Kubernetes names them (io.k8s.api.core.v1.Pod; a CRD-style
// reversed group for the others), each kind tagged with x-kubernetes-group-version-kind.

import { podSpec, schemas } from '../../shared/resources/schemas.js';
import type { ApiResource, GroupVersionKind } from './resources.js';

export type Schema = Record<string, unknown>;

export const objectMetaName = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
export const statusName = 'io.k8s.apimachinery.pkg.apis.meta.v1.Status';
export const scaleName = 'io.k8s.api.autoscaling.v1.Scale';

export function ref(name: string): Schema {
  return { $ref: `#/components/schemas/${name}` };
}

/** io.k8s.api.<group>.<version> for Kubernetes' own groups; the group's labels reversed for the rest. */
export function componentPrefix(group: string, version: string): string {
  if (group === '' || group === 'apps' || group === 'autoscaling') return `io.k8s.api.${group || 'core'}.${version}`;
  if (group === 'discovery.k8s.io' || group === 'policy' || group === 'rbac.authorization.k8s.io') return `io.k8s.api.${group.split('.')[0]}.${version}`;
  return `${group.split('.').reverse().join('.')}.${version}`;
}

export function componentName(gvk: GroupVersionKind): string {
  return `${componentPrefix(gvk.group, gvk.version)}.${gvk.kind}`;
}

// Sub-schemas Kubernetes names in its own documents, so explain prints `<[]Container>` and not
// `<[]Object>`. Keyed by kind and dotted path (`[]` for an array's items).
const namedParts: Record<string, Record<string, string>> = {
  Pod: { spec: 'io.k8s.api.core.v1.PodSpec', 'spec.containers[]': 'io.k8s.api.core.v1.Container', status: 'io.k8s.api.core.v1.PodStatus' },
  Deployment: {
    spec: 'io.k8s.api.apps.v1.DeploymentSpec',
    'spec.selector': 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector',
    'spec.template': 'io.k8s.api.core.v1.PodTemplateSpec',
    'spec.template.spec': 'io.k8s.api.core.v1.PodSpec',
    'spec.template.spec.containers[]': 'io.k8s.api.core.v1.Container',
  },
  ReplicaSet: {
    spec: 'io.k8s.api.apps.v1.ReplicaSetSpec',
    'spec.selector': 'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector',
    'spec.template': 'io.k8s.api.core.v1.PodTemplateSpec',
    'spec.template.spec': 'io.k8s.api.core.v1.PodSpec',
    'spec.template.spec.containers[]': 'io.k8s.api.core.v1.Container',
  },
  EndpointSlice: { 'endpoints[]': 'io.k8s.api.discovery.v1.Endpoint', 'ports[]': 'io.k8s.api.discovery.v1.EndpointPort' },
  Service: { spec: 'io.k8s.api.core.v1.ServiceSpec', 'spec.ports[]': 'io.k8s.api.core.v1.ServicePort' },
};

const componentDescriptions: Record<string, string> = {
  'io.k8s.api.core.v1.PodSpec': 'PodSpec is the description of a pod: its containers, run by the local cluster as host processes in the pod network namespace.',
  'io.k8s.api.core.v1.Container': 'A single application container: a command the local cluster runs in the pod.',
  'io.k8s.api.core.v1.PodStatus': 'PodStatus is what the local cluster last observed of a pod.',
  'io.k8s.api.apps.v1.DeploymentSpec': 'DeploymentSpec is the specification of the desired behavior of the Deployment.',
  'io.k8s.api.apps.v1.ReplicaSetSpec': 'ReplicaSetSpec is the specification of a ReplicaSet: how many pods of which template.',
  'io.k8s.api.discovery.v1.Endpoint': 'Endpoint represents a single logical "backend" implementing a service: here, one pod.',
  'io.k8s.api.discovery.v1.EndpointPort': 'EndpointPort represents a Port used by an EndpointSlice: a Service port resolved to the pods\' port number.',
  'io.k8s.api.core.v1.PodTemplateSpec': 'PodTemplateSpec describes the pods that will be created.',
  'io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector': 'A label selector: the pods a Deployment owns.',
  'io.k8s.api.core.v1.ServiceSpec': 'ServiceSpec describes the attributes that a user creates on a service.',
  'io.k8s.api.core.v1.ServicePort': 'ServicePort contains information on service port.',
};

// How kubectl's strategic merge patch and the server's apply merge these lists: by key, as in
// Kubernetes' own documents. Without them kubectl would send a whole list where the server merges
// by key, and a field removed from one container would survive.
const listMaps: Record<string, { keys: string[]; mergeKey: string }> = {
  'spec.containers': { keys: ['name'], mergeKey: 'name' },
  'spec.template.spec.containers': { keys: ['name'], mergeKey: 'name' },
  'spec.containers[].env': { keys: ['name'], mergeKey: 'name' },
  'spec.template.spec.containers[].env': { keys: ['name'], mergeKey: 'name' },
  'spec.containers[].ports': { keys: ['containerPort', 'protocol'], mergeKey: 'containerPort' },
  'spec.template.spec.containers[].ports': { keys: ['containerPort', 'protocol'], mergeKey: 'containerPort' },
};
const serviceListMaps: Record<string, { keys: string[]; mergeKey: string }> = { 'spec.ports': { keys: ['port', 'protocol'], mergeKey: 'port' } };
const listMapsOf = (kind: string) => (kind === 'Service' ? serviceListMaps : kind === 'Pod' || kind === 'Deployment' || kind === 'ReplicaSet' || kind === 'DaemonSet' ? listMaps : {});

const descriptions: Record<string, string> = {
  apiVersion: 'APIVersion defines the versioned schema of this representation of an object.',
  kind: 'Kind is a string value representing the REST resource this object represents.',
  metadata: "Standard object's metadata.",
  spec: 'The desired state of the object, as written by its owner.',
  status: 'The observed state of the object, written by ambit; ignored when applied.',
};

const kindDescriptions: Record<string, string> = {
  Namespace: 'Namespace provides a scope for names.',
  ServiceAccount: 'ServiceAccount is the identity a workload runs as; the mesh issues its SPIFFE SVID.',
  Service: 'Service is a named set of Pods selected by labels, reached at a cluster IP through the mesh.',
  ConfigMap: 'ConfigMap holds configuration data (strings, or base64 in binaryData) for workloads to read.',
  Secret: 'Secret holds sensitive data, base64 in data; stringData is folded into data on write.',
  Deployment: 'Deployment runs replicas of a Pod template on the local cluster.',
  Event: 'Event is a report of something that happened to an object (involvedObject); expired an hour after its last occurrence.',
  TokenReview: 'TokenReview asks who a bearer token belongs to; the answer is in its status, and nothing is stored.',
  TokenRequest: 'TokenRequest asks for a token of a ServiceAccount (for audiences, for a time, bound to an object).',
  ValidatingWebhookConfiguration: 'ValidatingWebhookConfiguration names the webhooks the API server asks before it stores a matching write.',
  Lease: 'Lease records which holder leads (leader election) and until when it renewed its claim.',
  Pod: 'Pod is one running replica of a Deployment, made by ambit; apply a Deployment instead.',
  ReplicaSet: "ReplicaSet keeps replicas of one of a Deployment's pod templates; made by ambit from the Deployment.",
  EndpointSlice: 'EndpointSlice lists the pods a Service selects (addresses, readiness, ports); made by ambit from the Service, read-only.',
  Node: 'Node is one node of the local cluster, made by ambit.',
  DaemonSet: 'DaemonSet runs one pod per node; the local kubelet runs ambit\'s agent DaemonSet (hostNetwork) as a process per node.',
  PodDisruptionBudget: 'PodDisruptionBudget limits how many pods of a set a voluntary disruption may take down at once.',
  ClusterRole: 'ClusterRole is a set of permissions across the cluster; the local API server stores it and does not enforce it.',
  ClusterRoleBinding: 'ClusterRoleBinding grants a ClusterRole to subjects across the cluster.',
  Role: 'Role is a set of permissions in one namespace.',
  RoleBinding: 'RoleBinding grants a Role or ClusterRole to subjects in one namespace.',
  TrustBundle: "TrustBundle holds the mesh CA's root certificates for a trust domain, published by the controller.",
  AuthorizationPolicy: 'Istio security.istio.io AuthorizationPolicy: access control for workloads.',
  PeerAuthentication: 'Istio security.istio.io PeerAuthentication: the mutual TLS mode of workloads.',
  RequestAuthentication: 'Istio security.istio.io RequestAuthentication: the JWTs a workload accepts.',
  DestinationRule: 'Istio networking.istio.io DestinationRule: traffic policy (load balancing) for a host.',
  HTTPRoute: 'Gateway API HTTPRoute: routing of HTTP requests to backends.',
  Gateway: 'Gateway API Gateway: listeners that accept traffic into the mesh.',
};

// Kinds ambit makes have no schema for validation (nobody applies them); these say what it serves.
const open: Schema = { type: 'object' };
const str: Schema = { type: 'string' };
const int: Schema = { type: 'integer' };
function closed(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}
function servedEnvelope(apiVersion: string, kind: string, spec: Schema, status?: Schema): Schema {
  const props: Record<string, Schema> = { apiVersion: { const: apiVersion }, kind: { const: kind }, metadata: open, spec };
  if (status) props.status = status;
  return closed(props, ['apiVersion', 'kind', 'metadata']);
}
const madeByAmbit: Record<string, Schema> = {
  Pod: servedEnvelope(
    'v1',
    'Pod',
    podSpec,
    closed({
      phase: { enum: ['Pending', 'Running', 'Failed'] },
      podIP: str,
      hostIP: str,
      message: str,
      restarts: int,
      startTime: str,
      containerStatuses: { type: 'array', items: closed({ name: str, pid: int, restartCount: int, state: { enum: ['running', 'waiting'] } }) },
    }),
  ),
  // Made by the Deployment controller (cluster/controllers/deployments.ts): the Deployment's spec
  // with replicas required and the selector and template carrying the pod-template-hash.
  ReplicaSet: servedEnvelope('apps/v1', 'ReplicaSet', (schemas.Deployment!.properties as Record<string, Schema>).spec!, open),
  // Made by the EndpointSlice controller (cluster/controllers/endpointslices.ts); its fields are
  // top-level, as in Kubernetes, not under a spec.
  EndpointSlice: closed(
    {
      apiVersion: { const: 'discovery.k8s.io/v1' },
      kind: { const: 'EndpointSlice' },
      metadata: open,
      addressType: { enum: ['IPv4'], description: 'addressType specifies the type of address carried by this EndpointSlice.' },
      endpoints: {
        type: 'array',
        description: 'endpoints is a list of unique endpoints in this slice.',
        items: closed(
          {
            addresses: { type: 'array', items: str },
            conditions: closed({ ready: { type: 'boolean' }, serving: { type: 'boolean' }, terminating: { type: 'boolean' } }),
            nodeName: str,
            targetRef: closed({ kind: str, namespace: str, name: str, uid: str }),
          },
          ['addresses'],
        ),
      },
      ports: {
        type: 'array',
        description: 'ports specifies the list of network ports exposed by each endpoint in this slice.',
        items: closed({ name: str, port: int, protocol: { enum: ['TCP'] }, appProtocol: str }),
      },
    },
    ['apiVersion', 'kind', 'metadata', 'addressType', 'endpoints'],
  ),
  // The local cluster's runtime sets a Node's spec and status; their fields are its to define.
  Node: servedEnvelope('v1', 'Node', open, open),
  // Requests answered and never stored (cluster/apiserver/token-api.ts).
  TokenReview: servedEnvelope(
    'authentication.k8s.io/v1',
    'TokenReview',
    closed({ token: str, audiences: { type: 'array', items: str } }, ['token']),
    closed({ authenticated: { type: 'boolean' }, user: open, audiences: { type: 'array', items: str }, error: str }),
  ),
  TokenRequest: servedEnvelope(
    'authentication.k8s.io/v1',
    'TokenRequest',
    closed({ audiences: { type: 'array', items: str }, expirationSeconds: int, boundObjectRef: closed({ kind: str, apiVersion: str, name: str, uid: str }) }),
    closed({ token: str, expirationTimestamp: str }),
  ),
  TrustBundle: servedEnvelope('ambit.dev/v1alpha1', 'TrustBundle', closed({ roots: { type: 'array', items: str, description: 'PEM root certificates.' } }, ['roots'])),
};

/** The JSON Schema of a kind: the one it is validated with, or what ambit serves for the kinds it makes. */
function jsonSchemaOf(kind: string): Schema {
  const s = schemas[kind] ?? madeByAmbit[kind];
  if (!s) throw new Error(`no schema for kind ${kind}: add one to shared/resources/schemas.ts`);
  return s;
}

function jsonType(v: unknown): string | undefined {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return undefined;
}

// Keywords that mean the same in JSON Schema and OpenAPI 3.0's schema object.
const copied = ['type', 'format', 'description', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'minProperties', 'maxProperties'];

/**
 * Translates JSON Schema to an OpenAPI 3.0 schema, filling `components` with the named parts of
 * `kind`. `const` becomes a one-value enum; `propertyNames` (not in OpenAPI 3.0) is dropped, the
 * server still enforces it; an integer-or-string oneOf is marked as Kubernetes marks IntOrString.
 */
function convert(s: Schema, kind: string, path: string, components: Record<string, Schema>): Schema {
  if (path === 'metadata') return { allOf: [ref(objectMetaName)], description: descriptions.metadata };
  const name = namedParts[kind]?.[path];
  if (name) {
    components[name] ??= { description: componentDescriptions[name], ...convertInline(s, kind, path, components) };
    // A described field wraps its reference, as Kubernetes writes it, so explain shows both.
    return descriptions[path] ? { allOf: [ref(name)], description: descriptions[path] } : ref(name);
  }
  return convertInline(s, kind, path, components);
}

function convertInline(s: Schema, kind: string, path: string, components: Record<string, Schema>): Schema {
  const out: Schema = {};
  const child = (sub: unknown, p: string) => convert(sub as Schema, kind, p, components);
  for (const key of copied) if (s[key] !== undefined) out[key] = s[key];
  if (path && !path.includes('.') && !path.includes('[') && descriptions[path] && !out.description) out.description = descriptions[path];
  if ('const' in s) {
    out.type = jsonType(s.const);
    out.enum = [s.const];
  }
  if (Array.isArray(s.enum)) {
    out.enum = s.enum;
    const types = new Set(s.enum.map(jsonType));
    if (!out.type && types.size === 1) out.type = [...types][0];
  }
  if (s.properties) {
    out.properties = Object.fromEntries(Object.entries(s.properties as Record<string, Schema>).map(([k, v]) => [k, child(v, path ? `${path}.${k}` : k)]));
  }
  if (Array.isArray(s.required) && s.required.length) out.required = s.required;
  if (s.items) out.items = child(s.items, `${path}[]`);
  const listMap = listMapsOf(kind)[path];
  if (listMap) {
    out['x-kubernetes-list-type'] = 'map';
    out['x-kubernetes-list-map-keys'] = listMap.keys;
    out['x-kubernetes-patch-merge-key'] = listMap.mergeKey;
    out['x-kubernetes-patch-strategy'] = 'merge';
  }
  if (typeof s.additionalProperties === 'boolean') out.additionalProperties = s.additionalProperties;
  else if (s.additionalProperties) out.additionalProperties = child(s.additionalProperties, `${path}{}`);
  for (const combinator of ['oneOf', 'anyOf'] as const) {
    const alternatives = s[combinator] as Schema[] | undefined;
    if (!alternatives) continue;
    const converted = alternatives.map((a, i) => child(a, `${path}|${i}`));
    const types = new Set(converted.map((a) => a.type));
    if (types.size === 2 && types.has('integer') && types.has('string')) {
      out['x-kubernetes-int-or-string'] = true;
      out.anyOf = converted;
    } else out[combinator] = converted;
  }
  return out;
}

function gvkExtension(gvk: GroupVersionKind): Schema {
  // Key order as the real server writes it; clients compare the maps, not the text.
  return { 'x-kubernetes-group-version-kind': [{ group: gvk.group, kind: gvk.kind, version: gvk.version }] };
}

/** ObjectMeta from the metadata ambit accepts (schemas.ts): the same closed set of fields. */
function objectMeta(): Schema {
  const namespaced = (jsonSchemaOf('Deployment').properties as Record<string, Schema>).metadata!;
  const props = { ...(namespaced.properties as Record<string, Schema>) };
  const d: Record<string, string> = {
    name: 'Name must be unique within a namespace; a DNS label for most kinds.',
    namespace: 'The namespace of a namespaced object; "default" when not given.',
    labels: 'Map of string keys and values used to select objects (Services, Deployments).',
    annotations: 'Unstructured key value map stored with the object.',
    resourceVersion: 'Set by the server: changes with every write of the object.',
    uid: 'Set by the server: unique for the lifetime of the object.',
    creationTimestamp: 'Set by the server: when the object was created (RFC 3339).',
  };
  const properties = Object.fromEntries(
    Object.entries(props).map(([k, v]) => {
      // Name patterns differ by kind (a DNS label or subdomain): the server checks them per kind.
      const { pattern: _pattern, propertyNames: _names, ...rest } = v;
      return [k, convertInline({ ...rest, description: d[k] }, 'ObjectMeta', `metadata.${k}`, {})];
    }),
  );
  return {
    description: 'ObjectMeta is metadata that all persisted resources must have.',
    type: 'object',
    properties,
    additionalProperties: false,
  };
}

/**
 * A custom resource's component: its CRD version's openAPIV3Schema as written (descriptions and
 * x-kubernetes-* extensions kept, for explain and client-side tools), with apiVersion, kind and
 * metadata as every object has them, as the real server publishes it.
 */
function customComponent(schema: Schema): Schema {
  const out = structuredClone(schema);
  out.type = 'object';
  out.properties = {
    ...(out.properties as Record<string, Schema> | undefined),
    apiVersion: { type: 'string', description: descriptions.apiVersion },
    kind: { type: 'string', description: descriptions.kind },
    metadata: { allOf: [ref(objectMetaName)], description: descriptions.metadata },
  };
  return out;
}

/** Every component a group-version's document needs: its kinds, their lists, and what they use. */
export function componentsFor(resources: ApiResource[]): Record<string, Schema> {
  const components: Record<string, Schema> = {};
  for (const r of resources) {
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    const s = r.custom ? customComponent(r.custom.schema) : convert(jsonSchemaOf(r.kind), r.kind, '', components);
    components[componentName(gvk)] = { description: kindDescriptions[r.kind], ...s, ...gvkExtension(gvk) };
    const listGvk = { ...gvk, kind: `${r.kind}List` };
    components[componentName(listGvk)] = {
      description: `${r.kind}List is a list of ${r.kind} objects.`,
      type: 'object',
      required: ['items'],
      properties: {
        apiVersion: { type: 'string', description: descriptions.apiVersion },
        kind: { type: 'string', description: descriptions.kind },
        metadata: { type: 'object', properties: { resourceVersion: str, continue: str } },
        items: { type: 'array', items: ref(componentName(gvk)) },
      },
      ...gvkExtension(listGvk),
    };
    if (r.subresources.some((s) => s.responseKind.kind === 'Scale')) components[scaleName] = scale();
    // A subresource's own kind (a ServiceAccount's TokenRequest), in its own group's name.
    for (const sub of r.subresources) {
      if (sub.responseKind.kind === 'Scale' || sub.responseKind.kind === r.kind) continue;
      components[componentName(sub.responseKind)] = { description: kindDescriptions[sub.responseKind.kind], ...convert(jsonSchemaOf(sub.responseKind.kind), sub.responseKind.kind, '', components), ...gvkExtension(sub.responseKind) };
    }
  }
  components[objectMetaName] = objectMeta();
  components[statusName] = {
    description: 'Status is the result of a call that does not return an object, and of every error.',
    type: 'object',
    properties: { apiVersion: str, kind: str, status: str, message: str, reason: str, code: int, details: open, metadata: open },
    ...gvkExtension({ group: '', version: 'v1', kind: 'Status' }),
  };
  return components;
}

/** autoscaling/v1 Scale: what `kubectl scale` reads and writes on deployments/scale. */
function scale(): Schema {
  return {
    description: 'Scale represents a scaling request for a resource.',
    type: 'object',
    properties: {
      apiVersion: { type: 'string', description: descriptions.apiVersion },
      kind: { type: 'string', description: descriptions.kind },
      metadata: { allOf: [ref(objectMetaName)], description: descriptions.metadata },
      spec: { type: 'object', properties: { replicas: { type: 'integer', description: 'The desired number of instances.' } }, additionalProperties: false },
      status: { type: 'object', properties: { replicas: int, selector: str }, required: ['replicas'] },
    },
    additionalProperties: false,
    ...gvkExtension({ group: 'autoscaling', version: 'v1', kind: 'Scale' }),
  };
}
