// PATCH bodies of the Kubernetes API applied to a stored object: JSON merge patch (RFC 7386), JSON
// patch (RFC 6902, json-patch.ts), strategic merge patch (built-in kinds, strategic-merge.ts) and
// server-side apply (server-side-apply.ts). Pure functions: the server reads the body and the stored
// object, this computes the new object, and the server validates and stores it.
//
// What every strategy shares lives here: a patch never changes apiVersion, kind, metadata.name or
// metadata.namespace (422), and the result carries metadata.resourceVersion only when the patch set
// one, which the server then checks against the stored object as an optimistic-concurrency precondition.

import type { Resource } from '../../shared/resources/types.js';
import { ApiError } from './errors.js';
import { applyJsonPatch, parseJsonPatch, type JsonPatchOperation } from './json-patch.js';
import { clone, getOwn, isObject, parseJson, setOwn, type Json, type JsonObject } from './json.js';
import { builtInSchema, type Schema as MergeSchema } from './merge-keys.js';
import { applyServerSide } from './server-side-apply.js';
import { strategicMerge } from './strategic-merge.js';

export const patchTypes = ['application/merge-patch+json', 'application/json-patch+json', 'application/strategic-merge-patch+json', 'application/apply-patch+yaml'] as const;
export type PatchType = (typeof patchTypes)[number];

/** The object `current` with `body` (of media type `type`) applied. Throws ApiError (400, 415, 422). */
export function applyPatch(current: Resource, body: string, type: PatchType): Resource {
  const before = current as unknown as JsonObject;
  switch (type) {
    case 'application/merge-patch+json': {
      const patch = parseJson(body, 'merge patch');
      if (!isObject(patch)) throw new ApiError(400, 'BadRequest', 'a merge patch must be a JSON object, e.g. {"spec":{"replicas":3}}');
      return finish(before, mergePatch(clone(before), patch), setsResourceVersion(patch));
    }
    case 'application/json-patch+json': {
      const ops = parseJsonPatch(body);
      return finish(before, applyJsonPatch(before, ops), ops.some(touchesResourceVersion));
    }
    case 'application/strategic-merge-patch+json': {
      const schema = builtInSchema(current.apiVersion, current.kind);
      // As the real server: a custom resource has no patch tags, so the strategic type is not on offer
      // for it. kubectl apply picks merge patch for such kinds by itself; kubectl patch needs --type=merge.
      if (!schema) throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for custom resources such as ${current.apiVersion} ${current.kind}; use --type=merge or --type=json)`);
      const patch = parseJson(body, 'strategic merge patch');
      if (!isObject(patch)) throw new ApiError(400, 'BadRequest', 'a strategic merge patch must be a JSON object, e.g. {"spec":{"replicas":3}}');
      return finish(before, strategicMerge(clone(before), clone(patch), schema), setsResourceVersion(patch));
    }
    case 'application/apply-patch+yaml':
      throw new ApiError(415, 'UnsupportedMediaType', 'application/apply-patch+yaml is server-side apply, which takes a field manager: the server calls serverSideApply for it, not applyPatch');
    default:
      throw new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${patchTypes.join(', ')}`);
  }
}

/**
 * Server-side apply of `applied` (the manager's whole intent) onto `current` (undefined: create).
 * Conflicts with other managers' fields are 409 unless `force`.
 */
export function serverSideApply(current: Resource | undefined, applied: Resource, manager: string, force: boolean, schema?: MergeSchema): Resource {
  if (!manager) throw new ApiError(400, 'BadRequest', 'fieldManager is required for apply requests: pass ?fieldManager=<name> (kubectl apply --server-side sends "kubectl")');
  if (!isObject(applied)) throw new ApiError(400, 'BadRequest', 'an apply body must be an object (YAML or JSON) with apiVersion, kind and metadata');
  const intent = applied as unknown as JsonObject;
  const meta = getOwn(intent, 'metadata');
  if (isObject(meta) && getOwn(meta, 'managedFields') !== undefined) throw new ApiError(400, 'BadRequest', 'metadata.managedFields must be nil in an apply request: the server keeps it');
  if (current === undefined) return finish(undefined, applyServerSide(undefined, intent, manager, force, schema), setsResourceVersion(intent)) as Resource;
  const before = current as unknown as JsonObject;
  // The applied configuration may leave the namespace out: the request's URL gives it.
  const withNamespace = clone(intent);
  const namespace = getOwn(before.metadata as JsonObject, 'namespace');
  if (isObject(withNamespace.metadata) && getOwn(withNamespace.metadata, 'namespace') === undefined && namespace !== undefined) setOwn(withNamespace.metadata, 'namespace', namespace);
  checkIdentity(before, withNamespace);
  return finish(before, applyServerSide(before, withNamespace, manager, force, schema), setsResourceVersion(intent));
}

/** RFC 7386: objects merge member by member, null deletes, anything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return patch;
  const out = isObject(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else setOwn(out, k, mergePatch(getOwn(out, k), v));
  }
  return out;
}

/** The patched object, checked to be the same object, with resourceVersion only if the patch set it. */
function finish(before: JsonObject | undefined, after: Json, keepResourceVersion: boolean): Resource {
  if (!isObject(after) || !isObject(after.metadata)) throw new ApiError(422, 'Invalid', 'the patched object must be an object with metadata', { causes: [{ reason: 'FieldValueRequired', message: 'Required value', field: 'metadata' }] });
  if (before) checkIdentity(before, after);
  if (!keepResourceVersion) delete after.metadata.resourceVersion;
  return after as unknown as Resource;
}

const identity: { field: string; read: (o: JsonObject) => Json | undefined }[] = [
  { field: 'apiVersion', read: (o) => getOwn(o, 'apiVersion') },
  { field: 'kind', read: (o) => getOwn(o, 'kind') },
  { field: 'metadata.name', read: (o) => (isObject(o.metadata) ? getOwn(o.metadata, 'name') : undefined) },
  { field: 'metadata.namespace', read: (o) => (isObject(o.metadata) ? getOwn(o.metadata, 'namespace') : undefined) },
];

/** A patch edits an object; it never turns it into another one (422 naming each field it tried to change). */
function checkIdentity(before: JsonObject, after: JsonObject): void {
  const causes = identity
    .filter(({ read }) => read(before) !== read(after))
    .map(({ field, read }) => ({ reason: 'FieldValueInvalid', field, message: `field is immutable: ${JSON.stringify(read(before) ?? null)} cannot become ${JSON.stringify(read(after) ?? null)}` }));
  if (causes.length > 0) {
    const name = isObject(before.metadata) ? String(getOwn(before.metadata, 'name')) : '';
    throw new ApiError(422, 'Invalid', `${String(before.kind)} "${name}" is invalid: ${causes.map((c) => `${c.field}: Invalid value: ${c.message}`).join(', ')}`, { name, kind: String(before.kind), causes });
  }
}

/** A merge-style patch (merge, strategic, apply) sets the resourceVersion when it carries a non-null one. */
function setsResourceVersion(patch: JsonObject): boolean {
  const meta = getOwn(patch, 'metadata');
  const rv = isObject(meta) ? getOwn(meta, 'resourceVersion') : undefined;
  return rv !== undefined && rv !== null;
}

/** A JSON patch sets the resourceVersion when an operation other than test or remove writes it or a parent of it. */
function touchesResourceVersion(op: JsonPatchOperation): boolean {
  if (op.op === 'test' || op.op === 'remove') return false;
  return op.path === '' || op.path === '/metadata' || op.path === '/metadata/resourceVersion';
}
