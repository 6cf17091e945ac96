// What a Kubernetes client asks before anything else: /version, the discovery documents (/api,
// /apis, each group-version's resource list) and the OpenAPI v3 documents kubectl validates with.
// Built from the kinds ambit serves (shared/resources/kinds.ts, via resources.ts) and their schemas.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';
import { acceptsPlainJson, etagOf, type MediaRange, notAcceptable, parseAccept, sendJson, sendStatus } from './negotiate.js';
import { handleOpenApi } from './openapi.js';
import { type ApiResource, type GroupVersion, groupVersionString, type ServedResources } from './resources.js';
import { versionInfo } from './version.js';

/** Answers `req` if it is a discovery, version or OpenAPI request; false when it is not one. */
export function handleDiscovery(req: IncomingMessage, res: ServerResponse, served: ServedResources): boolean {
  // kubectl adds `?timeout=32s` to discovery requests; only the OpenAPI documents read the query.
  const url = new URL(req.url ?? '/', 'http://apiserver');
  const segments = url.pathname.split('/').filter(Boolean);
  const route = routeOf(segments, served);
  if (!route) return false;
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    sendStatus(req, res, new ApiError(405, 'MethodNotAllowed', `${req.method} is not supported on ${url.pathname}; discovery documents are read with GET`));
    return true;
  }
  try {
    route(req, res, url);
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    sendStatus(req, res, err);
  }
  return true;
}

type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => void;

function routeOf(s: string[], served: ServedResources): Route | undefined {
  const [first, second, third] = s;
  // The real server writes /version as JSON whatever the Accept header says; so does this one.
  if (first === 'version' && s.length === 1) return (req, res) => sendJson(req, res, cachedDoc(served, 'version', () => versionInfo).body);
  if (first === 'api') {
    if (s.length === 1) return (req, res) => serveLegacyRoot(req, res, served);
    if (s.length === 2) return (req, res) => serveResourceList(req, res, served, '', second!);
  }
  if (first === 'apis') {
    if (s.length === 1) return (req, res) => serveGroupsRoot(req, res, served);
    if (s.length === 2) return (req, res) => serveGroup(req, res, served, second!);
    if (s.length === 3) return (req, res) => serveResourceList(req, res, served, second!, third!);
  }
  if (first === 'openapi') return (req, res, url) => handleOpenApi(req, res, url, served);
  return undefined;
}

/** A static document as JSON, with an ETag; 406 when the client accepts no JSON at all. */
function sendPlain(req: IncomingMessage, res: ServerResponse, doc: CachedDoc): void {
  const ranges = parseAccept(req.headers.accept);
  if (!ranges.some(acceptsPlainJson)) throw notAcceptable(req.headers.accept);
  sendJson(req, res, doc.body, { etag: doc.etag });
}

interface CachedDoc {
  body: string;
  etag: string;
}

// Every document here is a function of what is served (kinds.ts and the established CRDs), so each
// is serialised once per change of it.
function cachedDoc(served: ServedResources, key: string, build: () => unknown): CachedDoc {
  let doc = served.cache.get(`discovery/${key}`) as CachedDoc | undefined;
  if (!doc) {
    const body = JSON.stringify(build());
    doc = { body, etag: etagOf(body) };
    served.cache.set(`discovery/${key}`, doc);
  }
  return doc;
}

// --- Aggregated discovery (apidiscovery.k8s.io/v2, and v2beta1 for older clients) -------------------

type AggregatedVersion = 'v2' | 'v2beta1';

/** The aggregated-discovery version the client prefers over plain JSON, or undefined for plain JSON. */
function chooseAggregated(ranges: MediaRange[], accept: string | undefined): AggregatedVersion | undefined {
  for (const r of ranges) {
    const jsonType = r.type === 'application' && r.subtype === 'json';
    if (jsonType && r.params.g === 'apidiscovery.k8s.io' && r.params.as === 'APIGroupDiscoveryList' && (r.params.v === 'v2' || r.params.v === 'v2beta1')) {
      return r.params.v;
    }
    if (acceptsPlainJson(r)) return undefined;
  }
  throw notAcceptable(accept);
}

function aggregatedContentType(v: AggregatedVersion): string {
  return `application/json;g=apidiscovery.k8s.io;v=${v};as=APIGroupDiscoveryList`;
}

function scope(r: ApiResource): string {
  return r.namespaced ? 'Namespaced' : 'Cluster';
}

/** apidiscovery v2 APIResourceDiscovery; v2beta1 has the same fields. */
function resourceDiscovery(r: ApiResource): Record<string, unknown> {
  return {
    resource: r.plural,
    responseKind: { group: r.group, version: r.version, kind: r.kind },
    scope: scope(r),
    singularResource: r.singular,
    verbs: r.verbs,
    ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
    ...(r.categories.length ? { categories: r.categories } : {}),
    ...(r.subresources.length
      ? { subresources: r.subresources.map((s) => ({ subresource: s.name, responseKind: s.responseKind, verbs: s.verbs })) }
      : {}),
  };
}

function aggregatedList(v: AggregatedVersion, gvs: GroupVersion[]): Record<string, unknown> {
  const groups = new Map<string, GroupVersion[]>();
  for (const gv of gvs) groups.set(gv.group, [...(groups.get(gv.group) ?? []), gv]);
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: `apidiscovery.k8s.io/${v}`,
    metadata: {},
    items: [...groups].map(([group, versions]) => ({
      // The core group has no name: its APIGroupDiscovery's metadata is empty.
      metadata: group ? { name: group, creationTimestamp: null } : { creationTimestamp: null },
      versions: versions.map((gv) => ({ version: gv.version, resources: gv.resources.map(resourceDiscovery), freshness: 'Current' })),
    })),
  };
}

function serveAggregated(req: IncomingMessage, res: ServerResponse, served: ServedResources, v: AggregatedVersion, legacy: boolean): void {
  const gvs = served.groupVersions.filter((gv) => (gv.group === '') === legacy);
  const doc = cachedDoc(served, `aggregated/${v}/${legacy ? 'api' : 'apis'}`, () => aggregatedList(v, gvs));
  sendJson(req, res, doc.body, { contentType: aggregatedContentType(v), etag: doc.etag });
}

// --- Unaggregated discovery (meta/v1 APIVersions, APIGroupList, APIGroup, APIResourceList) ----------

function serveLegacyRoot(req: IncomingMessage, res: ServerResponse, served: ServedResources): void {
  const v = chooseAggregated(parseAccept(req.headers.accept), req.headers.accept);
  if (v) return serveAggregated(req, res, served, v, true);
  const versions = served.groupVersions.filter((gv) => gv.group === '').map((gv) => gv.version);
  // Clients may dial the address given for their CIDR; ours is the one this request came in on.
  const body = JSON.stringify({ kind: 'APIVersions', versions, serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: localAddress(req) }] });
  sendJson(req, res, body);
}

function localAddress(req: IncomingMessage): string {
  const host = (req.socket.localAddress ?? '127.0.0.1').replace(/^::ffff:/, '');
  return `${host.includes(':') ? `[${host}]` : host}:${req.socket.localPort ?? 443}`;
}

function apiGroup(served: ServedResources, group: string): Record<string, unknown> {
  const versions = served.groupVersions.filter((gv) => gv.group === group).map((gv) => ({ groupVersion: groupVersionString(gv), version: gv.version }));
  return { name: group, versions, preferredVersion: versions[0] };
}

function serveGroupsRoot(req: IncomingMessage, res: ServerResponse, served: ServedResources): void {
  const v = chooseAggregated(parseAccept(req.headers.accept), req.headers.accept);
  if (v) return serveAggregated(req, res, served, v, false);
  const groups = [...new Set(served.groupVersions.filter((gv) => gv.group !== '').map((gv) => gv.group))];
  const doc = cachedDoc(served, 'apis', () => ({ kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => apiGroup(served, g)) }));
  sendJson(req, res, doc.body, { etag: doc.etag });
}

function serveGroup(req: IncomingMessage, res: ServerResponse, served: ServedResources, group: string): void {
  if (!served.groupVersions.some((gv) => gv.group === group)) throw notFound(`/apis/${group}`);
  sendPlain(req, res, cachedDoc(served, `apis/${group}`, () => ({ kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(served, group) })));
}

function serveResourceList(req: IncomingMessage, res: ServerResponse, served: ServedResources, group: string, version: string): void {
  const gv = served.findGroupVersion(group, version);
  if (!gv) throw notFound(group ? `/apis/${group}/${version}` : `/api/${version}`);
  sendPlain(req, res, cachedDoc(served, `resources/${groupVersionString(gv)}`, () => resourceList(gv)));
}

/** meta/v1 APIResourceList: each resource, then each subresource as `plural/sub`. */
function resourceList(gv: GroupVersion): Record<string, unknown> {
  const resources: Record<string, unknown>[] = [];
  for (const r of gv.resources) {
    resources.push({
      name: r.plural,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
      ...(r.categories.length ? { categories: r.categories } : {}),
    });
    for (const s of r.subresources) {
      const other = s.responseKind.group !== r.group || s.responseKind.version !== r.version;
      resources.push({
        name: `${r.plural}/${s.name}`,
        singularName: '',
        namespaced: r.namespaced,
        // group and version only where they differ from the list's, as for deployments/scale.
        ...(other ? { group: s.responseKind.group, version: s.responseKind.version } : {}),
        kind: s.responseKind.kind,
        verbs: s.verbs,
      });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersionString(gv), resources };
}

function notFound(path: string): ApiError {
  return new ApiError(404, 'NotFound', `the server could not find the requested resource (${path}); see \`kubectl api-versions\` for what is served`);
}
