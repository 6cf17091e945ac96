// The API resources the local API server serves, as discovery and OpenAPI describe them: each kind of
// shared/resources/kinds.ts with its group, version, plural, scope, verbs and subresources. What a
// request to one of them does is the REST server's concern, not this module's.

import { kinds } from '../../shared/resources/kinds.js';

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface Subresource {
  /** `status`, `scale`: the path segment after the object's name. */
  name: string;
  /** What GET on it returns; Scale is autoscaling/v1's, whatever the parent's group. */
  responseKind: GroupVersionKind;
  verbs: string[];
}

export interface ApiResource {
  group: string;
  version: string;
  /** `group/version`, or `version` for the core group: what objects of the kind carry. */
  apiVersion: string;
  kind: string;
  /** The plural, lower case: the path segment (`deployments`). */
  plural: string;
  singular: string;
  shortNames: string[];
  namespaced: boolean;
  verbs: string[];
  categories: string[];
  subresources: Subresource[];
}

export interface GroupVersion {
  group: string;
  version: string;
  resources: ApiResource[];
}

// The verbs kubectl looks for: `list` to show a resource in `api-resources`, `patch` for apply,
// `watch` for `get -w`. Sorted, as the real server lists them.
const readWrite = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
const readOnly = ['get', 'list', 'watch'];
/** Kinds no client may write (none today: the controller publishes TrustBundles as a client). */
const readOnlyKinds = new Set<string>();
/** `kubectl get all` shows the kinds in the `all` category; Kubernetes puts these (of those ambit serves) in it. */
const allCategory = new Set(['Pod', 'Service', 'Deployment', 'ReplicaSet']);

/** The mesh's kinds, as their CRDs declare them: their controllers write the status subresource, as clients; users write the rest. */
export const clientStatusKinds = new Set(['Gateway', 'HTTPRoute', 'GRPCRoute', 'AuthorizationPolicy', 'PeerAuthentication', 'RequestAuthentication', 'DestinationRule', 'LocalRateLimit', 'FaultInjection']);

const status = (gvk: GroupVersionKind): Subresource[] => [{ name: 'status', responseKind: gvk, verbs: ['get', 'patch', 'update'] }];
const subresourcesOf: Record<string, (gvk: GroupVersionKind) => Subresource[]> = {
  // `kubectl create token`: a TokenRequest posted to the ServiceAccount, answered with a token.
  ServiceAccount: () => [{ name: 'token', responseKind: { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest' }, verbs: ['create'] }],
  Pod: status,
  ...Object.fromEntries([...clientStatusKinds].map((k) => [k, status])),
  // `kubectl scale` reads and writes a Scale, not the Deployment.
  Deployment: () => [{ name: 'scale', responseKind: { group: 'autoscaling', version: 'v1', kind: 'Scale' }, verbs: ['get', 'patch', 'update'] }],
};

function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const slash = apiVersion.indexOf('/');
  return slash < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, slash), version: apiVersion.slice(slash + 1) };
}

/**
 * Resources that are requests, not stored objects: a TokenReview is posted and answered (who is
 * this token?), never kept, so it is in no kinds list and has only `create`.
 */
const requestResources: ApiResource[] = [
  { group: 'authentication.k8s.io', version: 'v1', apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', plural: 'tokenreviews', singular: 'tokenreview', shortNames: [], namespaced: false, verbs: ['create'], categories: [], subresources: [] },
];

export const apiResources: ApiResource[] = [...kinds.map((k): ApiResource => {
  const { group, version } = splitApiVersion(k.apiVersion);
  // kinds.ts lists names as [singular, plural, ...short forms].
  const [singular, plural, ...shortNames] = k.names as [string, string, ...string[]];
  return {
    group,
    version,
    apiVersion: k.apiVersion,
    kind: k.kind,
    plural,
    singular,
    shortNames,
    namespaced: k.namespaced,
    verbs: readOnlyKinds.has(k.kind) ? readOnly : readWrite,
    categories: allCategory.has(k.kind) ? ['all'] : [],
    subresources: subresourcesOf[k.kind]?.({ group, version, kind: k.kind }) ?? [],
  };
}), ...requestResources];

/** Every group-version served, the core group ('') first, then the named groups in kinds.ts order. */
export const groupVersions: GroupVersion[] = (() => {
  const byKey = new Map<string, GroupVersion>();
  for (const r of apiResources) {
    const key = `${r.group}/${r.version}`;
    if (!byKey.has(key)) byKey.set(key, { group: r.group, version: r.version, resources: [] });
    byKey.get(key)!.resources.push(r);
  }
  return [...byKey.values()].sort((a, b) => (a.group === '' ? -1 : b.group === '' ? 1 : 0));
})();

export function groupVersionString(gv: { group: string; version: string }): string {
  return gv.group ? `${gv.group}/${gv.version}` : gv.version;
}

/** The group-version served at `group`/`version`, if any. */
export function findGroupVersion(group: string, version: string): GroupVersion | undefined {
  return groupVersions.find((gv) => gv.group === group && gv.version === version);
}
