// Kubernetes' strategic merge patch for the built-in kinds: maps merge recursively, null deletes,
// lists tagged `merge` (merge-keys.ts) merge by their key and the rest are replaced. It follows
// apimachinery's pkg/util/strategicpatch (mergeMap, mergeSlice, normalizeElementOrder) as the
// API server runs it: IgnoreUnmatchedNulls and MergeParallelList on.
//
// Directives supported: `$patch: replace` and `$patch: delete` (in a map or a list item),
// `$patch: replace` in a list, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
// `$setElementOrder/<field>`. Refused with 422, never guessed at: `$patch: merge` (Kubernetes
// rejects it too: merging is what happens without a directive) and any other `$` key.
//
// Choices where Kubernetes stores what it did not understand: directives inside a value that has
// nothing to merge with (a new list item, a replaced list) are dropped rather than stored.

import { ApiError } from './errors.js';
import { getOwn, isObject, setOwn, show, type Json, type JsonObject } from './json.js';
import type { FieldMeta, Schema } from './merge-keys.js';

const patchDirective = '$patch';
const retainKeysDirective = '$retainKeys';
const deleteFromPrimitiveListPrefix = '$deleteFromPrimitiveList/';
const setElementOrderPrefix = '$setElementOrder/';

/**
 * `patch` merged into `original` by `schema`. Both are consumed (the caller passes copies).
 * Throws ApiError 422 naming the field and the directive at fault.
 */
export function strategicMerge(original: JsonObject, patch: JsonObject, schema: Schema): JsonObject {
  return mergeMap(original, patch, schema, '');
}

function mergeMap(original: JsonObject | undefined, patch: JsonObject, schema: Schema, at: string): JsonObject {
  if (Object.hasOwn(patch, patchDirective)) {
    const directive = patch[patchDirective];
    // `$patch: replace`: the map becomes the patch; `$patch: delete`: the map becomes empty.
    if (directive === 'replace') {
      delete patch[patchDirective];
      return strip(patch, at) as JsonObject;
    }
    if (directive === 'delete') return {};
    throw refused(`$patch: ${show(directive)}`, at, directive === 'merge' ? 'merging is what a map does without a directive, and Kubernetes rejects "$patch: merge" too: remove it' : 'only "replace" and "delete" are directives for a map');
  }
  const out = original ?? {};
  applyRetainKeys(out, patch, at);
  applySetElementOrder(out, patch, schema, at);
  // Deletions from a set first, so that the result does not depend on the order of the patch's keys.
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith(deleteFromPrimitiveListPrefix)) deleteFromPrimitiveList(out, k.slice(deleteFromPrimitiveListPrefix.length), v, at);
  }
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith(deleteFromPrimitiveListPrefix)) continue;
    const here = join(at, k);
    if (k.startsWith('$')) throw refused(k, at, 'it is not a strategic merge patch directive ambit knows');
    if (v === null) {
      delete out[k];
      continue;
    }
    const current = getOwn(out, k);
    const meta = fieldMeta(schema, k);
    if (current === undefined || shape(current) !== shape(v)) {
      // Nothing to merge with: the patch's value, without its directives and nulls.
      const value = strip(v, here);
      if (value === undefined) delete out[k];
      else setOwn(out, k, value);
    } else if (isObject(current)) setOwn(out, k, mergeMap(current, v as JsonObject, meta?.of ?? {}, here));
    else if (Array.isArray(current)) setOwn(out, k, meta?.list === 'merge' ? mergeList(current, v as Json[], meta, here) : (strip(v, here) as Json[]));
    else setOwn(out, k, v);
  }
  return out;
}

/** A merged list: items matched by the merge key are merged, new ones added, `$patch` items obeyed. */
function mergeList(original: Json[], patch: Json[], meta: FieldMeta, at: string): Json[] {
  if (original.length === 0 && patch.length === 0) return original;
  if (elementShape([...original, ...patch], at) === 'scalar') {
    // A set of scalars (finalizers, podCIDRs): the union, in the order the patch and the object agree on.
    const merged = [...original];
    for (const v of patch) if (!merged.includes(v)) merged.push(v);
    return normaliseOrder(merged, patch, original, undefined);
  }
  const key = meta.key;
  if (!key) throw invalid(`${at}: a list of objects merges only by a merge key, and this list has none`, at);
  let items = original as JsonObject[];
  let rest: JsonObject[] = [];
  let replace = false;
  for (const item of patch as JsonObject[]) {
    if (!Object.hasOwn(item, patchDirective)) {
      rest.push(item);
      continue;
    }
    const directive = item[patchDirective];
    if (directive === 'delete') {
      if (!Object.hasOwn(item, key)) throw invalid(`${at}: a "$patch: delete" item must name the item by its merge key "${key}"`, at);
      items = items.filter((o) => getOwn(o, key) !== item[key]);
    } else if (directive === 'replace') replace = true;
    else throw refused(`$patch: ${show(directive)}`, at, directive === 'merge' ? 'Kubernetes rejects "$patch: merge" in a list too ("merging lists cannot yet be specified in the patch"): remove it' : 'only "replace" and "delete" are directives in a list');
  }
  if (replace) {
    // `$patch: replace` in a list: the list becomes the patch's other items.
    items = rest.map((o) => strip(o, at) as JsonObject);
    rest = [];
  }
  requireKeys(items, key, at);
  requireKeys(rest, key, at);
  const serverOrder = [...items];
  const merged = [...items];
  for (const item of rest) {
    const i = merged.findIndex((o) => o[key] === item[key]);
    if (i >= 0) merged[i] = mergeMap(merged[i], item, meta.of ?? {}, `${at}[${key}=${show(item[key])}]`);
    else merged.push(strip(item, at) as JsonObject);
  }
  return normaliseOrder(merged, rest, serverOrder, key);
}

/**
 * Kubernetes' order for a merged list (normalizeElementOrder): the items the patch names come in the
 * patch's order, the server's other items keep theirs, and each server-only item goes before the
 * first patch item that follows it on the server. So an item that only the patch has comes first:
 * adding a container puts it ahead of the existing ones, as `kubectl patch` shows.
 */
function normaliseOrder(merged: Json[], patchOrder: Json[], serverOrder: Json[], key: string | undefined): Json[] {
  const id = (v: Json): Json | undefined => (key === undefined ? v : isObject(v) ? getOwn(v, key) : undefined);
  const indexIn = (list: Json[], v: Json) => list.findIndex((o) => id(o) === id(v));
  const byIndexIn = (list: Json[]) => (a: Json, b: Json) => indexIn(list, a) - indexIn(list, b);
  const fromPatch = merged.filter((v) => indexIn(patchOrder, v) >= 0).sort(byIndexIn(patchOrder));
  const serverOnly = merged.filter((v) => indexIn(patchOrder, v) < 0).sort(byIndexIn(serverOrder));
  const out: Json[] = [];
  let i = 0;
  let j = 0;
  while (i < serverOnly.length || j < fromPatch.length) {
    if (j >= fromPatch.length) out.push(serverOnly[i++]);
    else if (i >= serverOnly.length) out.push(fromPatch[j++]);
    else {
      const left = indexIn(serverOrder, serverOnly[i]);
      const right = indexIn(serverOrder, fromPatch[j]);
      if (left >= 0 && right >= 0 && left < right) out.push(serverOnly[i++]);
      else out.push(fromPatch[j++]);
    }
  }
  return out;
}

/** `$retainKeys: [...]`: the map keeps only the keys listed (a union type switching member, e.g. a volume's source). */
function applyRetainKeys(out: JsonObject, patch: JsonObject, at: string): void {
  if (!Object.hasOwn(patch, retainKeysDirective)) return;
  const keep = patch[retainKeysDirective];
  delete patch[retainKeysDirective];
  if (!Array.isArray(keep) || !keep.every((k) => typeof k === 'string')) throw invalid(`${join(at, retainKeysDirective)} must be a list of field names, not ${show(keep)}`, at);
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || k.startsWith(deleteFromPrimitiveListPrefix) || k.startsWith(setElementOrderPrefix)) continue;
    if (!keep.includes(k)) throw invalid(`${join(at, retainKeysDirective)} does not list "${k}", which the patch sets; a patch may only set the keys it retains`, at);
  }
  for (const k of Object.keys(out)) if (!keep.includes(k)) delete out[k];
}

/** `$deleteFromPrimitiveList/<field>: [...]`: those values leave the list of scalars `field`. */
function deleteFromPrimitiveList(out: JsonObject, field: string, values: Json, at: string): void {
  const here = join(at, field);
  const directive = join(at, deleteFromPrimitiveListPrefix + field);
  if (!Array.isArray(values) || values.some((v) => isObject(v) || Array.isArray(v))) throw invalid(`${directive} must be a list of scalars, not ${show(values)}`, here);
  const current = getOwn(out, field);
  if (!Array.isArray(current)) return;
  if (current.some((v) => isObject(v) || Array.isArray(v))) throw invalid(`${directive}: ${here} is a list of objects; delete its items with "$patch: delete" instead`, here);
  setOwn(
    out,
    field,
    current.filter((v) => !values.includes(v)),
  );
}

/**
 * `$setElementOrder/<field>: [...]`: the final order of a merged list, which may name items the
 * patch leaves alone (kubectl apply sends it so a reordered manifest reorders the object).
 */
function applySetElementOrder(out: JsonObject, patch: JsonObject, schema: Schema, at: string): void {
  for (const [k, order] of Object.entries(patch)) {
    if (!k.startsWith(setElementOrderPrefix)) continue;
    delete patch[k];
    const field = k.slice(setElementOrderPrefix.length);
    const here = join(at, field);
    const meta = fieldMeta(schema, field);
    if (meta?.list !== 'merge') throw invalid(`${join(at, k)}: ${here} is not a merged list, so it takes no element order`, here);
    if (!Array.isArray(order)) throw invalid(`${join(at, k)} must be a list, not ${show(order)}`, here);
    const current = getOwn(out, field);
    const patched = getOwn(patch, field);
    if (current !== undefined && !Array.isArray(current)) throw invalid(`${here} is ${show(current)}, not a list`, here);
    if (patched !== undefined && patched !== null && !Array.isArray(patched)) throw invalid(`${here} in the patch is ${show(patched)}, not a list`, here);
    const key = meta.key;
    checkOrderAgrees(Array.isArray(patched) ? patched : [], order, key, here);
    let merged: Json[];
    if (Array.isArray(current) && Array.isArray(patched)) merged = mergeList(current, patched, meta, here);
    else if (Array.isArray(patched)) merged = strip(patched, here) as Json[];
    else if (Array.isArray(current)) merged = current;
    else continue;
    if (key !== undefined) requireKeys(order, key, `${join(at, k)}`);
    setOwn(out, field, normaliseOrder(merged, order, Array.isArray(current) ? current : [], key));
    delete patch[field];
  }
}

/** The patch list's items must appear in the order list, in the same relative order (validatePatchWithSetOrderList). */
function checkOrderAgrees(patched: Json[], order: Json[], key: string | undefined, at: string): void {
  const id = (v: Json) => (key === undefined ? v : isObject(v) ? getOwn(v, key) : undefined);
  const named = patched.filter((v) => !(isObject(v) && Object.hasOwn(v, patchDirective)));
  let p = 0;
  for (let s = 0; s < order.length && p < named.length; s++) if (id(order[s]) === id(named[p])) p++;
  if (p < named.length) throw invalid(`${at}: the patch's items are not in the order $setElementOrder/${at.slice(at.lastIndexOf('.') + 1)} gives, or it does not name them all`, at);
}

/** A value with no directives left: maps with `$patch` vanish, null members and `$` keys are dropped. */
function strip(v: Json, at: string): Json | undefined {
  if (Array.isArray(v)) return v.map((x) => strip(x, at)).filter((x): x is Json => x !== undefined);
  if (!isObject(v)) return v;
  if (Object.hasOwn(v, patchDirective)) return undefined;
  const out: JsonObject = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === null) continue;
    if (k.startsWith('$')) {
      if (k === retainKeysDirective || k.startsWith(setElementOrderPrefix) || k.startsWith(deleteFromPrimitiveListPrefix)) continue;
      throw refused(k, at, 'it is not a strategic merge patch directive ambit knows');
    }
    const value = strip(x, join(at, k));
    if (value !== undefined) setOwn(out, k, value);
  }
  return out;
}

function requireKeys(items: Json[], key: string, at: string): void {
  for (const item of items) {
    if (!isObject(item) || getOwn(item, key) === undefined) throw invalid(`${at}: the item ${show(item)} has no merge key "${key}"`, at);
  }
}

function elementShape(items: Json[], at: string): 'object' | 'scalar' {
  const shapes = new Set(items.map(shape));
  if (shapes.has('array')) throw invalid(`${at}: a list of lists cannot be merged`, at);
  if (shapes.size > 1) throw invalid(`${at}: the list mixes objects and scalars`, at);
  return shapes.has('object') ? 'object' : 'scalar';
}

function shape(v: Json): 'object' | 'array' | 'scalar' {
  return Array.isArray(v) ? 'array' : isObject(v) ? 'object' : 'scalar';
}

function fieldMeta(schema: Schema, field: string): FieldMeta | undefined {
  return Object.hasOwn(schema, field) ? schema[field] : undefined;
}

function join(at: string, k: string): string {
  return at ? `${at}.${k}` : k;
}

function invalid(message: string, field: string): ApiError {
  return new ApiError(422, 'Invalid', `strategic merge patch: ${message}`, { causes: [{ reason: 'FieldValueInvalid', message, field: field || 'patch' }] });
}

function refused(directive: string, at: string, why: string): ApiError {
  const message = `the directive ${directive}${at ? ` at ${at}` : ''} is not supported: ${why}`;
  return new ApiError(422, 'Invalid', `strategic merge patch: ${message}`, { causes: [{ reason: 'FieldValueNotSupported', message, field: at || 'patch' }] });
}
