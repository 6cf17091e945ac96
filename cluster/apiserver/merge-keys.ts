// Which lists of the built-in kinds ambit serves are merged rather than replaced, and by which key:
// the `patchStrategy:"merge"` and `patchMergeKey` tags of k8s.io/api core/v1 and apps/v1 types.go
// and apimachinery's ObjectMeta. Strategic merge patch reads this table, and so does server-side
// apply for its keyed lists. Custom resources (Istio, Gateway API, ambit.dev) have no entry.

/** What the schema says of one field: how a list in it merges, and the fields of its value or items. */
export interface FieldMeta {
  /** 'merge': a keyed list (with `key`) or a set of scalars (without); any other list is replaced whole. */
  list?: 'merge';
  /** The patchMergeKey: the field that names an item of a merged list of objects. */
  key?: string;
  /** The fields of the value (a struct) or of each item (a list of structs). */
  of?: Schema;
}
export type Schema = Record<string, FieldMeta>;

const merged = (key: string, of?: Schema): FieldMeta => ({ list: 'merge', key, ...(of ? { of } : {}) });

// core/v1 Container: command, args, envFrom and resizePolicy carry no patch strategy (atomic), so a
// patch replaces them whole; ports merge by containerPort alone (listMapKeys add protocol for
// server-side apply, ambit's ports are TCP only).
const container: Schema = {
  ports: merged('containerPort'),
  env: merged('name'),
  volumeMounts: merged('mountPath'),
  volumeDevices: merged('devicePath'),
};

// core/v1 PodSpec: tolerations, readinessGates and overhead have no strategy (replaced). Volumes also
// carry `retainKeys`, which only tells a client to send `$retainKeys`; the server honours that
// directive wherever it appears, so the table needs no mark for it.
const podSpec: Schema = {
  containers: merged('name', container),
  initContainers: merged('name', container),
  ephemeralContainers: merged('name', container),
  volumes: merged('name'),
  imagePullSecrets: merged('name'),
  hostAliases: merged('ip'),
  topologySpreadConstraints: merged('topologyKey'),
  schedulingGates: merged('name'),
  resourceClaims: merged('name'),
};

const objectMeta: Schema = {
  finalizers: { list: 'merge' },
  ownerReferences: merged('uid'),
};

const conditions = merged('type');

/** The schemas of the built-in kinds, by `apiVersion/kind`. */
const builtIn: Record<string, Schema> = {
  'v1/Pod': {
    metadata: { of: objectMeta },
    spec: { of: podSpec },
    status: { of: { conditions, podIPs: merged('ip'), hostIPs: merged('ip') } },
  },
  'v1/Service': {
    metadata: { of: objectMeta },
    // Merged by port alone, a known Kubernetes quirk: a TCP and a UDP port with the same number collide.
    spec: { of: { ports: merged('port') } },
    status: { of: { conditions } },
  },
  'v1/Namespace': {
    metadata: { of: objectMeta },
    // NamespaceSpec.finalizers has no strategy, unlike metadata.finalizers: it is replaced.
    status: { of: { conditions } },
  },
  'v1/ServiceAccount': {
    metadata: { of: objectMeta },
    secrets: merged('name'),
    // ServiceAccount.imagePullSecrets has no strategy, unlike PodSpec's: it is replaced.
  },
  'v1/Node': {
    metadata: { of: objectMeta },
    spec: { of: { podCIDRs: { list: 'merge' } } },
    status: { of: { conditions, addresses: merged('type') } },
  },
  // Kinds whose only tagged list is ObjectMeta's: still built in, so strategic merge patch (what
  // kubectl apply sends for them) is on offer.
  'v1/ConfigMap': { metadata: { of: objectMeta } },
  'v1/Secret': { metadata: { of: objectMeta } },
  'v1/Event': { metadata: { of: objectMeta } },
  'coordination.k8s.io/v1/Lease': { metadata: { of: objectMeta } },
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration': { metadata: { of: objectMeta }, webhooks: merged('name') },
  'apps/v1/Deployment': {
    metadata: { of: objectMeta },
    spec: { of: { template: { of: { metadata: { of: objectMeta }, spec: { of: podSpec } } } } },
    status: { of: { conditions } },
  },
  'apps/v1/DaemonSet': {
    metadata: { of: objectMeta },
    spec: { of: { template: { of: { metadata: { of: objectMeta }, spec: { of: podSpec } } } } },
    status: { of: { conditions } },
  },
  'policy/v1/PodDisruptionBudget': { metadata: { of: objectMeta }, status: { of: { conditions } } },
  // PolicyRule lists and RoleBinding subjects carry no strategy: replaced whole.
  'rbac.authorization.k8s.io/v1/ClusterRole': { metadata: { of: objectMeta } },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': { metadata: { of: objectMeta } },
  'rbac.authorization.k8s.io/v1/Role': { metadata: { of: objectMeta } },
  'rbac.authorization.k8s.io/v1/RoleBinding': { metadata: { of: objectMeta } },
};

/** The schema of a built-in kind; undefined for a custom resource, which has no patch tags. */
export function builtInSchema(apiVersion: string, kind: string): Schema | undefined {
  return Object.hasOwn(builtIn, `${apiVersion}/${kind}`) ? builtIn[`${apiVersion}/${kind}`] : undefined;
}
