// Writes of the API server: create, update and delete of one object, each through the controller's
// admission (controller/resources/apply.ts: validation, defaults, ClusterIP allocation, policy
// status) and one store commit. This file adds what the REST API promises on top: the object's
// namespace and name agree with the path, AlreadyExists, optimistic concurrency on resourceVersion,
// metadata.generation, and the store's problems as a 422 Status naming each field. Custom resources
// (served by a CRD) are checked against their CRD version's schema and stored as they are; a
// CustomResourceDefinition is checked as Kubernetes checks one and gets its status here.

import { randomBytes } from 'node:crypto';
import { applyResources, type ApplyContext, deleteResources } from '../../controller/resources/apply.js';
import type { PropagationPolicy } from '../../controller/resources/garbage-collector.js';
import { NotFound, ResourceInvalid, type FieldProblem } from '../../shared/errors.js';
import { kindInfo } from '../../shared/resources/kinds.js';
import { type Resource } from '../../shared/resources/types.js';
import { validateReferences, validateResources } from '../../shared/resources/validate.js';
import { type Crd, crdProblems, crdStatus, defaultCrd } from './crd-validation.js';
import { checkCompiles } from './crd-schema.js';
import { applyDefaults } from './crd-defaults.js';
import { compileSchemaRules } from './crd-rules.js';
import { alreadyExists, badRequest, conflict, invalid, notFound, type StatusCause } from './errors.js';
import { apiResources, builtInGroups } from './resources.js';
import type { ApiResource } from './routes.js';

const crdKind = 'CustomResourceDefinition';

/** An object of a custom resource as a client of `resource`'s version sees it: the same fields under that version (conversion None). */
export function present(resource: ApiResource, obj: Resource): Resource {
  return resource.custom && obj.apiVersion !== resource.apiVersion ? { ...obj, apiVersion: resource.apiVersion } : obj;
}

export interface WriteResult {
  object: Resource;
  /** Admission's warnings (what the node proxies cannot enforce of a policy), sent as Warning headers. */
  warnings: string[];
}

/**
 * The request body as an object of `resource` at the path's namespace and name. apiVersion and
 * kind default to the path's, as the real server decodes with the path's type; a body that names
 * another type, namespace or name is a 400.
 */
export function objectFromBody(resource: ApiResource, namespace: string | undefined, name: string | undefined, body: unknown): Resource {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest(`the body must be a ${resource.kind} object`);
  const obj = structuredClone(body) as Resource;
  obj.apiVersion ??= resource.apiVersion;
  obj.kind ??= resource.kind;
  if (obj.apiVersion !== resource.apiVersion || obj.kind !== resource.kind) {
    throw badRequest(`the object is ${obj.apiVersion}/${obj.kind}, but the path is for ${resource.apiVersion}/${resource.kind}`);
  }
  if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = {} as Resource['metadata'];
  if (resource.namespaced) {
    if (obj.metadata.namespace && namespace && obj.metadata.namespace !== namespace) throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
    if (namespace) obj.metadata.namespace = namespace;
  } else {
    // A cluster-scoped object has no namespace; the real server clears one sent by mistake.
    delete obj.metadata.namespace;
  }
  if (name !== undefined) {
    if (obj.metadata.name && obj.metadata.name !== name) throw badRequest(`the name of the object (${obj.metadata.name}) does not match the name on the URL (${name})`);
    obj.metadata.name = name;
  }
  // A custom resource is defaulted as it is decoded, as in Kubernetes: webhooks see the defaults too.
  if (resource.custom) applyDefaults(resource.custom.schema, obj);
  return obj;
}

/** Kinds whose registry lets a PUT create the object (AllowCreateOnUpdate), as Kubernetes' do. */
const createOnUpdate = new Set(['Lease', 'Event']);
/** Kinds whose registry refuses an update without a resourceVersion (AllowUnconditionalUpdate false). */
const unconditionalUpdate = (kind: string) => kind !== 'Lease';

const meta = (r: Resource) => r.metadata as Resource['metadata'] & { generation?: number; generateName?: string };

/** Everything but metadata and status: what a change of bumps metadata.generation. */
function specOf(r: Resource): string {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = r;
  return stableJson(rest);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

export class Writer {
  constructor(private readonly ctx: ApplyContext) {}

  private stored(resource: ApiResource, namespace: string, name: string): Resource | undefined {
    return this.ctx.store.get(resource.kind, resource.namespaced ? namespace : '', name);
  }

  create(resource: ApiResource, obj: Resource, dryRun: boolean): WriteResult {
    const m = meta(obj);
    // generateName: the server picks the rest of the name, as for `kubectl create` of a Job.
    if (!m.name && typeof m.generateName === 'string') m.name = `${m.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`;
    delete m.generateName;
    if (typeof m.name !== 'string' || !m.name) throw invalid(resource.kind, resource.group, '', [{ reason: 'FieldValueRequired', message: 'name or generateName is required', field: 'metadata.name' }]);
    if (this.stored(resource, m.namespace ?? 'default', m.name)) throw alreadyExists(resource, m.name);
    m.generation = 1;
    return this.admit(resource, obj, dryRun);
  }

  /**
   * Replaces the stored object; 404 when there is none (a Lease or Event is created instead, as
   * their registries allow), 409 when `obj` carries a stale resourceVersion, 422 when a Lease's
   * carries none: a leader elector that overwrote blindly could take a held lease.
   */
  update(resource: ApiResource, obj: Resource, dryRun: boolean): WriteResult & { created?: boolean } {
    const m = meta(obj);
    const current = this.stored(resource, m.namespace ?? 'default', m.name);
    if (!current) {
      if (!createOnUpdate.has(resource.kind)) throw notFound(resource, m.name);
      delete m.resourceVersion;
      return { ...this.create(resource, obj, dryRun), created: true };
    }
    if (!m.resourceVersion && !unconditionalUpdate(resource.kind)) {
      throw invalid(resource.plural, resource.group, m.name, [{ reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' }]);
    }
    if (m.resourceVersion && m.resourceVersion !== current.metadata.resourceVersion) throw conflict(resource, m.name);
    // A Pod is the cluster's to make, but its labels and annotations are anyone's to change, as in
    // Kubernetes (a CNI node agent's mark, `kubectl label pod`); anything else is refused below.
    if (resource.kind === 'Pod') {
      const rest = (r: Resource) => JSON.stringify({ ...r, metadata: { ...r.metadata, labels: undefined, annotations: undefined, resourceVersion: undefined, managedFields: undefined, generation: undefined } });
      if (rest(obj) === rest(current)) {
        const next: Resource = { ...current, metadata: { ...current.metadata, labels: obj.metadata.labels, annotations: obj.metadata.annotations } };
        if (!next.metadata.labels) delete next.metadata.labels;
        if (!next.metadata.annotations) delete next.metadata.annotations;
        if (dryRun || JSON.stringify(next.metadata) === JSON.stringify(current.metadata)) return { object: dryRun ? next : current, warnings: [] };
        this.ctx.store.commit([next]);
        return { object: this.stored(resource, m.namespace ?? 'default', m.name)!, warnings: [] };
      }
      throw invalid(resource.kind, resource.group, m.name, [{ reason: 'FieldValueForbidden', field: 'spec', message: 'Forbidden: pod updates may not change fields other than metadata.labels and metadata.annotations (the Deployment makes its pods; change it instead)' }]);
    }
    const generation = meta(current).generation ?? 1;
    m.generation = specOf(obj) === specOf(current) ? generation : generation + 1;
    return this.admit(resource, obj, dryRun);
  }

  /**
   * Replaces only the status (the status subresource): what else the body says is ignored, as the
   * real server does; 409 when it carries a stale resourceVersion. Status is not validated: it is
   * the controllers' report, not the user's intent.
   */
  updateStatus(resource: ApiResource, namespace: string, name: string, status: unknown, resourceVersion: string | undefined, dryRun: boolean): WriteResult {
    const current = this.stored(resource, namespace, name);
    if (!current) throw notFound(resource, name);
    if (resourceVersion && resourceVersion !== current.metadata.resourceVersion) throw conflict(resource, name);
    const next: Resource = { ...current, status };
    if (status === undefined) delete next.status;
    // A custom resource's status is checked against its schema, as the real server does on /status;
    // the rest of the object is the stored one, unchanged, so what it breaks (an object stored before
    // its CRD's rules or defaults, as ambit apply stores it) does not block the status (Kubernetes'
    // validation ratcheting). It is checked with its CRD's defaults, as Kubernetes reads it.
    if (resource.custom) {
      const checked = structuredClone(present(resource, next));
      applyDefaults(resource.custom.schema, checked);
      const causes = resource.custom.validate(checked, present(resource, current)).filter((c) => /^status($|[.[])/.test(c.field ?? ''));
      if (causes.length) throw invalid(resource.kind, resource.group, name, causes);
    }
    if (dryRun || JSON.stringify(next.status) === JSON.stringify(current.status)) return { object: dryRun ? next : current, warnings: [] };
    this.ctx.store.commit([next]);
    return { object: present(resource, this.stored(resource, namespace, name)!), warnings: [] };
  }

  /** Deletes the stored object (a Namespace with everything in it) and, unless orphaned, its dependents; returns it as it was. */
  delete(resource: ApiResource, namespace: string, name: string, preconditions: { uid?: string; resourceVersion?: string }, dryRun: boolean, propagation: PropagationPolicy = 'Background'): Resource {
    const current = this.stored(resource, namespace, name);
    if (!current) throw notFound(resource, name);
    if (preconditions.uid && preconditions.uid !== current.metadata.uid) {
      throw conflict(resource, name, `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${current.metadata.uid}`);
    }
    if (preconditions.resourceVersion && preconditions.resourceVersion !== current.metadata.resourceVersion) {
      throw conflict(resource, name, `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ResourceVersion in meta: ${current.metadata.resourceVersion}`);
    }
    if (dryRun) return current;
    // A CustomResourceDefinition takes every object of its kind with it, as Kubernetes' finalizer does.
    const objects = resource.kind === crdKind ? this.ctx.store.list((current as Crd).spec.names.kind).map((o) => ({ kind: o.kind, namespace: o.metadata.namespace ?? '', name: o.metadata.name })) : [];
    try {
      deleteResources(this.ctx, [{ kind: resource.kind, namespace: resource.namespaced ? namespace : '', name }, ...objects], false, propagation);
    } catch (err) {
      // Someone else deleted it between our read and the commit: the same answer as if first.
      if (err instanceof NotFound) throw notFound(resource, name);
      throw err;
    }
    return current;
  }

  private admit(resource: ApiResource, obj: Resource, dryRun: boolean): WriteResult {
    if (resource.kind === crdKind) return this.admitDefinition(resource, obj as Crd, dryRun);
    if (resource.custom) return this.admitCustom(resource, obj, dryRun);
    let warnings: string[];
    try {
      // The mesh's review is the mesh controller's admission webhook's, as on a real cluster.
      warnings = applyResources(this.ctx, [obj], dryRun, { review: false }).results.flatMap((r) => r.warnings ?? []);
    } catch (err) {
      if (err instanceof ResourceInvalid) throw this.refused(resource, obj, err);
      throw err;
    }
    if (dryRun) return { object: obj, warnings };
    return { object: this.stored(resource, obj.metadata.namespace ?? 'default', obj.metadata.name)!, warnings };
  }

  /**
   * A custom resource: its CRD version's defaults, then its schema and CEL rules (422 naming each field), for the kinds ambit gives
   * meaning to also ambit's own checks of them (shared/resources/validate.ts: what ambit implements,
   * and rules a schema cannot say), its namespace's existence; then stored in the storage version.
   * With the status subresource, status is kept as it was (written only through /status).
   */
  private admitCustom(resource: ApiResource, obj: Resource, dryRun: boolean): WriteResult {
    const c = resource.custom!;
    const current = this.stored(resource, obj.metadata.namespace ?? '', obj.metadata.name);
    if (c.status) {
      if (current?.status !== undefined) obj.status = current.status;
      else delete obj.status;
    }
    const name = typeof obj.metadata?.name === 'string' ? obj.metadata.name : '';
    applyDefaults(c.schema, obj);
    const causes = c.validate(obj, current && present(resource, current));
    if (causes.length) throw invalid(resource.kind, resource.group, name, causes);
    const problems: FieldProblem[] = [];
    const info = kindInfo(obj.kind);
    if (info?.crd && info.apiVersion === obj.apiVersion) problems.push(...validateResources([obj]));
    if (!problems.length) problems.push(...validateReferences([obj], { get: (k, ns, n) => this.ctx.store.get(k, ns, n) }));
    if (problems.length) throw this.refused(resource, obj, new ResourceInvalid(problems));
    const stored: Resource = { ...obj, apiVersion: c.storageApiVersion };
    if (dryRun) return { object: obj, warnings: [] };
    this.ctx.store.commit([stored]);
    return { object: present(resource, this.stored(resource, obj.metadata.namespace ?? '', obj.metadata.name)!), warnings: [] };
  }

  /** A CustomResourceDefinition: Kubernetes' checks (crd-validation.ts), its defaults, and the status that establishes it. */
  private admitDefinition(resource: ApiResource, crd: Crd, dryRun: boolean): WriteResult {
    const shape = validateResources([crd], { api: true });
    if (shape.length) throw this.refused(resource, crd, new ResourceInvalid(shape));
    const old = this.stored(resource, '', crd.metadata.name) as Crd | undefined;
    defaultCrd(crd);
    const all = this.ctx.store.list(crdKind) as Crd[];
    const kindTaken = (kind: string) => {
      const builtIn = apiResources.find((r) => r.kind === kind);
      if (builtIn) return `the built-in resource ${builtIn.group ? `${builtIn.plural}.${builtIn.group}` : builtIn.plural}`;
      const other = all.find((o) => o.metadata.name !== crd.metadata.name && o.spec.names.kind === kind);
      return other ? `customresourcedefinition ${other.metadata.name}` : undefined;
    };
    const causes = crdProblems(crd, old, builtInGroups, kindTaken);
    const warnings: string[] = [];
    // What Ajv cannot compile (a pattern that is no regular expression) could check no object, nor can
    // a CEL rule that does not compile; one calling what ambit's CEL library lacks is skipped, and said.
    if (!causes.length) {
      crd.spec.versions.forEach((v, i) => {
        const at = `spec.versions[${i}].schema.openAPIV3Schema`;
        try {
          checkCompiles(v.schema!.openAPIV3Schema!, crd.spec.scope === 'Namespaced');
        } catch (err) {
          causes.push({ reason: 'FieldValueInvalid', field: at, message: `Invalid value: ${(err as Error).message}` });
        }
        const rules = compileSchemaRules(v.schema!.openAPIV3Schema!);
        for (const r of rules.invalid) causes.push({ reason: 'FieldValueInvalid', field: `${at}${r.path === '.' ? '' : r.path}.x-kubernetes-validations`, message: `Invalid value: ${JSON.stringify(r.rule)}: ${r.why}` });
        for (const r of rules.skipped) warnings.push(`${crd.metadata.name} ${v.name}: the x-kubernetes-validations rule at ${r.path} is not evaluated by the local API server (${r.why}): ${r.rule}`);
      });
    }
    if (causes.length) throw invalid(resource.kind, resource.group, crd.metadata.name, causes);
    crd.status = crdStatus(crd, all, old, new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'));
    if (dryRun) return { object: crd, warnings };
    this.ctx.store.commit([crd]);
    return { object: this.stored(resource, '', crd.metadata.name)!, warnings };
  }

  /** The store's problems as the API reports them: a missing namespace is 404, the rest 422 naming each field. */
  private refused(resource: ApiResource, obj: Resource, err: ResourceInvalid) {
    const missingNamespace = err.problems.length > 0 && err.problems.every((p) => p.field === 'metadata.namespace' && p.message.includes('does not exist'));
    if (missingNamespace) return notFound({ plural: 'namespaces', group: '' }, obj.metadata.namespace ?? '');
    const causes: StatusCause[] = err.problems.map((p) => ({ reason: p.message === 'is required' ? 'FieldValueRequired' : 'FieldValueInvalid', message: p.message, field: p.field }));
    return invalid(resource.kind, resource.group, typeof obj.metadata?.name === 'string' ? obj.metadata.name : '', causes);
  }
}
