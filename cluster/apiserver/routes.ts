// The REST paths (routes) of the resources ambit serves (resources.ts, built in or by CRDs), as the Kubernetes API lays
// them out: /api/v1/... for the core group, /apis/{group}/{version}/... for the others, under
// namespaces/{ns}/ for namespaced kinds. Turns a path into the resource, namespace, name and
// subresource it names; what to do with them is server.ts's.

import type { ApiResource, ServedResources } from './resources.js';
import { noSuchResource } from './errors.js';

export type { ApiResource } from './resources.js';

export interface Route {
  resource: ApiResource;
  /** Set for paths under namespaces/{ns}/; a namespaced list without it spans every namespace. */
  namespace?: string;
  name?: string;
  subresource?: string;
}

/**
 * The route a path names; undefined when the path is not under /api or /apis at all (someone
 * else's, or nobody's); throws a 404 Status for an API path naming no resource.
 */
export function parseRoute(pathname: string, served: ServedResources): Route | undefined {
  const segments = pathname.split('/').filter((s) => s !== '');
  let group: string;
  let rest: string[];
  if (segments[0] === 'api' && segments.length >= 3) {
    group = '';
    rest = segments.slice(1);
  } else if (segments[0] === 'apis' && segments.length >= 4) {
    group = segments[1]!;
    rest = segments.slice(2);
  } else if (segments[0] === 'api' || segments[0] === 'apis') {
    throw noSuchResource();
  } else {
    return undefined;
  }
  let parts: string[];
  try {
    parts = rest.map((s) => decodeURIComponent(s));
  } catch {
    throw noSuchResource();
  }
  const [version, ...path] = parts as [string, ...string[]];
  const inVersion = served.all.filter((r) => r.group === group && r.version === version);
  const find = (plural: string | undefined) => inVersion.find((r) => r.plural === plural);
  // namespaces/{ns}/{plural}/... is a namespaced resource; namespaces/{name}[/{sub}] is a Namespace.
  if (path[0] === 'namespaces' && path.length >= 3 && find(path[2])?.namespaced) {
    const [, namespace, plural, name, subresource, ...extra] = path;
    if (extra.length) throw noSuchResource();
    return withOptional({ resource: find(plural)!, namespace: namespace! }, name, subresource);
  }
  const resource = find(path[0]);
  if (!resource || path.length > 3) throw noSuchResource();
  // A namespaced kind outside namespaces/ is only its list across every namespace.
  if (resource.namespaced && path.length > 1) throw noSuchResource();
  return withOptional({ resource }, path[1], path[2]);
}

function withOptional(route: Route, name: string | undefined, subresource: string | undefined): Route {
  if (name !== undefined) route.name = name;
  if (subresource !== undefined) route.subresource = subresource;
  return route;
}
