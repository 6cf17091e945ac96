// What the Kubernetes API server checks of a custom resource beyond what OpenAPI can say: items of an
// x-kubernetes-list-type set are unique, items of a map list unique by their keys, and every
// x-kubernetes-validations (CEL) rule holds, transition rules (oldSelf) against the stored object
// where Kubernetes correlates it. The schema's types and bounds are crd-schema.ts's (Ajv).

import { type CelBindings, type CompiledRule, compileRule, toCel, type ValidationRule } from './cel.js';
import type { JsonSchemaProps } from './crd-schema.js';
import type { StatusCause } from './errors.js';

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A schema's rules, compiled: those that run, those skipped (and why), those Kubernetes would refuse the CRD for. */
export interface SchemaRules {
  compiled: WeakMap<JsonSchemaProps, CompiledRule[]>;
  skipped: { path: string; rule: string; why: string }[];
  invalid: { path: string; rule: string; why: string }[];
}

/** Compiles every x-kubernetes-validations rule of `schema`, naming each by its place in the schema (`.spec.rules[*]`). */
export function compileSchemaRules(schema: JsonSchemaProps): SchemaRules {
  const out: SchemaRules = { compiled: new WeakMap(), skipped: [], invalid: [] };
  const walk = (s: JsonSchemaProps, path: string) => {
    const rules = s['x-kubernetes-validations'];
    if (Array.isArray(rules)) {
      const ok: CompiledRule[] = [];
      for (const r of rules as ValidationRule[]) {
        if (!isObject(r) || typeof r.rule !== 'string') continue;
        const c = compileRule(r);
        if ('ok' in c) ok.push(c.ok);
        else if ('skipped' in c) out.skipped.push({ path: path || '.', rule: r.rule, why: c.skipped });
        else out.invalid.push({ path: path || '.', rule: r.rule, why: c.invalid });
      }
      if (ok.length) out.compiled.set(s, ok);
    }
    if (isObject(s.properties)) for (const [k, v] of Object.entries(s.properties)) if (isObject(v)) walk(v, `${path}.${k}`);
    if (isObject(s.items)) walk(s.items, `${path}[*]`);
    if (isObject(s.additionalProperties)) walk(s.additionalProperties, `${path}[*]`);
  };
  walk(schema, '');
  return out;
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);
const typeName = (s: JsonSchemaProps, v: unknown) => (typeof s.type === 'string' ? s.type : Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v === 'object' ? 'object' : typeof v);

/** A map list's key of one item, as JSON (`{"name":"http"}`); undefined for an item that is no object. */
function mapKey(item: unknown, keys: string[]): string | undefined {
  if (!isObject(item)) return undefined;
  return JSON.stringify(Object.fromEntries(keys.map((k) => [k, item[k] ?? null])));
}

/** The causes `value` (under `schema`, at `path`) breaks; `old` is the stored value there, on update. */
export function ruleProblems(rules: SchemaRules, schema: JsonSchemaProps, value: unknown, old: unknown, path = ''): StatusCause[] {
  const out: StatusCause[] = [];
  walk(rules, schema, value, old, path, out);
  return out;
}

function walk(rules: SchemaRules, s: JsonSchemaProps, value: unknown, old: unknown, path: string, out: StatusCause[]): void {
  if (value === undefined || value === null) return;
  const compiled = rules.compiled.get(s);
  if (compiled) {
    let bindings: CelBindings | undefined;
    for (const c of compiled) {
      // A transition rule has nothing to compare with on create, or where the stored object cannot be correlated.
      if (c.usesOldSelf && (old === undefined || old === null)) continue;
      bindings ??= { self: toCel(s, value), ...(old !== undefined && old !== null ? { oldSelf: toCel(s, old) } : {}) };
      const result = c.evaluate(bindings);
      const field = c.rule.fieldPath ? `${path}${c.rule.fieldPath.startsWith('.') || c.rule.fieldPath.startsWith('[') ? '' : '.'}${c.rule.fieldPath}`.replace(/^\./, '') : path;
      if ('error' in result) {
        out.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(typeName(s, value))}: ${result.error} evaluating rule: ${c.rule.rule}` });
      } else if (result.value !== true) {
        const message = (result.value === false ? c.message?.(bindings) : undefined) ?? c.rule.message ?? `failed rule: ${c.rule.rule}`;
        if (result.value !== false) out.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(typeName(s, value))}: rule did not evaluate to a bool: ${c.rule.rule}` });
        else out.push(causeOf(c.rule.reason, field, typeName(s, value), message));
      }
    }
  }
  if (Array.isArray(value)) {
    const items = isObject(s.items) ? s.items : undefined;
    const listType = s['x-kubernetes-list-type'];
    const keys = Array.isArray(s['x-kubernetes-list-map-keys']) ? (s['x-kubernetes-list-map-keys'] as string[]) : [];
    const seen = new Set<string>();
    value.forEach((item, i) => {
      const id = listType === 'set' ? JSON.stringify(item) : listType === 'map' ? mapKey(item, keys) : undefined;
      if (id !== undefined) {
        if (seen.has(id)) out.push({ reason: 'FieldValueDuplicate', field: `${path}[${i}]`, message: `Duplicate value: ${listType === 'map' ? id : JSON.stringify(item)}` });
        seen.add(id);
      }
    });
    if (!items) return;
    // Only a map list's items are correlated with the stored ones (by their keys), as in Kubernetes.
    const olds = listType === 'map' && Array.isArray(old) ? new Map(old.map((o) => [mapKey(o, keys), o])) : undefined;
    value.forEach((item, i) => walk(rules, items, item, olds?.get(mapKey(item, keys)), `${path}[${i}]`, out));
    return;
  }
  if (!isObject(value)) return;
  const oldObject = isObject(old) ? old : undefined;
  const properties = isObject(s.properties) ? (s.properties as Record<string, JsonSchemaProps>) : undefined;
  if (properties) for (const [k, child] of Object.entries(properties)) if (isObject(child)) walk(rules, child, value[k], oldObject?.[k], join(path, k), out);
  if (isObject(s.additionalProperties)) {
    const child = s.additionalProperties;
    for (const [k, v] of Object.entries(value)) if (!properties?.[k]) walk(rules, child, v, oldObject?.[k], `${path}[${JSON.stringify(k)}]`, out);
  }
}

function causeOf(reason: string | undefined, field: string, type: string, message: string): StatusCause {
  switch (reason) {
    case 'FieldValueForbidden':
      return { reason, field, message: `Forbidden: ${message}` };
    case 'FieldValueRequired':
      return { reason, field, message: `Required value: ${message}` };
    case 'FieldValueDuplicate':
      return { reason, field, message: `Duplicate value: ${JSON.stringify(type)}: ${message}` };
    default:
      return { reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(type)}: ${message}` };
  }
}

/** The rules of `crds` the local API server skips, one line each (`<crd> <version> <path>: <why>: <rule>`), for the log at start. */
export function skippedRules(crds: { metadata: { name: string }; spec: { versions: { name: string; schema?: { openAPIV3Schema?: JsonSchemaProps } }[] } }[]): string[] {
  const out: string[] = [];
  for (const crd of crds) {
    for (const v of crd.spec.versions) {
      const schema = v.schema?.openAPIV3Schema;
      if (!schema) continue;
      for (const r of compileSchemaRules(schema).skipped) out.push(`${crd.metadata.name} ${v.name} ${r.path}: ${r.why}: ${r.rule}`);
    }
  }
  return out;
}
