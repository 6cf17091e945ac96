// Server-side apply: a manager's applied configuration merged into the stored object, with
// metadata.managedFields recording which manager set which fields (field-set.ts), a 409 Conflict
// when the apply would change a field another manager set, and the fields a manager applied before
// and now leaves out removed. patch.ts checks the object's identity and resourceVersion around it.
//
// Simplified, and honest about it:
// - List types: the keyed lists of merge-keys.ts (by their one patchMergeKey, where Kubernetes
//   uses listMapKeys, e.g. containerPort+protocol) and sets of scalars; every other list is atomic,
//   For a custom resource, its CRD schema's x-kubernetes-list-type says: `set` and `map` with one
//   x-kubernetes-list-map-keys entry merge; `map` with several keys is atomic (the key is one field here).
// - Only applies are tracked (operation Apply). A PATCH or PUT does not move ownership to its
//   manager as Kubernetes' Update entries do, so an apply overwrites such an edit without a conflict.
//   An object with no managedFields has no owners: the first apply takes what it sets and leaves the rest.
// - `status` in an applied configuration is ignored (the status subresource's, as in Kubernetes).
// - A conflict needs the field to be there: a field another manager owns but that is gone is taken
//   without one. A null in an applied configuration unsets the field.
// - New items of a keyed list go after the existing ones; Kubernetes may interleave them.

import { isDeepStrictEqual } from 'node:util';
import { ApiError, type StatusCause } from './errors.js';
import { FieldSet, fieldSetOf, fromFieldsV1, pathString, removeAt, toFieldsV1, valueAt, type FieldPath } from './field-set.js';
import { clone, getOwn, isObject, setOwn, type Json, type JsonObject } from './json.js';
import { builtInSchema, type Schema } from './merge-keys.js';

interface Entry {
  manager: string;
  operation: string;
  apiVersion: string;
  set: FieldSet;
  /** The stored entry, kept as it was unless its fields change. */
  raw: JsonObject;
  /** Whether a forced apply took fields from it. */
  changed?: boolean;
}

/** `applied` applied by `manager` onto `current` (undefined: a create). Throws ApiError 409 on conflicts unless `force`, 422 on a malformed keyed list. */
export function applyServerSide(current: JsonObject | undefined, applied: JsonObject, manager: string, force: boolean, custom?: Schema): JsonObject {
  const apiVersion = String(applied.apiVersion);
  const schema = custom ?? builtInSchema(apiVersion, String(applied.kind)) ?? {};
  const intent = clone(applied);
  delete intent.status;
  const appliedSet = fieldSetOf(intent, schema);

  const entries = current ? readEntries(current) : [];
  const mine = entries.find((e) => e.manager === manager && e.operation === 'Apply');
  const others = entries.filter((e) => e.manager !== manager);
  const result: JsonObject = current ? clone(current) : { apiVersion: intent.apiVersion, kind: intent.kind, metadata: {} };

  if (current) {
    const conflicts = findConflicts(current, intent, appliedSet, others);
    if (conflicts.length > 0 && !force) throw conflictError(current, conflicts);
    // --force-conflicts: the fields become this manager's alone.
    for (const c of conflicts) {
      c.entry.set.delete(c.path);
      c.entry.changed = true;
    }
    // What this manager applied before and leaves out now goes, unless another manager has a stake in it.
    if (mine) {
      for (const path of mine.set) {
        if (appliedSet.has(path) || others.some((e) => e.set.touches(path))) continue;
        if (removeAt(result, path)) pruneEmptyParents(result, path, entries);
      }
    }
  }
  merge(result, intent, schema);

  const fieldsV1 = toFieldsV1(appliedSet);
  // A no-op apply keeps its entry's time, as Kubernetes ignores managedFields timestamps when it
  // decides whether anything changed: applying the same thing twice must not write the object.
  const withoutFields = (o: JsonObject) => ({ ...o, metadata: { ...(o.metadata as JsonObject), managedFields: undefined } });
  const noOp = current !== undefined && mine !== undefined && !entries.some((e) => e.changed) && mine.raw.apiVersion === apiVersion && isDeepStrictEqual(mine.raw.fieldsV1, fieldsV1) && isDeepStrictEqual(withoutFields(result), withoutFields(current));
  const stamp = noOp ? String(mine!.raw.time) : new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  const applyEntry: JsonObject = { manager, operation: 'Apply', apiVersion, time: stamp, fieldsType: 'FieldsV1', fieldsV1 };
  const kept = entries.flatMap((e): JsonObject[] => {
    if (e === mine) return [applyEntry];
    if (!e.changed) return [e.raw];
    // A manager whose last field was taken from it no longer manages anything: its entry goes.
    return e.set.size === 0 ? [] : [{ ...e.raw, fieldsV1: toFieldsV1(e.set) }];
  });
  if (!mine && appliedSet.size > 0) kept.push(applyEntry);
  const metadata = result.metadata as JsonObject;
  if (kept.length > 0) metadata.managedFields = kept;
  else delete metadata.managedFields;
  return result;
}

function readEntries(current: JsonObject): Entry[] {
  const meta = current.metadata;
  const stored = isObject(meta) ? getOwn(meta, 'managedFields') : undefined;
  if (!Array.isArray(stored)) return [];
  return stored.filter(isObject).map((raw) => ({
    manager: String(raw.manager ?? ''),
    operation: String(raw.operation ?? ''),
    apiVersion: String(raw.apiVersion ?? ''),
    // Entries of another format own nothing we can read; they are kept as they are.
    set: raw.fieldsType === 'FieldsV1' ? fromFieldsV1(raw.fieldsV1) : new FieldSet(),
    raw,
  }));
}

interface Conflict {
  path: FieldPath;
  entry: Entry;
}

/** Fields the apply sets that another manager owns, where the stored value is there and differs. */
function findConflicts(current: JsonObject, intent: JsonObject, appliedSet: FieldSet, others: Entry[]): Conflict[] {
  const conflicts: Conflict[] = [];
  for (const path of appliedSet) {
    const stored = valueAt(current, path);
    if (stored === undefined) continue;
    // An item of a keyed list or a value of a set is the same item once it is there: its fields are compared on their own paths.
    const last = path[path.length - 1];
    if (!last.startsWith('f:')) continue;
    if (isDeepStrictEqual(stored, valueAt(intent, path) ?? null)) continue;
    for (const entry of others) if (entry.set.has(path)) conflicts.push({ path, entry });
  }
  return conflicts;
}

function conflictError(current: JsonObject, conflicts: Conflict[]): ApiError {
  const byManager = new Map<string, { apiVersion: string; fields: string[] }>();
  for (const c of conflicts) {
    const id = c.entry.manager;
    const group = byManager.get(id) ?? { apiVersion: c.entry.apiVersion, fields: [] };
    group.fields.push(pathString(c.path));
    byManager.set(id, group);
  }
  const lines = [...byManager].map(([manager, g]) => (g.fields.length === 1 ? `conflict with "${manager}" using ${g.apiVersion}: ${g.fields[0]}` : `conflicts with "${manager}" using ${g.apiVersion}:\n${g.fields.map((f) => `- ${f}`).join('\n')}`));
  const n = conflicts.length;
  const causes: StatusCause[] = conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with "${c.entry.manager}" using ${c.entry.apiVersion}`, field: pathString(c.path) }));
  const meta = current.metadata as JsonObject;
  return new ApiError(
    409,
    'Conflict',
    `Apply failed with ${n} conflict${n === 1 ? '' : 's'}: ${lines.join('\n')}\n(apply again with --force-conflicts to take these fields over, or leave them out of the applied configuration)`,
    { name: String(meta.name), kind: String(current.kind), causes },
  );
}

/** After a removal, maps and lists it left empty go too, unless someone owns them as they are. */
function pruneEmptyParents(obj: JsonObject, path: FieldPath, entries: Entry[]): void {
  // Stop below the top level: `spec: {}` and `metadata: {}` stay for validation to judge.
  for (let n = path.length - 1; n >= 2; n--) {
    const parentPath = path.slice(0, n);
    const parent = valueAt(obj, parentPath);
    const empty = Array.isArray(parent) ? parent.length === 0 : isObject(parent) && Object.keys(parent).length === 0;
    if (!empty || entries.some((e) => e.set.has(parentPath))) return;
    removeAt(obj, parentPath);
  }
}

/** The applied configuration merged in: maps by member, keyed lists by key, sets by value; the rest replaced. */
function merge(target: JsonObject, applied: JsonObject, schema: Schema): void {
  for (const [k, v] of Object.entries(applied)) {
    if (v === null) {
      delete target[k];
      continue;
    }
    const current = getOwn(target, k);
    const meta = Object.hasOwn(schema, k) ? schema[k] : undefined;
    if (Array.isArray(v) && Array.isArray(current) && meta?.list === 'merge') {
      const key = meta.key;
      for (const item of v) {
        if (key === undefined) {
          if (!current.includes(item)) current.push(item);
          continue;
        }
        const match = current.find((o): o is JsonObject => isObject(o) && isObject(item) && getOwn(o, key) === getOwn(item, key));
        if (match) merge(match, item as JsonObject, meta.of ?? {});
        else current.push(clone(item));
      }
    } else if (isObject(v) && isObject(current)) merge(current, v, meta?.of ?? {});
    else setOwn(target, k, clone(v) as Json);
  }
}
