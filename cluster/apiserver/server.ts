// The local cluster's Kubernetes API: the REST verbs (get, list, watch, create, update, patch,
// delete with propagationPolicy, and the pods/status and deployments/scale subresources) over the
// controller's store, for the built-in kinds and those of established CustomResourceDefinitions, so that kubectl and client-go work against it; the garbage collector runs beside it. Authentication is one bearer token; discovery and
// OpenAPI are discovery.ts's, patch strategies patch.ts's, admission apply.ts's. The HTTPS server
// and kubeconfig around this handler are the caller's.

import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApplyContext } from '../../controller/resources/apply.js';
import { GarbageCollector, type PropagationPolicy, propagationPolicies } from '../../controller/resources/garbage-collector.js';
import type { Store } from '../../controller/store/store.js';
import type { Logger } from '../../shared/log.js';
import type { Deployment, Pod, Resource } from '../../shared/resources/types.js';
import { handleDiscovery } from './discovery.js';
import { EventExpiry, type EventTtlOptions } from './event-ttl.js';
import { requestToken, reviewToken } from './token-api.js';
import { type AdmissionAttributes, ValidatingWebhooks } from './webhooks.js';
import { type Authentication, ServiceAccountTokens, type TokenOptions, type UserInfo } from './tokens.js';
import { ApiError, badRequest, internal, invalid, methodNotAllowed, noSuchResource, notFound, unauthorized, unsupportedMediaType } from './errors.js';
import { mediaType, negotiate, parseJson, parseObjectBody, parseYamlBody, readBody, type Rendering, sendError, sendJson } from './http.js';
import { applyPatch, patchTypes, type PatchType, serverSideApply } from './patch.js';
import { objectFromBody, present, Writer, type WriteResult } from './admission.js';
import { type ApiResource, parseRoute, type Route } from './routes.js';
import { ServedResources } from './resources.js';
import { mergeSchemaOf } from './crd-schema.js';
import type { ChangeEvent } from '../../controller/store/store.js';
import { checkedReplicas, patchedReplicas, scaleOf } from './scale.js';
import { fieldSelector, labelSelector, type Selector } from './selectors.js';
import { type IncludeObject, type TableContext, toTable } from './tables.js';
import { ChangeHistory, type HistoryLimits, serveWatch } from './watch.js';

export { nodeObjects } from './nodes.js';

export interface KubeApiOptions {
  store: Store;
  /** Every write goes through applyResources/deleteResources with this context. */
  apply: ApplyContext;
  /** The local cluster's Node objects (read-only). */
  nodes: () => Resource[];
  /** The admin bearer token; it and ServiceAccount tokens are accepted, any other credential (or none) is 401. */
  token: string;
  /** How ServiceAccount tokens are signed and checked: the key's file, the issuer and the API's audiences. */
  serviceAccounts: TokenOptions;
  log: Logger;
  /** Events' expiry (Kubernetes' --event-ttl, 1 h) and how often it is swept. */
  events?: EventTtlOptions;
  /** Watch tuning, for tests: BOOKMARK interval (default 60 s) and how much history a watch can resume from. */
  watch?: { bookmarkIntervalMs?: number; history?: HistoryLimits };
}

export interface KubeApiHandler {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Ends every open watch and stops following the store. */
  close(): void;
}

/** Admission's and webhooks' warnings reach the user the way kubectl prints them: "Warning: ...", one header each. */
function addWarnings(res: ServerResponse, warnings: string[]): void {
  if (!warnings.length) return;
  const before = res.getHeader('Warning');
  const had = before === undefined ? [] : Array.isArray(before) ? before : [String(before)];
  res.setHeader('Warning', [...had, ...warnings.map((w) => `299 - ${JSON.stringify(w)}`)]);
}

/** The kubeconfig's user, as a static token file would name it: a member of system:masters. */
const adminUser: UserInfo = { username: 'ambit-admin', uid: 'ambit-admin', groups: ['system:masters', 'system:authenticated'] };

/** Kinds whose real API has a status subresource; GET of it returns the whole object, as there. */
const statusKinds = new Set(['Pod', 'Deployment', 'Service', 'Namespace', 'Node']);

/** The real server ends a watch after minRequestTimeout (30 min) times a random factor in [1, 2), so clients do not reconnect in step. */
const defaultWatchTimeoutMs = () => 30 * 60_000 * (1 + Math.random());

interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: string;
  /** Deprecated before propagationPolicy; true means Orphan. */
  orphanDependents?: boolean;
}

/**
 * The deletion's propagationPolicy, from the DeleteOptions body or, as the REST API also allows, the
 * query; Background when neither says (apps/v1's default). Foreground is done as Background: owner
 * and dependents go in one commit, so nothing is left to wait for (see garbage-collector.ts).
 */
function propagationOf(r: ApiResource, name: string, options: DeleteOptions, url: URL): PropagationPolicy {
  const policy = options.propagationPolicy ?? url.searchParams.get('propagationPolicy') ?? undefined;
  const orphan = options.orphanDependents ?? (url.searchParams.has('orphanDependents') ? url.searchParams.get('orphanDependents') === 'true' : undefined);
  if (policy !== undefined && orphan !== undefined) throw invalid(r.kind, r.group, name, [{ reason: 'FieldValueForbidden', field: 'orphanDependents', message: 'Forbidden: orphanDependents and deletionPropagation cannot be both set' }]);
  if (orphan !== undefined) return orphan ? 'Orphan' : 'Background';
  if (policy === undefined) return 'Background';
  if (!(propagationPolicies as readonly string[]).includes(policy)) {
    throw invalid(r.kind, r.group, name, [{ reason: 'FieldValueNotSupported', field: 'propagationPolicy', message: `Unsupported value: ${JSON.stringify(policy)}: supported values: "Foreground", "Background", "Orphan"` }]);
  }
  return policy as PropagationPolicy;
}

export function kubeApiHandler(o: KubeApiOptions): KubeApiHandler {
  const log = o.log.child({ component: 'kube-api' });
  const history = new ChangeHistory(o.store, o.watch?.history);
  const writer = new Writer(o.apply);
  // What a deletion did not take with it: dependents written naming an owner already gone.
  const collector = new GarbageCollector(o.store);
  collector.start();
  const eventExpiry = new EventExpiry(o.store, log, o.events);
  eventExpiry.start();
  const watches = new Set<() => void>();
  const token = Buffer.from(o.token);
  const tokens = new ServiceAccountTokens(o.serviceAccounts);
  const webhooks = new ValidatingWebhooks(o.store, log);
  const bookmarkIntervalMs = o.watch?.bookmarkIntervalMs ?? 60_000;
  const lookup = (kind: string, namespace: string, name: string) => (kind === 'Node' ? o.nodes().find((n) => n.metadata.name === name) : o.store.get(kind, namespace, name));
  // What is served follows the CustomResourceDefinitions in the store: a write of one (through this
  // API or not) changes discovery, OpenAPI and routes before the next request is read.
  const served = new ServedResources(() => o.store.list('CustomResourceDefinition'));
  const onChange = (e: ChangeEvent) => {
    if (e.changes.some((c) => c.resource.kind === 'CustomResourceDefinition')) served.refresh();
  };
  o.store.on('change', onChange);

  /** Who a bearer token is: the admin (the kubeconfig's token), or a ServiceAccount by its signed token. */
  async function authenticate(bearer: string, audiences: string[]): Promise<Authentication> {
    const given = Buffer.from(bearer);
    if (given.length === token.length && timingSafeEqual(given, token)) return { ok: true, user: adminUser, audiences: audiences.length ? audiences : tokens.apiAudiences };
    return tokens.authenticate(bearer, audiences, lookup);
  }

  async function userOf(req: IncomingMessage): Promise<UserInfo> {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) throw unauthorized();
    const result = await authenticate(m[1]!, []);
    if (!result.ok) throw unauthorized();
    return result.user;
  }

  const pods = (namespace?: string) => o.store.list('Pod', namespace) as Pod[];

  function objectsOf(r: ApiResource, namespace: string | undefined): Resource[] {
    if (r.kind === 'Node') return o.nodes();
    const all = o.store.list(r.kind, r.namespaced ? namespace : undefined);
    return r.custom ? all.map((x) => present(r, x)) : all;
  }

  function getObject(r: ApiResource, namespace: string | undefined, name: string): Resource {
    const found = r.kind === 'Node' ? o.nodes().find((n) => n.metadata.name === name) : o.store.get(r.kind, r.namespaced ? (namespace ?? '') : '', name);
    if (!found) throw notFound(r, name);
    return present(r, found);
  }

  function tableContext(url: URL): TableContext {
    const include = url.searchParams.get('includeObject') ?? 'Metadata';
    if (!['None', 'Metadata', 'Object'].includes(include)) throw badRequest(`includeObject must be None, Metadata or Object, not ${include}`);
    return { includeObject: include as IncludeObject, podsIn: (ns) => pods(ns), now: Date.now() };
  }

  /** One object, as itself or as a one-row Table. */
  function render(r: ApiResource, obj: Resource, rendering: Rendering, url: URL): unknown {
    return rendering === 'table' ? toTable(r, [obj], obj.metadata.resourceVersion ?? '', tableContext(url)) : obj;
  }

  function selectorOf(r: ApiResource, url: URL): Selector {
    const labels = labelSelector(url.searchParams.get('labelSelector'));
    const fields = fieldSelector(r.kind, url.searchParams.get('fieldSelector'));
    return (x) => labels(x) && fields(x);
  }

  function list(req: IncomingMessage, res: ServerResponse, route: Route, url: URL): void {
    const r = route.resource;
    const rendering = negotiate(req.headers.accept);
    const matches = selectorOf(r, url);
    const watch = url.searchParams.get('watch');
    if (watch === '1' || watch === 'true') {
      const timeout = url.searchParams.get('timeoutSeconds');
      const ctx = rendering === 'table' ? tableContext(url) : undefined;
      const stop = serveWatch(
        res,
        history,
        {
          resource: r,
          ...(route.namespace ? { namespace: route.namespace } : {}),
          matches,
          resourceVersion: url.searchParams.get('resourceVersion'),
          bookmarks: ['1', 'true'].includes(url.searchParams.get('allowWatchBookmarks') ?? ''),
          timeoutMs: timeout && /^\d+$/.test(timeout) ? Number(timeout) * 1000 : defaultWatchTimeoutMs(),
          current: () => objectsOf(r, route.namespace),
          inStore: r.kind !== 'Node',
          render: (obj) => (ctx ? toTable(r, [obj], obj.metadata.resourceVersion ?? '', { ...ctx, now: Date.now() }) : present(r, obj)),
          // A BOOKMARK carries only a resourceVersion, in the type of the watch's objects.
          bookmark: (rv) => (ctx ? { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: rv }, columnDefinitions: [], rows: [] } : { kind: r.kind, apiVersion: r.apiVersion, metadata: { resourceVersion: rv } }),
        },
        { bookmarkIntervalMs },
      );
      watches.add(stop);
      res.on('close', () => watches.delete(stop));
      return;
    }
    // `limit` is not honoured: the local cluster's lists are small, so every list is one page and
    // carries no `continue` token, which clients read as "that was all". `resourceVersion` likewise:
    // every list is served from the latest state, which is what "not older than" allows.
    const revision = String(o.store.currentRevision);
    const items = objectsOf(r, route.namespace).filter(matches);
    if (rendering === 'table') sendJson(res, 200, toTable(r, items, revision, tableContext(url)));
    else sendJson(res, 200, { apiVersion: r.apiVersion, kind: `${r.kind}List`, metadata: { resourceVersion: revision }, items });
  }

  function dryRunOf(url: URL): boolean {
    const values = url.searchParams.getAll('dryRun');
    for (const v of values) if (v !== 'All') throw badRequest(`dryRun must be All, not ${JSON.stringify(v)}`);
    return values.length > 0;
  }

  /**
   * fieldValidation is read for its errors only: ambit's schemas close every object, and a custom
   * resource's schema is closed wherever it does not preserve unknown fields, so an unknown field is
   * refused (422, naming it) whether the client asked Strict, Warn or Ignore.
   */
  function checkFieldValidation(url: URL): void {
    const v = url.searchParams.get('fieldValidation');
    if (v !== null && !['Strict', 'Warn', 'Ignore'].includes(v)) throw badRequest(`fieldValidation must be Strict, Warn or Ignore, not ${JSON.stringify(v)}`);
  }

  function sendWrite(res: ServerResponse, code: number, result: WriteResult): void {
    addWarnings(res, result.warnings);
    sendJson(res, code, result.object);
  }

  function readOnly(verb: string, r: ApiResource): void {
    if (r.kind === 'Node') throw methodNotAllowed(verb, r, "nodes are the local cluster's network namespaces; change the cluster file and run ambit up again");
    if (!r.verbs.includes(verb)) throw methodNotAllowed(verb, r, `${r.kind} is written by ambit and read-only for clients`);
  }

  /**
   * A patch is applied to the current object, so unless it set a resourceVersion of its own it is
   * an update of that version (what makes a patch of a Lease, whose updates must name one, valid).
   */
  function patched(next: Resource, current: Resource): Resource {
    next.metadata.resourceVersion ??= current.metadata.resourceVersion!;
    return next;
  }

  /** The write `commit` makes, once every matching validating webhook allowed it (webhooks.ts). */
  async function admitted<T>(res: ServerResponse, w: Omit<AdmissionAttributes, 'object' | 'name'> & { name: string | undefined }, object: Resource | undefined, rehearse: () => unknown, commit: () => T): Promise<T> {
    const hooks = webhooks.matching({ operation: w.operation, resource: w.resource, namespace: w.namespace, labels: [object, w.oldObject].flatMap((x) => (x ? [x.metadata.labels ?? {}] : [])) });
    if (!hooks.length) return commit();
    // What the schema and the store refuse is refused before any webhook is asked, as in Kubernetes
    // (validation precedes validating admission); the rehearsal also settles a generated name.
    rehearse();
    await webhooks.review(hooks, { ...w, name: object?.metadata.name ?? w.name ?? '', object }, (warnings) => addWarnings(res, warnings));
    // The store may have moved while the webhooks thought: the commit checks resourceVersion again.
    return commit();
  }

  async function write(req: IncomingMessage, res: ServerResponse, route: Route, url: URL, user: UserInfo): Promise<void> {
    const r = route.resource;
    const dryRun = dryRunOf(url);
    checkFieldValidation(url);
    const namespace = route.namespace;
    const manager = url.searchParams.get('fieldManager');
    const options = (kind: string, extra: Record<string, unknown> = {}) => ({ kind, apiVersion: 'meta.k8s.io/v1', ...(dryRun ? { dryRun: ['All'] } : {}), ...(manager ? { fieldManager: manager } : {}), ...extra });
    const base = { resource: r, namespace, dryRun, user };
    if (req.method === 'POST') {
      readOnly('create', r);
      if (r.namespaced && !namespace) throw methodNotAllowed('create', r, 'create it under /namespaces/{namespace}/');
      const obj = objectFromBody(r, namespace, undefined, parseObjectBody(req.headers['content-type'], await readBody(req)));
      const w = { ...base, operation: 'CREATE' as const, name: undefined, oldObject: undefined, options: options('CreateOptions') };
      sendWrite(res, 201, await admitted(res, w, obj, () => writer.create(r, obj, true), () => writer.create(r, obj, dryRun)));
      return;
    }
    const name = route.name!;
    const stored = o.store.get(r.kind, r.namespaced ? (namespace ?? '') : '', name);
    // A custom resource is read and patched in the request's version (the same fields: conversion None).
    const current = stored && present(r, stored);
    if (req.method === 'PUT') {
      readOnly('update', r);
      const obj = objectFromBody(r, namespace, name, parseObjectBody(req.headers['content-type'], await readBody(req)));
      const w = { ...base, operation: current ? ('UPDATE' as const) : ('CREATE' as const), name, oldObject: current, options: options(current ? 'UpdateOptions' : 'CreateOptions') };
      const result = await admitted(res, w, obj, () => writer.update(r, structuredClone(obj), true), () => writer.update(r, obj, dryRun));
      sendWrite(res, result.created ? 201 : 200, result);
      return;
    }
    if (req.method === 'PATCH') {
      readOnly('patch', r);
      const type = mediaType(req.headers['content-type']);
      if (!(patchTypes as readonly string[]).includes(type)) throw unsupportedMediaType(type, patchTypes);
      const body = await readBody(req);
      const force = ['1', 'true'].includes(url.searchParams.get('force') ?? '');
      const patchOptions = options('PatchOptions', type === 'application/apply-patch+yaml' ? { force } : {});
      if (type === 'application/apply-patch+yaml') {
        if (!manager) throw badRequest('PATCH, application/apply-patch+yaml requires fieldManager parameter');
        const applied = objectFromBody(r, namespace, name, parseYamlBody(body));
        const next = serverSideApply(current, applied, manager, force, r.custom ? mergeSchemaOf(r.custom.schema) : undefined);
        if (current) {
          const obj = patched(objectFromBody(r, namespace, name, next), current);
          sendWrite(res, 200, await admitted(res, { ...base, operation: 'UPDATE', name, oldObject: current, options: patchOptions }, obj, () => writer.update(r, structuredClone(obj), true), () => writer.update(r, obj, dryRun)));
        } else {
          const obj = objectFromBody(r, namespace, name, next);
          sendWrite(res, 201, await admitted(res, { ...base, operation: 'CREATE', name, oldObject: undefined, options: patchOptions }, obj, () => writer.create(r, structuredClone(obj), true), () => writer.create(r, obj, dryRun)));
        }
        return;
      }
      if (!current) throw notFound(r, name);
      const obj = patched(objectFromBody(r, namespace, name, applyPatch(current, body.toString('utf8'), type as PatchType)), current);
      sendWrite(res, 200, await admitted(res, { ...base, operation: 'UPDATE', name, oldObject: current, options: patchOptions }, obj, () => writer.update(r, structuredClone(obj), true), () => writer.update(r, obj, dryRun)));
      return;
    }
    if (req.method === 'DELETE') {
      readOnly('delete', r);
      const body = await readBody(req);
      const deleteOptions = (body.length ? parseJson(body) : {}) as DeleteOptions;
      const propagation = propagationOf(r, name, deleteOptions, url);
      const remove = (dry: boolean) => writer.delete(r, namespace ?? '', name, deleteOptions.preconditions ?? {}, dry, propagation);
      const w = { ...base, operation: 'DELETE' as const, name, oldObject: current, options: options('DeleteOptions', { propagationPolicy: propagation }) };
      const deleted = await admitted(res, w, undefined, () => remove(true), () => remove(dryRun));
      sendJson(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: r.group, kind: r.plural, uid: deleted.metadata.uid } });
      return;
    }
    throw methodNotAllowed(req.method ?? 'unknown', r);
  }

  /** GET, PUT, or a merge or JSON patch of an object's status; only the status changes. */
  async function status(req: IncomingMessage, res: ServerResponse, route: Route, url: URL): Promise<void> {
    const r = route.resource;
    const namespace = r.namespaced ? (route.namespace ?? '') : '';
    const current = getObject(r, route.namespace, route.name!);
    if (req.method === 'GET') return sendJson(res, 200, render(r, current, negotiate(req.headers.accept), url));
    const dryRun = dryRunOf(url);
    if (req.method === 'PUT') {
      const obj = objectFromBody(r, route.namespace, route.name!, parseObjectBody(req.headers['content-type'], await readBody(req)));
      return sendWrite(res, 200, writer.updateStatus(r, namespace, route.name!, obj.status, obj.metadata.resourceVersion, dryRun));
    }
    if (req.method === 'PATCH') {
      const type = mediaType(req.headers['content-type']);
      const accepted = ['application/merge-patch+json', 'application/json-patch+json'];
      if (!accepted.includes(type)) throw unsupportedMediaType(type, accepted);
      const next = applyPatch(current, (await readBody(req)).toString('utf8'), type as PatchType);
      return sendWrite(res, 200, writer.updateStatus(r, namespace, route.name!, next.status, next.metadata.resourceVersion === current.metadata.resourceVersion ? undefined : next.metadata.resourceVersion, dryRun));
    }
    throw methodNotAllowed(req.method ?? 'unknown', { plural: `${r.plural}/status`, group: r.group });
  }

  async function scale(req: IncomingMessage, res: ServerResponse, route: Route, url: URL): Promise<void> {
    const r = route.resource;
    const current = getObject(r, route.namespace, route.name!) as Deployment;
    const now = scaleOf(current, pods(route.namespace));
    if (req.method === 'GET') return sendJson(res, 200, now);
    if (req.method !== 'PUT' && req.method !== 'PATCH') throw methodNotAllowed(req.method ?? 'unknown', { plural: 'deployments/scale', group: 'apps' });
    const dryRun = dryRunOf(url);
    let replicas: number;
    let resourceVersion: string | undefined;
    if (req.method === 'PUT') {
      const body = parseObjectBody(req.headers['content-type'], await readBody(req)) as { spec?: { replicas?: unknown }; metadata?: { resourceVersion?: string; name?: string } };
      if (body?.metadata?.name && body.metadata.name !== route.name) throw badRequest(`the name of the object (${body.metadata.name}) does not match the name on the URL (${route.name})`);
      replicas = checkedReplicas(now, body?.spec?.replicas);
      resourceVersion = body?.metadata?.resourceVersion;
    } else {
      ({ replicas, resourceVersion } = patchedReplicas(now, req.headers['content-type'], await readBody(req)));
    }
    const next = structuredClone(current);
    next.spec!.replicas = replicas;
    // The Scale's resourceVersion is its Deployment's: a stale one is the same 409.
    next.metadata.resourceVersion = resourceVersion ?? current.metadata.resourceVersion!;
    const result = writer.update(r, next, dryRun);
    sendJson(res, 200, scaleOf(result.object as Deployment, pods(route.namespace)));
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Any authenticated identity may do anything: the local cluster has no RBAC (README).
    const user = await userOf(req);
    if (handleDiscovery(req, res, served)) return;
    const url = new URL(req.url ?? '/', 'https://kube-api.invalid');
    const route = parseRoute(url.pathname, served);
    if (!route) throw noSuchResource();
    const r = route.resource;
    if (r.kind === 'TokenReview') {
      if (req.method !== 'POST' || route.name !== undefined) throw methodNotAllowed(req.method ?? 'unknown', r, 'a TokenReview is only created');
      return sendJson(res, 201, await reviewToken(req, authenticate));
    }
    if (route.subresource !== undefined) {
      if (route.subresource === 'token' && r.kind === 'ServiceAccount') {
        if (req.method !== 'POST') throw methodNotAllowed(req.method ?? 'unknown', { plural: 'serviceaccounts/token', group: '' }, 'a token is only created');
        return sendJson(res, 201, await requestToken(req, route.namespace!, route.name!, tokens, lookup));
      }
      if (route.subresource === 'scale' && r.kind === 'Deployment') return scale(req, res, route, url);
      if (route.subresource === 'status' && statusKinds.has(r.kind)) {
        // Status is written by the cluster (the runtime), never through the API.
        if (req.method !== 'GET') throw methodNotAllowed(req.method ?? 'unknown', { plural: `${r.plural}/status`, group: r.group }, 'status is written by the local cluster');
        return sendJson(res, 200, render(r, getObject(r, route.namespace, route.name!), negotiate(req.headers.accept), url));
      }
      // A CRD with the status subresource: its controllers write status through it, as clients.
      if (route.subresource === 'status' && r.custom?.status) return status(req, res, route, url);
      throw noSuchResource();
    }
    if (route.name === undefined) {
      if (req.method === 'GET') return list(req, res, route, url);
      // DELETE of a whole collection (deletecollection) is not served: kubectl deletes one by one.
      if (req.method === 'POST') return write(req, res, route, url, user);
      throw methodNotAllowed(req.method === 'DELETE' ? 'deletecollection' : (req.method ?? 'unknown'), r);
    }
    if (req.method === 'GET') return sendJson(res, 200, render(r, getObject(r, route.namespace, route.name), negotiate(req.headers.accept), url));
    if (req.method === 'PUT' || req.method === 'PATCH' || req.method === 'DELETE') return write(req, res, route, url, user);
    throw methodNotAllowed(req.method ?? 'unknown', r);
  }

  return {
    handle(req, res) {
      serve(req, res).then(
        () => log.debug({ method: req.method, url: req.url, code: res.statusCode }, 'request'),
        (err: unknown) => {
          const e = err instanceof ApiError ? err : internal(err instanceof Error ? err.message : String(err));
          if (!(err instanceof ApiError)) log.error({ err, method: req.method, url: req.url }, 'request failed');
          else log.debug({ method: req.method, url: req.url, code: e.code, reason: e.reason }, 'request refused');
          // A body left unread would stall the connection for the next request on it.
          req.resume();
          sendError(res, e);
        },
      );
    },
    close() {
      o.store.off('change', onChange);
      collector.stop();
      eventExpiry.stop();
      for (const stop of [...watches]) stop();
      history.close();
    },
  };
}
