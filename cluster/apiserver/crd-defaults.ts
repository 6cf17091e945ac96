// Defaulting of custom resources from their CRD version's structural schema, as the Kubernetes API
// server does on create and update (apiextensions-apiserver structuraldefaulting): a null where the
// schema does not allow one is dropped, then every property the object lacks and its schema gives a
// `default` for gets a copy of it, at every level, before the object is validated and stored.

import type { JsonSchemaProps } from './crd-schema.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Fills `value` (changed in place) with the defaults `schema` gives. Objects outside the schema are left as they are. */
export function applyDefaults(schema: JsonSchemaProps, value: unknown): void {
  if (Array.isArray(value)) {
    if (isObject(schema.items)) for (const item of value) applyDefaults(schema.items, item);
    return;
  }
  if (!isObject(value)) return;
  const properties = isObject(schema.properties) ? (schema.properties as Record<string, JsonSchemaProps>) : undefined;
  if (properties) {
    for (const [key, child] of Object.entries(properties)) {
      if (!isObject(child)) continue;
      if (value[key] === null && child.nullable !== true) {
        // A null the schema does not allow is pruned, and a default then applies as if it were absent.
        delete value[key];
      }
      if (value[key] === undefined && child.default !== undefined) value[key] = structuredClone(child.default);
      if (value[key] !== undefined) applyDefaults(child, value[key]);
    }
  }
  if (isObject(schema.additionalProperties)) {
    const child = schema.additionalProperties;
    for (const key of Object.keys(value)) {
      if (properties && key in properties) continue;
      if (value[key] === null && child.nullable !== true) {
        if (child.default === undefined) delete value[key];
        else value[key] = structuredClone(child.default);
      }
      applyDefaults(child, value[key]);
    }
  }
}
