// The field sets of server-side apply: which fields of an object a manager set, as paths of
// FieldsV1 elements (`f:spec`, `k:{"name":"web"}` for an item of a keyed list, `v:"x"` for a value
// of a set), built from an applied object, read from and written to metadata.managedFields, and
// used to find, compare and remove the value a path names. The apply itself is server-side-apply.ts's.

import { ApiError } from './errors.js';
import { getOwn, isObject, show, type Json, type JsonObject } from './json.js';
import type { Schema } from './merge-keys.js';

/** One step of a field path: `f:<field>`, `k:<key object JSON>` or `v:<value JSON>`. */
export type FieldPath = readonly string[];

export class FieldSet {
  private readonly paths = new Map<string, FieldPath>();

  add(path: FieldPath): void {
    this.paths.set(JSON.stringify(path), path);
  }
  has(path: FieldPath): boolean {
    return this.paths.has(JSON.stringify(path));
  }
  delete(path: FieldPath): void {
    this.paths.delete(JSON.stringify(path));
  }
  get size(): number {
    return this.paths.size;
  }
  [Symbol.iterator](): IterableIterator<FieldPath> {
    return this.paths.values();
  }
  /** Whether the set holds `path` or a field below it (a manager owning `.spec.x.y` has a stake in `.spec.x`). */
  touches(path: FieldPath): boolean {
    for (const p of this.paths.values()) if (p.length >= path.length && path.every((e, i) => p[i] === e)) return true;
    return false;
  }
}

// Fields the server owns: the object's identity, bookkeeping, and status (the status subresource's).
const unmanagedTop = new Set(['apiVersion', 'kind', 'status']);
const unmanagedMeta = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink', 'managedFields']);

/**
 * The fields an applied object sets. Keyed lists (merge-keys.ts) are owned item by item and field
 * by field, sets of scalars value by value; every other list is owned whole (atomic), as is every
 * scalar, null and empty map. Throws 422 for an item of a keyed list without its key or with a duplicate key.
 */
export function fieldSetOf(obj: JsonObject, schema: Schema): FieldSet {
  const set = new FieldSet();
  walk(obj, schema, [], set, true);
  return set;
}

function walk(obj: JsonObject, schema: Schema, prefix: FieldPath, set: FieldSet, top: boolean): void {
  for (const [k, v] of Object.entries(obj)) {
    if (top && unmanagedTop.has(k)) continue;
    const path = [...prefix, `f:${k}`];
    const meta = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (Array.isArray(v) && meta?.list === 'merge') {
      const key = meta.key;
      const seen = new Set<string>();
      for (const item of v) {
        let element: string;
        if (key !== undefined) {
          if (!isObject(item) || getOwn(item, key) === undefined) throw invalid(`${pathString(path)}: the item ${show(item)} has no "${key}", the key of this list`, path);
          element = `k:${JSON.stringify({ [key]: item[key] })}`;
        } else {
          if (isObject(item) || Array.isArray(item)) throw invalid(`${pathString(path)}: a set holds scalars, not ${show(item)}`, path);
          element = `v:${JSON.stringify(item)}`;
        }
        if (key !== undefined && seen.has(element)) throw invalid(`${pathString(path)}: duplicate entries for key ${element.slice(2)}`, path);
        seen.add(element);
        set.add([...path, element]);
        if (key !== undefined) walk(item as JsonObject, meta.of ?? {}, [...path, element], set, false);
      }
    } else if (isObject(v) && Object.keys(v).length > 0) {
      const sub = meta?.of ?? {};
      if (top && k === 'metadata') walk(Object.fromEntries(Object.entries(v).filter(([m]) => !unmanagedMeta.has(m))), sub, path, set, false);
      else walk(v, sub, path, set, false);
    } else set.add(path);
  }
}

/** The FieldsV1 form: nested `{"f:spec":{"f:replicas":{}}}`, with `".": {}` where a member also has members below it. */
export function toFieldsV1(set: FieldSet): JsonObject {
  const root: JsonObject = {};
  const members: JsonObject[] = [];
  for (const path of set) {
    let node = root;
    for (const element of path) {
      if (!isObject(node[element])) node[element] = {};
      node = node[element] as JsonObject;
    }
    members.push(node);
  }
  for (const node of members) if (Object.keys(node).length > 0) node['.'] = {};
  return root;
}

/** A FieldsV1 document read back into a set; what is not an object is ignored rather than trusted. */
export function fromFieldsV1(fields: Json | undefined): FieldSet {
  const set = new FieldSet();
  const read = (node: JsonObject, prefix: FieldPath) => {
    for (const [element, child] of Object.entries(node)) {
      if (element === '.' || !isObject(child)) continue;
      const path = [...prefix, element];
      const below = Object.keys(child).filter((e) => e !== '.');
      if (below.length === 0 || Object.hasOwn(child, '.')) set.add(path);
      read(child, path);
    }
  };
  if (isObject(fields)) read(fields, []);
  return set;
}

/** The value `path` names in `obj`, or undefined when it is not there. */
export function valueAt(obj: Json, path: FieldPath): Json | undefined {
  let node: Json | undefined = obj;
  for (const element of path) {
    if (node === undefined) return undefined;
    node = step(node, element)?.value;
  }
  return node;
}

/** Removes what `path` names from `obj` (a member, a keyed item, a value of a set); false if it was not there. */
export function removeAt(obj: JsonObject, path: FieldPath): boolean {
  const parent = valueAt(obj, path.slice(0, -1));
  if (parent === undefined) return false;
  const found = step(parent, path[path.length - 1]);
  if (!found) return false;
  if (Array.isArray(parent)) parent.splice(found.index as number, 1);
  else delete (parent as JsonObject)[(path[path.length - 1]).slice(2)];
  return true;
}

function step(node: Json, element: string): { value: Json; index?: number } | undefined {
  const kind = element.slice(0, 2);
  const rest = element.slice(2);
  if (kind === 'f:') {
    const value = isObject(node) ? getOwn(node, rest) : undefined;
    return value === undefined ? undefined : { value };
  }
  if (!Array.isArray(node)) return undefined;
  let wanted: Json;
  try {
    wanted = JSON.parse(rest) as Json;
  } catch {
    return undefined; // a stored FieldsV1 element that is not ours to read
  }
  const index =
    kind === 'k:' && isObject(wanted)
      ? node.findIndex((item) => isObject(item) && Object.entries(wanted).every(([k, v]) => getOwn(item, k) === v))
      : kind === 'v:'
        ? node.findIndex((item) => item === wanted)
        : -1;
  return index < 0 ? undefined : { value: node[index], index };
}

/** A path as kubectl prints it: `.spec.template.spec.containers[name="web"].image`, `.metadata.finalizers[="x"]`. */
export function pathString(path: FieldPath): string {
  return path
    .map((element) => {
      const rest = element.slice(2);
      if (element.startsWith('f:')) return `.${rest}`;
      if (element.startsWith('v:')) return `[=${rest}]`;
      try {
        const key = JSON.parse(rest) as JsonObject;
        return `[${Object.entries(key)
          .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
          .join(',')}]`;
      } catch {
        return `[${rest}]`;
      }
    })
    .join('');
}

function invalid(message: string, path: FieldPath): ApiError {
  return new ApiError(422, 'Invalid', `apply: ${message}`, { causes: [{ reason: 'FieldValueInvalid', message, field: pathString(path).slice(1) }] });
}
