// OpenAPI v3 as the real API server serves it: an index at /openapi/v3 naming one document per
// group-version by a content hash, and each document with the paths and schemas of its resources.
// kubectl reads them for `explain` and to learn that the server validates fields itself: it looks
// for the `fieldValidation` parameter on the PATCH operation tagged with the object's group-version-kind
// (cli-runtime resource/query_param_verifier_v3.go), and when found sends fieldValidation=Strict
// instead of validating on the client. The component schemas come from openapi-schemas.ts.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from './errors.js';
import { builtInSchema } from './merge-keys.js';
import { etagOf, notAcceptable, parseAccept, sendJson } from './negotiate.js';
import { componentName, componentsFor, ref, type Schema, statusName } from './openapi-schemas.js';
import type { ApiResource, GroupVersion, GroupVersionKind, ServedResources } from './resources.js';
import { versionInfo } from './version.js';

/** `api/v1`, `apis/apps/v1`: the key of a group-version in the index, and its URL after /openapi/v3/. */
function apiPath(gv: { group: string; version: string }): string {
  return gv.group ? `apis/${gv.group}/${gv.version}` : `api/${gv.version}`;
}

/** Serves /openapi/v2, /openapi/v3 and /openapi/v3/<group-version>; a 404 Status for other /openapi paths. */
export function handleOpenApi(req: IncomingMessage, res: ServerResponse, url: URL, served: ServedResources): void {
  const rest = url.pathname.replace(/\/+$/, '');
  if (rest === '/openapi/v3') return serveIndex(req, res, served);
  const doc = rest.startsWith('/openapi/v3/') ? documents(served).get(rest.slice('/openapi/v3/'.length)) : undefined;
  if (doc) return serveDocument(req, res, url, doc);
  // No OpenAPI v2: kubectl 1.32 reads v3 for explain and field validation, and v2 only when v3 fails.
  throw new ApiError(404, 'NotFound', `the server could not find the requested resource (${url.pathname}); OpenAPI v3 is served at /openapi/v3`);
}

interface Document {
  path: string;
  body: string;
  hash: string;
}

/** Each group-version's document, serialised once per change of what is served (kinds.ts, the established CRDs). */
function documents(served: ServedResources): Map<string, Document> {
  let cache = served.cache.get('openapi/documents') as Map<string, Document> | undefined;
  if (!cache) {
    cache = new Map();
    for (const gv of served.groupVersions) {
      const body = JSON.stringify(documentFor(gv));
      cache.set(apiPath(gv), { path: apiPath(gv), body, hash: etagOf(body) });
    }
    served.cache.set('openapi/documents', cache);
  }
  return cache;
}

function serveIndex(req: IncomingMessage, res: ServerResponse, served: ServedResources): void {
  if (!acceptsJson(req.headers.accept)) throw notAcceptable(req.headers.accept);
  let index = served.cache.get('openapi/index') as { body: string; etag: string } | undefined;
  if (!index) {
    const paths = Object.fromEntries([...documents(served).values()].map((d) => [d.path, { serverRelativeURL: `/openapi/v3/${d.path}?hash=${d.hash}` }]));
    const body = JSON.stringify({ paths });
    index = { body, etag: etagOf(body) };
    served.cache.set('openapi/index', index);
  }
  sendJson(req, res, index.body, { etag: index.etag });
}

function serveDocument(req: IncomingMessage, res: ServerResponse, url: URL, doc: Document): void {
  // As kube-openapi's handler3: JSON or protobuf, and no protobuf here, so anything else is a 406.
  if (!acceptsJson(req.headers.accept)) throw notAcceptable(req.headers.accept);
  const hash = url.searchParams.get('hash');
  const headers: Record<string, string> = {};
  if (hash) {
    if (hash !== doc.hash) {
      // An old hash: send the client to the current document rather than serve stale bytes under it.
      res.writeHead(301, { location: `/openapi/v3/${doc.path}?hash=${doc.hash}`, 'content-length': '0' }).end();
      return;
    }
    // The hash names these bytes forever, so a client may keep them as long as it likes.
    headers['cache-control'] = 'public, immutable';
    headers.expires = new Date(Date.now() + 365 * 24 * 3600 * 1000).toUTCString();
  }
  sendJson(req, res, doc.body, { etag: doc.hash, headers });
}

function acceptsJson(accept: string | undefined): boolean {
  return parseAccept(accept).some((r) => (r.type === '*' || r.type === 'application') && (r.subtype === '*' || r.subtype === 'json'));
}

// --- The documents ----------------------------------------------------------------------------------

/** One group-version's OpenAPI 3.0 document. */
export function documentFor(gv: GroupVersion): Schema {
  const paths: Record<string, Schema> = {};
  for (const r of gv.resources) Object.assign(paths, pathsOf(r));
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: versionInfo.gitVersion },
    paths,
    components: {
      schemas: componentsFor(gv.resources),
      securitySchemes: { BearerToken: { type: 'apiKey', description: 'Bearer Token authentication', name: 'authorization', in: 'header' } },
    },
    security: [{ BearerToken: [] }],
  };
}

function query(name: string, description: string, type = 'string'): Schema {
  return { name, in: 'query', description, schema: { type, uniqueItems: true } };
}
function pathParam(name: string, description: string): Schema {
  return { name, in: 'path', description, required: true, schema: { type: 'string', uniqueItems: true } };
}

const dryRun = query('dryRun', 'When present, indicates that modifications should not be persisted. The only valid value is All.');
const fieldManager = query('fieldManager', 'A name associated with the actor or entity that is making these changes.');
// What kubectl's query-parameter verifier looks for; the server honours Ignore, Warn and Strict.
const fieldValidation = query(
  'fieldValidation',
  'How the server handles objects in the request (POST/PUT/PATCH) with unknown or duplicate fields: Ignore drops them, Warn drops them with a warning, Strict fails the request with a BadRequest error naming them.',
);
const force = query('force', 'Force is going to "force" Apply requests: the fields of other managers are taken over.', 'boolean');
const listParams = [
  query('labelSelector', 'A selector to restrict the list of returned objects by their labels.'),
  query('fieldSelector', 'A selector to restrict the list of returned objects by their fields.'),
  query('limit', 'The maximum number of objects to return.', 'integer'),
  query('continue', 'The continue token from a previous list.'),
  query('resourceVersion', 'Which version of the collection to list or watch from.'),
  query('watch', 'Watch for changes to the described resources and return them as a stream of events.', 'boolean'),
  query('timeoutSeconds', 'Timeout for the list/watch call.', 'integer'),
];
const deleteParams = [dryRun, query('gracePeriodSeconds', 'The duration in seconds before the object should be deleted.', 'integer'), query('propagationPolicy', 'Whether and how garbage collection will be performed: Orphan, Background or Foreground.')];
const namespaceParam = pathParam('namespace', 'object name and auth scope, such as for teams and projects');

/** `security.istio.io` + `v1` → `SecurityIstioIoV1`, as Kubernetes spells operation ids. */
function opIdPart(group: string, version: string): string {
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  return (group || 'core').split(/[.-]/).map(cap).join('') + cap(version);
}

function jsonContent(schema: Schema): Schema {
  return { 'application/json': { schema } };
}

interface OperationSpec {
  /** Kubernetes groups operations by group-version: `core_v1`, `apps_v1`. */
  tag: string;
  action: 'get' | 'list' | 'post' | 'put' | 'patch' | 'delete';
  opId: string;
  description: string;
  gvk: GroupVersionKind;
  parameters: Schema[];
  requestSchema?: Schema;
  patchTypes?: string[];
  response: Schema;
}

function operation(o: OperationSpec): Schema {
  const op: Schema = {
    tags: [o.tag],
    description: o.description,
    operationId: o.opId,
    parameters: o.parameters,
    responses: {
      '200': { description: 'OK', content: jsonContent(o.response) },
      ...(o.action === 'post' ? { '201': { description: 'Created', content: jsonContent(o.response) } } : {}),
      '401': { description: 'Unauthorized' },
    },
    'x-kubernetes-action': o.action,
    // One object here, where components carry a list: the verifier and explain read it this way.
    'x-kubernetes-group-version-kind': { group: o.gvk.group, kind: o.gvk.kind, version: o.gvk.version },
  };
  if (o.requestSchema) op.requestBody = { content: jsonContent(o.requestSchema), required: true };
  if (o.patchTypes) op.requestBody = { content: Object.fromEntries(o.patchTypes.map((t) => [t, { schema: { type: 'object' } }])), required: true };
  return op;
}

/** The paths of one resource: its collection (per namespace and across them), each object, and its subresources. */
function pathsOf(r: ApiResource): Record<string, Schema> {
  const prefix = `/${apiPath(r)}`;
  const gvk = { group: r.group, version: r.version, kind: r.kind };
  const part = opIdPart(r.group, r.version);
  const tag = `${(r.group || 'core').replace(/\.(.)/g, (_m, c: string) => c.toUpperCase())}_${r.version}`;
  const scoped = r.namespaced ? 'Namespaced' : '';
  const item = ref(componentName(gvk));
  const list = ref(componentName({ ...gvk, kind: `${r.kind}List` }));
  const can = (verb: string) => r.verbs.includes(verb);
  // Strategic merge patch is for Kubernetes' own kinds (those with patch tags), as the real server allows it.
  const patchTypes = ['application/json-patch+json', 'application/merge-patch+json', ...(builtInSchema(r.apiVersion, r.kind) ? ['application/strategic-merge-patch+json'] : []), 'application/apply-patch+yaml'];

  const collection = r.namespaced ? `${prefix}/namespaces/{namespace}/${r.plural}` : `${prefix}/${r.plural}`;
  const object = `${collection}/{name}`;
  const scopeParams = r.namespaced ? [namespaceParam] : [];
  const nameParam = pathParam('name', `name of the ${r.kind}`);
  const paths: Record<string, Schema> = {};

  const collectionItem: Schema = { parameters: scopeParams };
  if (can('list')) collectionItem.get = operation({ tag, action: 'list', opId: `list${part}${scoped}${r.kind}`, description: `list or watch objects of kind ${r.kind}`, gvk, parameters: listParams, response: list });
  if (can('create')) collectionItem.post = operation({ tag, action: 'post', opId: `create${part}${scoped}${r.kind}`, description: `create a ${r.kind}`, gvk, parameters: [dryRun, fieldManager, fieldValidation], requestSchema: item, response: item });
  paths[collection] = collectionItem;

  const objectItem: Schema = { parameters: [nameParam, ...scopeParams] };
  if (can('get')) objectItem.get = operation({ tag, action: 'get', opId: `read${part}${scoped}${r.kind}`, description: `read the specified ${r.kind}`, gvk, parameters: [], response: item });
  if (can('update')) objectItem.put = operation({ tag, action: 'put', opId: `replace${part}${scoped}${r.kind}`, description: `replace the specified ${r.kind}`, gvk, parameters: [dryRun, fieldManager, fieldValidation], requestSchema: item, response: item });
  if (can('patch')) objectItem.patch = operation({ tag, action: 'patch', opId: `patch${part}${scoped}${r.kind}`, description: `partially update the specified ${r.kind}`, gvk, parameters: [dryRun, fieldManager, fieldValidation, force], patchTypes, response: item });
  if (can('delete')) objectItem.delete = operation({ tag, action: 'delete', opId: `delete${part}${scoped}${r.kind}`, description: `delete a ${r.kind}`, gvk, parameters: deleteParams, response: ref(statusName) });
  paths[object] = objectItem;

  if (r.namespaced && can('list')) {
    paths[`${prefix}/${r.plural}`] = {
      get: operation({ tag, action: 'list', opId: `list${part}${r.kind}ForAllNamespaces`, description: `list or watch objects of kind ${r.kind} in every namespace`, gvk, parameters: listParams, response: list }),
    };
  }

  for (const s of r.subresources) {
    const sub = s.name.charAt(0).toUpperCase() + s.name.slice(1);
    const body = ref(componentName(s.responseKind));
    const subItem: Schema = { parameters: [nameParam, ...scopeParams] };
    const base = { gvk: s.responseKind, response: body };
    if (s.verbs.includes('create')) subItem.post = operation({ ...base, tag, action: 'post', opId: `create${part}${scoped}${r.kind}${sub}`, description: `create ${s.name} of a ${r.kind}`, parameters: [dryRun, fieldManager, fieldValidation], requestSchema: body });
    if (s.verbs.includes('get')) subItem.get = operation({ ...base, tag, action: 'get', opId: `read${part}${scoped}${r.kind}${sub}`, description: `read ${s.name} of the specified ${r.kind}`, parameters: [] });
    if (s.verbs.includes('update')) subItem.put = operation({ ...base, tag, action: 'put', opId: `replace${part}${scoped}${r.kind}${sub}`, description: `replace ${s.name} of the specified ${r.kind}`, parameters: [dryRun, fieldManager, fieldValidation], requestSchema: body });
    if (s.verbs.includes('patch')) subItem.patch = operation({ ...base, tag, action: 'patch', opId: `patch${part}${scoped}${r.kind}${sub}`, description: `partially update ${s.name} of the specified ${r.kind}`, parameters: [dryRun, fieldManager, fieldValidation, force], patchTypes });
    paths[`${object}/${s.name}`] = subItem;
  }
  return paths;
}
