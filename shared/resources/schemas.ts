// JSON Schemas (draft 2020-12 subset that Ajv compiles) for every kind. Every object is closed
// (additionalProperties: false), so an unknown or misspelt field is an error that names it.

import { meshSpecs } from './mesh-schemas.js';
import { podTemplate, podSpec } from './pod-schemas.js';
import { annotations, closed, dns1123Label, dns1123Subdomain, intOrString, labels, labelSelector, nonNegative, port, str, stringList, type Schema } from './schema-parts.js';
import { ipv4Pattern } from './schema-parts.js';

export { ipv4Pattern, podSpec };

// Set by the server; accepted back so that an object read from the API can be written again.
const serverSet = { resourceVersion: { type: 'string' }, uid: { type: 'string' }, creationTimestamp: { type: 'string' }, generation: { type: 'integer', minimum: 1 },
  // Server-side apply's field owners (cluster/apiserver/server-side-apply.ts); Kubernetes' shape, kept as written.
  managedFields: { type: 'array', items: { type: 'object', required: ['manager', 'operation'], properties: { manager: { type: 'string' }, operation: { enum: ['Apply', 'Update'] }, apiVersion: { type: 'string' }, time: { type: 'string' }, fieldsType: { const: 'FieldsV1' }, fieldsV1: { type: 'object' }, subresource: { type: 'string' } }, additionalProperties: false } },
};

// Kubernetes' OwnerReference; the owner is looked up in the dependent's namespace (none for a
// cluster-scoped dependent), so a reference cannot cross namespaces.
const ownerReferences: Schema = {
  type: 'array',
  items: closed(
    {
      apiVersion: { type: 'string', minLength: 1 },
      kind: { type: 'string', minLength: 1 },
      name: { type: 'string', minLength: 1 },
      uid: { type: 'string', minLength: 1 },
      controller: { type: 'boolean' },
      blockOwnerDeletion: { type: 'boolean' },
    },
    ['apiVersion', 'kind', 'name', 'uid'],
  ),
};

function metadata(namespaced: boolean, namePattern: string): Schema {
  const props: Record<string, Schema> = {
    name: { type: 'string', minLength: 1, maxLength: 63, pattern: namePattern },
    labels,
    annotations,
    ownerReferences,
    ...serverSet,
  };
  if (namespaced) props.namespace = { type: 'string', minLength: 1, maxLength: 63, pattern: dns1123Label };
  return closed(props, ['name']);
}

function envelope(apiVersion: string, kind: string, namespaced: boolean, spec?: Schema, namePattern = dns1123Label, specRequired = true): Schema {
  const props: Record<string, Schema> = {
    apiVersion: { const: apiVersion },
    kind: { const: kind },
    metadata: metadata(namespaced, namePattern),
  };
  if (spec) props.spec = spec;
  // Status is written by ambit; a user's copy of it (from `ambit get -o yaml`) is accepted and ignored.
  props.status = { type: 'object' };
  return closed(props, spec && specRequired ? ['apiVersion', 'kind', 'metadata', 'spec'] : ['apiVersion', 'kind', 'metadata']);
}

// ConfigMap and Secret keys, as Kubernetes allows them (IsConfigMapKey).
const dataKey = { pattern: '^[-._a-zA-Z0-9]+$', maxLength: 253 };
const base64 = '^[A-Za-z0-9+/]*={0,2}$';
/** A kind whose content is top-level fields rather than a spec (ConfigMap, Secret). */
function dataEnvelope(kind: string, fields: Record<string, Schema>): Schema {
  return closed({ apiVersion: { const: 'v1' }, kind: { const: kind }, metadata: metadata(true, dns1123Subdomain), immutable: { type: 'boolean' }, ...fields }, ['apiVersion', 'kind', 'metadata']);
}

// RFC 3339 with microseconds, as Kubernetes writes a MicroTime (2026-12-01T08:30:00.000000Z).
const microTime: Schema = { type: 'string', pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?(Z|[+-]\\d\\d:\\d\\d)$' };

// core/v1 Event, as client-go's event recorder writes one (and events.k8s.io's newer fields, which the
// core API carries too). Its content is top-level fields, not a spec.
const objectReference = closed({ kind: { type: 'string' }, namespace: { type: 'string' }, name: { type: 'string' }, uid: { type: 'string' }, apiVersion: { type: 'string' }, resourceVersion: { type: 'string' }, fieldPath: { type: 'string' } });
const event: Schema = closed(
  {
    apiVersion: { const: 'v1' },
    kind: { const: 'Event' },
    metadata: metadata(true, dns1123Subdomain),
    involvedObject: objectReference,
    reason: { type: 'string', maxLength: 128 },
    message: { type: 'string' },
    source: closed({ component: { type: 'string' }, host: { type: 'string' } }),
    firstTimestamp: microTime,
    lastTimestamp: microTime,
    count: { type: 'integer', minimum: 0 },
    type: { enum: ['Normal', 'Warning'] },
    eventTime: microTime,
    series: closed({ count: { type: 'integer', minimum: 0 }, lastObservedTime: microTime }),
    action: { type: 'string', maxLength: 128 },
    related: objectReference,
    reportingComponent: { type: 'string', maxLength: 128 },
    reportingInstance: { type: 'string', maxLength: 128 },
  },
  ['apiVersion', 'kind', 'metadata', 'involvedObject'],
);

// admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration: which writes the API server
// sends to which webhook (cluster/apiserver/webhooks.ts). sideEffects Some and Unknown are not
// allowed in v1, so every v1 webhook may be called on a dry run.
const webhook: Schema = closed(
  {
    name: { type: 'string', pattern: dns1123Subdomain, maxLength: 253 },
    clientConfig: closed({
      url: { type: 'string', minLength: 1 },
      service: closed({ namespace: { type: 'string' }, name: { type: 'string' }, path: { type: 'string' }, port: port }, ['namespace', 'name']),
      caBundle: { type: 'string', pattern: base64 },
    }),
    rules: {
      type: 'array',
      items: closed({ apiGroups: { type: 'array', items: { type: 'string' } }, apiVersions: stringList, resources: stringList, operations: { type: 'array', items: { enum: ['*', 'CREATE', 'UPDATE', 'DELETE', 'CONNECT'] } }, scope: { enum: ['*', 'Cluster', 'Namespaced'] } }),
    },
    failurePolicy: { enum: ['Fail', 'Ignore'] },
    matchPolicy: { enum: ['Exact', 'Equivalent'] },
    namespaceSelector: labelSelector,
    objectSelector: labelSelector,
    sideEffects: { enum: ['None', 'NoneOnDryRun'] },
    timeoutSeconds: { type: 'integer', minimum: 1, maximum: 30 },
    admissionReviewVersions: { type: 'array', items: { type: 'string' }, minItems: 1, contains: { const: 'v1' } },
  },
  ['name', 'clientConfig', 'sideEffects', 'admissionReviewVersions'],
);

/** The metadata of a custom resource, checked by the API server whatever its CRD's schema says (names are DNS subdomains). */
export function customResourceMetadata(namespaced: boolean): Schema {
  return metadata(namespaced, dns1123Subdomain);
}

// A Deployment's or DaemonSet's selector: matchLabels, which must select the template's labels.
const selector = closed({ matchLabels: { ...labels, minProperties: 1 } }, ['matchLabels']);

// rbac.authorization.k8s.io/v1: stored and served; the local API server authorizes every request of
// a valid token (it does not enforce RBAC), a real one enforces these. Their content is top-level.
const policyRule = closed({ apiGroups: { type: 'array', items: str }, resources: stringList, verbs: { ...stringList, minItems: 1 }, resourceNames: stringList, nonResourceURLs: stringList }, ['verbs']);
function rbacRole(kind: 'ClusterRole' | 'Role', namespaced: boolean): Schema {
  const props: Record<string, Schema> = { apiVersion: { const: 'rbac.authorization.k8s.io/v1' }, kind: { const: kind }, metadata: metadata(namespaced, dns1123SubdomainOrPath), rules: { type: 'array', items: policyRule } };
  if (!namespaced) props.aggregationRule = closed({ clusterRoleSelectors: { type: 'array', items: labelSelector } });
  return closed(props, ['apiVersion', 'kind', 'metadata']);
}
function rbacBinding(kind: 'ClusterRoleBinding' | 'RoleBinding', namespaced: boolean): Schema {
  const subject = closed({ kind: { enum: ['ServiceAccount', 'User', 'Group'] }, name: { type: 'string', minLength: 1 }, namespace: str, apiGroup: str }, ['kind', 'name']);
  const roleRef = closed({ apiGroup: { const: 'rbac.authorization.k8s.io' }, kind: { enum: namespaced ? ['Role', 'ClusterRole'] : ['ClusterRole'] }, name: { type: 'string', minLength: 1 } }, ['apiGroup', 'kind', 'name']);
  return closed({ apiVersion: { const: 'rbac.authorization.k8s.io/v1' }, kind: { const: kind }, metadata: metadata(namespaced, dns1123SubdomainOrPath), subjects: { type: 'array', items: subject }, roleRef }, ['apiVersion', 'kind', 'metadata', 'roleRef']);
}
// RBAC names are path segments, not DNS names (`system:auth-delegator`); ambit's own are subdomains.
const dns1123SubdomainOrPath = '^[^/%]+$';

export const schemas: Record<string, Schema> = {
  // apiextensions.k8s.io/v1: the shape only; the API server checks names, versions and the
  // structural schema as Kubernetes does (cluster/apiserver/crd-validation.ts).
  CustomResourceDefinition: closed(
    { apiVersion: { const: 'apiextensions.k8s.io/v1' }, kind: { const: 'CustomResourceDefinition' }, metadata: metadata(false, dns1123Subdomain), spec: { type: 'object' }, status: { type: 'object' } },
    ['apiVersion', 'kind', 'metadata', 'spec'],
  ),
  ValidatingWebhookConfiguration: closed(
    { apiVersion: { const: 'admissionregistration.k8s.io/v1' }, kind: { const: 'ValidatingWebhookConfiguration' }, metadata: metadata(false, dns1123Subdomain), webhooks: { type: 'array', items: webhook } },
    ['apiVersion', 'kind', 'metadata'],
  ),
  Event: event,
  // coordination.k8s.io/v1 Lease: what leader election reads and renews (client-go's leaderelection).
  Lease: envelope(
    'coordination.k8s.io/v1',
    'Lease',
    true,
    closed({
      holderIdentity: { type: 'string' },
      leaseDurationSeconds: { type: 'integer', minimum: 1 },
      acquireTime: microTime,
      renewTime: microTime,
      leaseTransitions: { type: 'integer', minimum: 0 },
      strategy: { type: 'string' },
      preferredHolder: { type: 'string' },
    }),
    dns1123Subdomain,
    false,
  ),
  ConfigMap: dataEnvelope('ConfigMap', {
    data: { type: 'object', propertyNames: dataKey, additionalProperties: { type: 'string' } },
    binaryData: { type: 'object', propertyNames: dataKey, additionalProperties: { type: 'string', pattern: base64 } },
  }),
  // stringData is write-only, as in Kubernetes: admission folds it into data.
  Secret: dataEnvelope('Secret', {
    type: { type: 'string', minLength: 1 },
    data: { type: 'object', propertyNames: dataKey, additionalProperties: { type: 'string', pattern: base64 } },
    stringData: { type: 'object', propertyNames: dataKey, additionalProperties: { type: 'string' } },
  }),
  Namespace: envelope('v1', 'Namespace', false),
  ServiceAccount: envelope('v1', 'ServiceAccount', true, undefined, dns1123Subdomain),
  Service: envelope(
    'v1',
    'Service',
    true,
    closed(
      {
        type: { enum: ['ClusterIP'] },
        clusterIP: { type: 'string', pattern: ipv4Pattern },
        trafficDistribution: { enum: ['PreferClose'] },
        selector: labels,
        ports: {
          type: 'array',
          minItems: 1,
          items: closed(
            {
              name: { type: 'string', pattern: dns1123Label },
              protocol: { enum: ['TCP'] },
              port,
              targetPort: { oneOf: [port, { type: 'string', pattern: dns1123Label }] },
              appProtocol: { type: 'string' },
            },
            ['port'],
          ),
        },
      },
      ['ports'],
    ),
  ),
  Deployment: envelope(
    'apps/v1',
    'Deployment',
    true,
    closed(
      {
        replicas: { type: 'integer', minimum: 0, maximum: 1000 },
        selector,
        template: podTemplate,
        strategy: closed({ type: { enum: ['RollingUpdate', 'Recreate'] }, rollingUpdate: closed({ maxUnavailable: intOrString, maxSurge: intOrString }) }),
        minReadySeconds: nonNegative,
        revisionHistoryLimit: nonNegative,
        progressDeadlineSeconds: { type: 'integer', minimum: 1 },
      },
      ['selector', 'template'],
    ),
  ),
  // apps/v1 DaemonSet: one pod per node (ambit's agent); stored and served, not run by the local cluster.
  DaemonSet: envelope(
    'apps/v1',
    'DaemonSet',
    true,
    closed(
      {
        selector,
        template: podTemplate,
        updateStrategy: closed({ type: { enum: ['RollingUpdate', 'OnDelete'] }, rollingUpdate: closed({ maxUnavailable: intOrString, maxSurge: intOrString }) }),
        minReadySeconds: nonNegative,
        revisionHistoryLimit: nonNegative,
      },
      ['selector', 'template'],
    ),
    dns1123Subdomain,
  ),
  // policy/v1 PodDisruptionBudget: one of minAvailable or maxUnavailable, as Kubernetes requires.
  PodDisruptionBudget: envelope(
    'policy/v1',
    'PodDisruptionBudget',
    true,
    {
      ...closed({ minAvailable: intOrString, maxUnavailable: intOrString, selector: labelSelector, unhealthyPodEvictionPolicy: { enum: ['IfHealthyBudget', 'AlwaysAllow'] } }),
      not: { required: ['minAvailable', 'maxUnavailable'] },
    },
    dns1123Subdomain,
  ),
  ClusterRole: rbacRole('ClusterRole', false),
  Role: rbacRole('Role', true),
  ClusterRoleBinding: rbacBinding('ClusterRoleBinding', false),
  RoleBinding: rbacBinding('RoleBinding', true),
  ...Object.fromEntries(Object.entries(meshSpecs).map(([kind, m]) => [kind, envelope(m.apiVersion, kind, true, m.spec, dns1123Subdomain, m.specRequired)])),
};
