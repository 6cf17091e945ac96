// The JSON values the patch strategies walk: their types, parsing a request body into one (400 on
// bad JSON, as the API server answers), and own-property access that a `__proto__` key cannot
// turn into a prototype change. The strategies themselves live in their own modules.

import { ApiError } from './errors.js';

export type Json = null | boolean | number | string | Json[] | JsonObject;
export interface JsonObject {
  [key: string]: Json;
}

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `body` parsed as JSON; a body that is not JSON is the client's fault (400 BadRequest). */
export function parseJson(body: string, what: string): Json {
  try {
    return JSON.parse(body) as Json;
  } catch (err) {
    throw new ApiError(400, 'BadRequest', `the ${what} body is not valid JSON: ${(err as Error).message}`);
  }
}

/** The member `key` of `o` if `o` itself has it (never one inherited from Object.prototype). */
export function getOwn(o: JsonObject, key: string): Json | undefined {
  return Object.hasOwn(o, key) ? o[key] : undefined;
}

/**
 * Sets `o[key]` as an own property. Plain assignment of `__proto__` would change the object's
 * prototype instead; JSON.parse makes it an own member, and so must every write after it.
 */
export function setOwn(o: JsonObject, key: string, value: Json): void {
  if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  else o[key] = value;
}

export function clone<T>(v: T): T {
  return structuredClone(v);
}

/** How a value reads in an error message: JSON, cut short. */
export function show(v: unknown): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
