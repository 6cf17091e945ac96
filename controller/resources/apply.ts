// Admission of a batch of resources: validation, defaults, ClusterIP allocation and reference
// checks, then one store commit. Anything wrong refuses the whole batch and stores nothing.
// Deletes cascade as Kubernetes' garbage collector would: a Namespace takes its resources with it,
// an owner its dependents (garbage-collector.ts), all in the same commit.

import { NotFound, ResourceInvalid, type FieldProblem } from '../../shared/errors.js';
import { validateEvents } from '../../shared/resources/events.js';
import { kindInfo } from '../../shared/resources/kinds.js';
import { type Resource, type ResourceRef, resourceName, type Service, keyOf, refOf } from '../../shared/resources/types.js';
import { canonicalMicroTime, canonicalTime, rewriteField } from '../../shared/resources/times.js';
import { validateWebhookConfigurations } from '../../shared/resources/webhook-configurations.js';
import { validateMeshRules, validateReferences, validateResources } from '../../shared/resources/validate.js';
import type { Store } from '../store/store.js';
import type { ClusterIPAllocator } from './allocator.js';
import { garbageOf, orphansOf, type PropagationPolicy } from './garbage-collector.js';
import { type PolicyReview, reviewPolicy } from './policy-review.js';

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  revision: number;
  results: { resource: string; action: ApplyAction; warnings?: string[] }[];
}

export interface ApplyContext {
  store: Store;
  allocator: ClusterIPAllocator;
  nodeNames?: string[];
  /** Istio's root namespace (`ambit controller --root-namespace`); istio-system when unset, as its default. */
  rootNamespace?: string;
}

/**
 * `review: false` leaves the mesh's own review (what no proxy can honour, who enforces a policy) to
 * the controller's admission webhook and status writer, as a Kubernetes API server leaves it: the
 * local API server writes so; `ambit apply` reviews in place.
 */
export function applyResources(ctx: ApplyContext, input: unknown[], dryRun = false, o: { review?: boolean } = {}): ApplyResult {
  const schemaProblems = validateResources(input);
  if (schemaProblems.length) throw new ResourceInvalid(schemaProblems);
  const resources = structuredClone(input) as Resource[];
  for (const r of resources) {
    if (r.kind === 'Secret') foldStringData(r);
    canonicalTimes(r);
    delete r.status;
    for (const f of ['resourceVersion', 'uid', 'creationTimestamp'] as const) delete r.metadata[f];
    if (kindInfo(r.kind)!.namespaced) r.metadata.namespace ??= 'default';
  }
  const problems: FieldProblem[] = [];
  const services = resources.filter((r): r is Service => r.kind === 'Service');
  for (const p of ctx.allocator.assign(services, ctx.store.list('Service') as Service[])) {
    const r = services[p.index]!;
    const [field, ...rest] = p.message.split(' ');
    problems.push({ index: resources.indexOf(r), resource: resourceName(r), field: field!, message: rest.join(' ') });
  }
  const review = o.review ?? true;
  if (review) problems.push(...validateMeshRules(resources, ctx.rootNamespace ?? 'istio-system'));
  problems.push(...validateEvents(resources));
  problems.push(...validateWebhookConfigurations(resources));
  problems.push(...validateReferences(resources, { get: (k, ns, n) => ctx.store.get(k, ns, n), ...(ctx.nodeNames ? { nodeNames: ctx.nodeNames } : {}) }));

  // A policy's status tells the truth about who enforces it and what they cannot enforce as written
  // (istio#61126 is the counter-example); what no proxy can honour refuses the batch.
  const warnings = new Map<string, string[]>();
  resources.forEach((r, index) => {
    const verdict: PolicyReview | undefined = review ? reviewPolicy(r, ctx.rootNamespace ?? 'istio-system') : undefined;
    if (!verdict) return;
    for (const p of verdict.problems) problems.push({ index, resource: resourceName(r), field: p.field, message: p.message });
    r.status = verdict.status;
    if (verdict.warnings.length) warnings.set(resourceName(r), verdict.warnings);
  });
  if (problems.length) throw new ResourceInvalid(problems.sort((a, b) => a.index - b.index));

  // Every namespace has a `default` service account, as in Kubernetes.
  const upserts = [...resources];
  for (const r of resources) {
    if (r.kind === 'Namespace' && !ctx.store.get('ServiceAccount', r.metadata.name, 'default') && !resources.some((x) => x.kind === 'ServiceAccount' && x.metadata.namespace === r.metadata.name && x.metadata.name === 'default')) {
      upserts.push({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: r.metadata.name } });
    }
  }
  const before = new Map(resources.map((r) => [resourceName(r), ctx.store.get(r.kind, r.metadata.namespace ?? '', r.metadata.name)]));
  if (dryRun) {
    return { revision: ctx.store.currentRevision, results: resources.map((r) => ({ resource: resourceName(r), action: before.get(resourceName(r)) ? 'configured' : 'created', ...withWarnings(warnings.get(resourceName(r))) })) };
  }
  const event = ctx.store.commit(upserts);
  const changed = new Set(event.changes.map((c) => (c.type === 'upsert' ? resourceName(c.resource) : '')));
  return {
    revision: event.revision,
    results: resources.map((r) => {
      const name = resourceName(r);
      return { resource: name, action: !changed.has(name) ? 'unchanged' : before.get(name) ? 'configured' : 'created', ...withWarnings(warnings.get(name)) };
    }),
  };
}

/**
 * Deletes `refs` (and a Namespace's contents) in one commit, with their dependents: those whose
 * owners are then all gone (Background or Foreground), or, for `Orphan`, none: the direct
 * dependents of `refs` lose their reference to them and stay.
 */
export function deleteResources(ctx: ApplyContext, refs: ResourceRef[], ignoreNotFound = false, propagation: PropagationPolicy = 'Background'): ApplyResult & { deleted: string[] } {
  const missing = refs.filter((r) => !ctx.store.get(r.kind, r.namespace, r.name));
  if (missing.length && !ignoreNotFound) throw new NotFound(missing.map((r) => `${r.kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`).join(', '));
  const all = new Map<string, ResourceRef>();
  const named: Resource[] = [];
  for (const ref of refs) {
    const found = ctx.store.get(ref.kind, ref.namespace, ref.name);
    if (!found) continue;
    named.push(found);
    all.set(keyOf(ref), ref);
    if (ref.kind === 'Namespace') {
      for (const r of ctx.store.list(undefined, ref.name)) all.set(keyOf({ kind: r.kind, namespace: ref.name, name: r.metadata.name }), { kind: r.kind, namespace: ref.name, name: r.metadata.name });
    }
  }
  let objects = ctx.store.list();
  const upserts: Resource[] = [];
  if (propagation === 'Orphan') {
    for (const o of orphansOf(objects, named)) if (!all.has(keyOf(refOf(o)))) upserts.push(o);
    const rewritten = new Map(upserts.map((r) => [keyOf(refOf(r)), r]));
    objects = objects.map((r) => rewritten.get(keyOf(refOf(r))) ?? r);
  }
  for (const ref of garbageOf(objects, new Set(all.keys()))) all.set(keyOf(ref), ref);
  const event = ctx.store.commit(upserts, [...all.values()]);
  return { revision: event.revision, results: [], deleted: event.changes.flatMap((c) => (c.type === 'delete' ? [resourceName(c.resource)] : [])) };
}

function withWarnings(w: string[] | undefined) {
  return w?.length ? { warnings: w } : {};
}

/**
 * A Secret's stringData is a convenience for writers: Kubernetes merges it into data (base64), its
 * keys winning, and never stores it; the type defaults to Opaque.
 */
function foldStringData(r: Resource): void {
  const secret = r as Resource & { type?: string; data?: Record<string, string>; stringData?: Record<string, string> };
  secret.type ??= 'Opaque';
  if (!secret.stringData) return;
  secret.data = { ...secret.data };
  for (const [k, v] of Object.entries(secret.stringData)) secret.data[k] = Buffer.from(v, 'utf8').toString('base64');
  delete secret.stringData;
}

/**
 * Timestamps as the Kubernetes API server stores them, whatever RFC 3339 form was written: a Lease's
 * and an Event's MicroTimes to the microsecond, an Event's Times to the second, all in UTC. Clients
 * (client-go's leader election among them) compare what they read back with what they wrote.
 */
function canonicalTimes(r: Resource): void {
  const o = r as unknown as Record<string, Record<string, unknown> | undefined>;
  if (r.kind === 'Lease') {
    rewriteField(o.spec, 'acquireTime', canonicalMicroTime);
    rewriteField(o.spec, 'renewTime', canonicalMicroTime);
  } else if (r.kind === 'Event') {
    rewriteField(o as Record<string, unknown>, 'firstTimestamp', canonicalTime);
    rewriteField(o as Record<string, unknown>, 'lastTimestamp', canonicalTime);
    rewriteField(o as Record<string, unknown>, 'eventTime', canonicalMicroTime);
    rewriteField(o.series, 'lastObservedTime', canonicalMicroTime);
  }
}
