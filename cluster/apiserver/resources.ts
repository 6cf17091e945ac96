// The API resources the local API server serves, as discovery and OpenAPI describe them: each built-in
// kind of shared/resources/kinds.ts with its group, version, plural, scope, verbs and subresources,
// and (ServedResources) those its established CustomResourceDefinitions add. What a request to one of
// them does is the REST server's concern, not this module's.

import { kinds } from '../../shared/resources/kinds.js';
import type { Resource } from '../../shared/resources/types.js';
import { objectValidator, type JsonSchemaProps, type ObjectValidator } from './crd-schema.js';
import { type Crd, isEstablished, type PrinterColumn } from './crd-validation.js';

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
  /** Set when a CustomResourceDefinition serves this resource, not the server itself. */
  custom?: CustomVersion;
}

/** One served version of a CustomResourceDefinition. */
export interface CustomVersion {
  /** The CRD's name, `<plural>.<group>`. */
  crd: string;
  /** The apiVersion objects are stored in; another served version shows the same fields under its own (conversion None). */
  storageApiVersion: string;
  /** The version's openAPIV3Schema, as published in /openapi/v3. */
  schema: JsonSchemaProps;
  validate: ObjectValidator;
  printerColumns: PrinterColumn[];
  /** Whether the status subresource is enabled: then status is written only through /status. */
  status: boolean;
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

const status = (gvk: GroupVersionKind): Subresource[] => [{ name: 'status', responseKind: gvk, verbs: ['get', 'patch', 'update'] }];
const subresourcesOf: Record<string, (gvk: GroupVersionKind) => Subresource[]> = {
  // `kubectl create token`: a TokenRequest posted to the ServiceAccount, answered with a token.
  ServiceAccount: () => [{ name: 'token', responseKind: { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenRequest' }, verbs: ['create'] }],
  Pod: status,
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

/** The resources the server has built in; the mesh's kinds are not among them (their CRDs serve them). */
export const apiResources: ApiResource[] = [...kinds.filter((k) => !k.crd).map((k): ApiResource => {
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

/** Groups and versions of `resources`: the core group ('') first, then named groups in the order first met. */
function groupVersionsOf(resources: ApiResource[]): GroupVersion[] {
  const byKey = new Map<string, GroupVersion>();
  for (const r of resources) {
    const key = `${r.group}/${r.version}`;
    if (!byKey.has(key)) byKey.set(key, { group: r.group, version: r.version, resources: [] });
    byKey.get(key)!.resources.push(r);
  }
  return [...byKey.values()].sort((a, b) => (a.group === '' ? -1 : b.group === '' ? 1 : 0));
}

/** The built-in group-versions. */
export const groupVersions: GroupVersion[] = groupVersionsOf(apiResources);

export const builtInGroups = new Set(apiResources.map((r) => r.group));

export function groupVersionString(gv: { group: string; version: string }): string {
  return gv.group ? `${gv.group}/${gv.version}` : gv.version;
}

/** Kubernetes' version priority: GA before beta before alpha, higher numbers first, then the rest by name. */
export function compareVersions(a: string, b: string): number {
  const rank = (v: string): [number, number, number, string] => {
    const m = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(v);
    if (!m) return [3, 0, 0, v];
    return [m[2] === undefined ? 0 : m[2] === 'beta' ? 1 : 2, -Number(m[1]), -Number(m[3] ?? 0), v];
  };
  const x = rank(a);
  const y = rank(b);
  for (let i = 0; i < 4; i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
  return 0;
}

/**
 * What one API server serves now: the built-in resources and those of every established
 * CustomResourceDefinition in its store. `refresh` after a CRD changes; `generation` moves with
 * every refresh, so documents built from it (discovery, OpenAPI) are cached per generation.
 */
export class ServedResources {
  private resources: ApiResource[] = apiResources;
  private versions: GroupVersion[] = groupVersions;
  private readonly validators = new Map<string, { key: string; validate: ObjectValidator }>();
  generation = 0;
  /** Documents built from what is served, dropped on refresh. */
  readonly cache = new Map<string, unknown>();

  constructor(private readonly crds: () => Resource[]) {
    this.refresh();
  }

  get all(): ApiResource[] {
    return this.resources;
  }

  get groupVersions(): GroupVersion[] {
    return this.versions;
  }

  findGroupVersion(group: string, version: string): GroupVersion | undefined {
    return this.versions.find((gv) => gv.group === group && gv.version === version);
  }

  refresh(): void {
    const custom: ApiResource[] = [];
    const live = new Set<string>();
    const crds = (this.crds() as Crd[]).filter(isEstablished).sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
    for (const crd of crds) {
      const { group, names, scope } = crd.spec;
      const storage = crd.spec.versions.find((v) => v.storage)!.name;
      const served = crd.spec.versions.filter((v) => v.served).sort((a, b) => compareVersions(a.name, b.name));
      for (const v of served) {
        const schema = v.schema?.openAPIV3Schema ?? { type: 'object' };
        const namespaced = scope === 'Namespaced';
        const key = `${crd.metadata.uid}/${crd.metadata.resourceVersion}/${v.name}`;
        const id = `${crd.metadata.name}/${v.name}`;
        live.add(id);
        let cached = this.validators.get(id);
        if (cached?.key !== key) {
          // Compiled on first use: admission compiled it before storing the CRD (objectValidator
          // refuses every object should one written to the store another way not compile).
          cached = { key, validate: objectValidator(schema, namespaced) };
          this.validators.set(id, cached);
        }
        const hasStatus = v.subresources?.status !== undefined;
        const gvk = { group, version: v.name, kind: names.kind };
        custom.push({
          group,
          version: v.name,
          apiVersion: `${group}/${v.name}`,
          kind: names.kind,
          plural: names.plural,
          singular: names.singular,
          shortNames: names.shortNames ?? [],
          namespaced,
          verbs: readOnlyKinds.has(names.kind) && group === 'ambit.dev' ? readOnly : readWrite,
          categories: names.categories ?? [],
          subresources: hasStatus ? status(gvk) : [],
          custom: { crd: crd.metadata.name, storageApiVersion: `${group}/${storage}`, schema, validate: cached.validate, printerColumns: v.additionalPrinterColumns ?? [], status: hasStatus },
        });
      }
    }
    for (const id of this.validators.keys()) if (!live.has(id)) this.validators.delete(id);
    this.resources = [...apiResources, ...custom];
    this.versions = groupVersionsOf(this.resources);
    this.generation++;
    this.cache.clear();
  }
}
