// The kinds ambit knows: their API versions, scope, and the names the CLI accepts for them
// (`ambit get deploy`, `ambit get services`), as kubectl does. The mesh's kinds (Istio's, the Gateway
// API's, ambit.dev's) are known to ambit's clients here, but the API server serves them only through
// their CustomResourceDefinitions (shared/kube/crds.ts: upstream's, vendored in manifests/crds/), as a
// Kubernetes API server does.

export interface KindInfo {
  kind: string;
  apiVersion: string;
  namespaced: boolean;
  /** Lower-case names accepted on the command line: singular, plural and short forms. */
  names: string[];
  /** False for kinds the cluster makes itself (Pods and ReplicaSets come from Deployments, EndpointSlices from Services). */
  userApplied: boolean;
  /** Served by the API server only while its CustomResourceDefinition is installed; not built in. */
  crd?: boolean;
}

export const kinds: KindInfo[] = [
  { kind: 'Namespace', apiVersion: 'v1', namespaced: false, names: ['namespace', 'namespaces', 'ns'], userApplied: true },
  { kind: 'ServiceAccount', apiVersion: 'v1', namespaced: true, names: ['serviceaccount', 'serviceaccounts', 'sa'], userApplied: true },
  { kind: 'Service', apiVersion: 'v1', namespaced: true, names: ['service', 'services', 'svc'], userApplied: true },
  { kind: 'ConfigMap', apiVersion: 'v1', namespaced: true, names: ['configmap', 'configmaps', 'cm'], userApplied: true },
  { kind: 'Secret', apiVersion: 'v1', namespaced: true, names: ['secret', 'secrets'], userApplied: true },
  { kind: 'Event', apiVersion: 'v1', namespaced: true, names: ['event', 'events', 'ev'], userApplied: true },
  { kind: 'Deployment', apiVersion: 'apps/v1', namespaced: true, names: ['deployment', 'deployments', 'deploy'], userApplied: true },
  { kind: 'ReplicaSet', apiVersion: 'apps/v1', namespaced: true, names: ['replicaset', 'replicasets', 'rs'], userApplied: false },
  // Stored and served for `ambit install` and kubectl (the agent DaemonSet, its controller's PodDisruptionBudget and
  // RBAC); the local cluster runs no DaemonSet controller, evicts nothing and does not enforce RBAC (its tokens are all-powerful).
  { kind: 'DaemonSet', apiVersion: 'apps/v1', namespaced: true, names: ['daemonset', 'daemonsets', 'ds'], userApplied: true },
  { kind: 'PodDisruptionBudget', apiVersion: 'policy/v1', namespaced: true, names: ['poddisruptionbudget', 'poddisruptionbudgets', 'pdb'], userApplied: true },
  { kind: 'ClusterRole', apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: false, names: ['clusterrole', 'clusterroles'], userApplied: true },
  { kind: 'ClusterRoleBinding', apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: false, names: ['clusterrolebinding', 'clusterrolebindings'], userApplied: true },
  { kind: 'Role', apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: true, names: ['role', 'roles'], userApplied: true },
  { kind: 'RoleBinding', apiVersion: 'rbac.authorization.k8s.io/v1', namespaced: true, names: ['rolebinding', 'rolebindings'], userApplied: true },
  { kind: 'Lease', apiVersion: 'coordination.k8s.io/v1', namespaced: true, names: ['lease', 'leases'], userApplied: true },
  { kind: 'ValidatingWebhookConfiguration', apiVersion: 'admissionregistration.k8s.io/v1', namespaced: false, names: ['validatingwebhookconfiguration', 'validatingwebhookconfigurations'], userApplied: true },
  { kind: 'CustomResourceDefinition', apiVersion: 'apiextensions.k8s.io/v1', namespaced: false, names: ['customresourcedefinition', 'customresourcedefinitions', 'crd', 'crds'], userApplied: true },
  { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', namespaced: true, names: ['endpointslice', 'endpointslices'], userApplied: false },
  { kind: 'Pod', apiVersion: 'v1', namespaced: true, names: ['pod', 'pods', 'po'], userApplied: false },
  { kind: 'Node', apiVersion: 'v1', namespaced: false, names: ['node', 'nodes', 'no'], userApplied: false },
  { kind: 'AuthorizationPolicy', apiVersion: 'security.istio.io/v1', namespaced: true, names: ['authorizationpolicy', 'authorizationpolicies', 'ap'], userApplied: true, crd: true },
  { kind: 'PeerAuthentication', apiVersion: 'security.istio.io/v1', namespaced: true, names: ['peerauthentication', 'peerauthentications', 'pa'], userApplied: true, crd: true },
  { kind: 'RequestAuthentication', apiVersion: 'security.istio.io/v1', namespaced: true, names: ['requestauthentication', 'requestauthentications', 'ra'], userApplied: true, crd: true },
  { kind: 'DestinationRule', apiVersion: 'networking.istio.io/v1', namespaced: true, names: ['destinationrule', 'destinationrules', 'dr'], userApplied: true, crd: true },
  // Written by the controller's leader through the API, like any client's object (there is no RBAC to keep others out).
  { kind: 'TrustBundle', apiVersion: 'ambit.dev/v1alpha1', namespaced: false, names: ['trustbundle', 'trustbundles'], userApplied: true, crd: true },
  { kind: 'HTTPRoute', apiVersion: 'gateway.networking.k8s.io/v1', namespaced: true, names: ['httproute', 'httproutes'], userApplied: true, crd: true },
  { kind: 'GRPCRoute', apiVersion: 'gateway.networking.k8s.io/v1', namespaced: true, names: ['grpcroute', 'grpcroutes'], userApplied: true, crd: true },
  { kind: 'Gateway', apiVersion: 'gateway.networking.k8s.io/v1', namespaced: true, names: ['gateway', 'gateways', 'gtw'], userApplied: true, crd: true },
  { kind: 'FaultInjection', apiVersion: 'ambit.dev/v1alpha1', namespaced: true, names: ['faultinjection', 'faultinjections'], userApplied: true, crd: true },
  { kind: 'LocalRateLimit', apiVersion: 'ambit.dev/v1alpha1', namespaced: true, names: ['localratelimit', 'localratelimits', 'lrl'], userApplied: true, crd: true },
];

export function kindInfo(kind: string): KindInfo | undefined {
  return kinds.find((k) => k.kind === kind);
}

/** Resolves a command-line name (`deploy`, `Services`, `sa`) to its kind. */
export function kindByName(name: string): KindInfo | undefined {
  const lower = name.toLowerCase();
  return kinds.find((k) => k.names.includes(lower) || k.kind.toLowerCase() === lower);
}
