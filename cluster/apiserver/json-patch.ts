// JSON patch (RFC 6902) over JSON pointers (RFC 6901): add, remove, replace, move, copy and test,
// applied in order to a copy, all or nothing. What the API server adds around it (the object's
// identity, resourceVersion) is patch.ts's concern.
//
// Errors follow the Kubernetes API server: a body that is not a JSON array of operations is 400
// BadRequest; an operation that cannot be applied (a missing path, a failed test) is 422, naming
// the operation by its index so a user can find it in a long patch.

import { isDeepStrictEqual } from 'node:util';
import { ApiError } from './errors.js';
import { clone, getOwn, isObject, parseJson, setOwn, show, type Json, type JsonObject } from './json.js';

export interface JsonPatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test';
  path: string;
  from?: string;
  value?: Json;
}

const ops = ['add', 'remove', 'replace', 'move', 'copy', 'test'];

/** The operations in a JSON patch body. Throws ApiError 400 (not JSON, not an array) or 422 (a malformed operation). */
export function parseJsonPatch(body: string): JsonPatchOperation[] {
  const doc = parseJson(body, 'json patch');
  if (!Array.isArray(doc)) throw new ApiError(400, 'BadRequest', 'a json patch must be a JSON array of operations, e.g. [{"op":"replace","path":"/spec/replicas","value":3}]');
  return doc.map((o, i) => {
    const at = `json patch operation ${i}`;
    if (!isObject(o)) throw invalid(`${at} is ${show(o)}, not an object with "op" and "path"`);
    const op = getOwn(o, 'op');
    if (typeof op !== 'string' || !ops.includes(op)) throw invalid(`${at}: "op" is ${show(op)}; it must be one of ${ops.join(', ')}`);
    const path = getOwn(o, 'path');
    if (typeof path !== 'string') throw invalid(`${at} (${op}): "path" is missing or not a string`);
    const from = getOwn(o, 'from');
    if ((op === 'move' || op === 'copy') && typeof from !== 'string') throw invalid(`${at} (${op}): "from" is missing or not a string`);
    // RFC 6902 4.1: "value" must be present for add, replace and test, though it may be null.
    if ((op === 'add' || op === 'replace' || op === 'test') && !Object.hasOwn(o, 'value')) throw invalid(`${at} (${op} ${path}): "value" is missing`);
    return { op: op as JsonPatchOperation['op'], path, ...(typeof from === 'string' ? { from } : {}), ...(Object.hasOwn(o, 'value') ? { value: o.value } : {}) };
  });
}

/** `doc` with `patch` applied; `doc` itself is left as it was. Throws ApiError 422 at the first operation that fails. */
export function applyJsonPatch(doc: Json, patch: JsonPatchOperation[]): Json {
  let root = clone(doc);
  patch.forEach((op, i) => {
    const at = `json patch operation ${i} (${op.op} ${op.path})`;
    const path = parsePointer(op.path, at);
    switch (op.op) {
      case 'add':
        root = add(root, path, clone(op.value as Json), at);
        break;
      case 'remove':
        root = remove(root, path, at).root;
        break;
      case 'replace':
        // RFC 6902 4.3: the target must exist; replace is remove then add at the same place.
        get(root, path, at);
        root = put(root, path, clone(op.value as Json), at);
        break;
      case 'move': {
        const from = parsePointer(op.from as string, at);
        // RFC 6902 4.4: a location cannot be moved into one of its own children.
        if (from.length < path.length && from.every((t, k) => t === path[k])) throw invalid(`${at}: cannot move ${op.from} into its own child ${op.path}`);
        const taken = remove(root, from, at);
        root = add(taken.root, path, taken.value, at);
        break;
      }
      case 'copy':
        root = add(root, path, clone(get(root, parsePointer(op.from as string, at), at)), at);
        break;
      case 'test': {
        const actual = get(root, path, at);
        // JSON.parse gives numbers as numbers, so 1 and 1.0 compare equal, as RFC 6902 4.6 asks.
        if (!isDeepStrictEqual(actual, op.value)) throw invalid(`${at}: test failed: the value at ${op.path} is ${show(actual)}, not ${show(op.value)}`);
        break;
      }
    }
  });
  return root;
}

/** The reference tokens of an RFC 6901 pointer: '' is the whole document, '/a~1b/~0c' is ['a/b', '~c']. */
export function parsePointer(pointer: string, at: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw invalid(`${at}: ${show(pointer)} is not a JSON pointer; it must be empty or start with "/"`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => {
      if (/~[^01]|~$/.test(token)) throw invalid(`${at}: ${show(pointer)} has a "~" that is neither "~0" (for ~) nor "~1" (for /)`);
      // RFC 6901 4: ~1 first, then ~0, so that "~01" reads as "~1" and not "/".
      return token.replace(/~1/g, '/').replace(/~0/g, '~');
    });
}

function add(root: Json, path: string[], value: Json, at: string): Json {
  if (path.length === 0) return value;
  const parent = get(root, path.slice(0, -1), at);
  const token = path[path.length - 1];
  if (Array.isArray(parent)) {
    const index = token === '-' ? parent.length : arrayIndex(token, at);
    if (index > parent.length) throw invalid(`${at}: index ${index} is past the end of the array (length ${parent.length})`);
    parent.splice(index, 0, value);
  } else if (isObject(parent)) setOwn(parent, token, value);
  else throw invalid(`${at}: the parent of the path is ${show(parent)}, neither an object nor an array`);
  return root;
}

/** Sets an existing location (replace): objects take the member, arrays the element in place. */
function put(root: Json, path: string[], value: Json, at: string): Json {
  if (path.length === 0) return value;
  const parent = get(root, path.slice(0, -1), at) as JsonObject | Json[];
  const token = path[path.length - 1];
  if (Array.isArray(parent)) parent[arrayIndex(token, at)] = value;
  else setOwn(parent, token, value);
  return root;
}

function remove(root: Json, path: string[], at: string): { root: Json; value: Json } {
  const value = get(root, path, at);
  if (path.length === 0) throw invalid(`${at}: cannot remove the whole object`);
  const parent = get(root, path.slice(0, -1), at) as JsonObject | Json[];
  const token = path[path.length - 1];
  if (Array.isArray(parent)) parent.splice(arrayIndex(token, at), 1);
  else delete parent[token];
  return { root, value };
}

/** The value at `path`; a path that does not exist is a 422 that names the first missing step. */
function get(root: Json, path: string[], at: string): Json {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    const token = path[i];
    const here = '/' + path.slice(0, i + 1).map((t) => t.replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
    if (Array.isArray(node)) {
      const index = token === '-' ? node.length : arrayIndex(token, at);
      if (index >= node.length) throw invalid(`${at}: ${here} does not exist (the array has ${node.length} elements)`);
      node = node[index];
    } else if (isObject(node)) {
      const next = getOwn(node, token);
      if (next === undefined) throw invalid(`${at}: ${here} does not exist`);
      node = next;
    } else throw invalid(`${at}: ${here} does not exist (its parent is ${show(node)})`);
  }
  return node;
}

function arrayIndex(token: string, at: string): number {
  // RFC 6901 4: an array index is 0 or digits without a leading zero; "-" only where add allows it.
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw invalid(`${at}: ${show(token)} is not an array index`);
  return Number(token);
}

function invalid(message: string): ApiError {
  return new ApiError(422, 'Invalid', message);
}
