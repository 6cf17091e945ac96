// A CustomResourceDefinition's openAPIV3Schema as the API server uses it: whether it is structural
// (Kubernetes' rules, so that it can be checked and published), and an Ajv validator made from it
// that checks a custom resource's types, required fields, enums, patterns, bounds and formats and
// refuses every field the schema does not name, then its list types and CEL rules (crd-rules.ts).
// What ambit cannot evaluate is said in README.md.

import { Ajv, type ValidateFunction } from 'ajv';
import { customResourceMetadata } from '../../shared/resources/schemas.js';
import { describeAjvError } from '../../shared/resources/validate.js';
import type { StatusCause } from './errors.js';
import type { FieldMeta, Schema as MergeSchema } from './merge-keys.js';
import { compileSchemaRules, ruleProblems, type SchemaRules } from './crd-rules.js';

import type { JsonSchemaProps } from '../../shared/kube/crds.js';

export type { JsonSchemaProps };

/** Keywords of JSONSchemaProps that apiextensions.k8s.io/v1 forbids in a CRD's schema. */
const forbidden = ['$ref', '$schema', 'id', 'definitions', 'dependencies', 'additionalItems', 'patternProperties'];
/** Value validations only: inside allOf/anyOf/oneOf/not a structural schema may not say these. */
const notInJunctors = ['type', 'additionalProperties', 'default', 'nullable', 'description', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource', 'x-kubernetes-int-or-string', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-map-type'];
const types = ['object', 'array', 'string', 'integer', 'number', 'boolean'];
const junctors = ['allOf', 'anyOf', 'oneOf'] as const;

const isObject = (v: unknown): v is JsonSchemaProps => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The ways `schema` is not structural or not allowed, each naming its field under `base`
 * (`spec.versions[0].schema.openAPIV3Schema`), as the real server's 422 does.
 */
export function structuralProblems(schema: unknown, base: string): StatusCause[] {
  const out: StatusCause[] = [];
  const add = (field: string, message: string, reason = 'FieldValueInvalid') => out.push({ reason, field, message });
  if (!isObject(schema)) {
    add(base, 'Required value: schemas are required', 'FieldValueRequired');
    return out;
  }
  if (schema.type !== 'object') add(`${base}.type`, 'Required value: must be object at the root', schema.type === undefined ? 'FieldValueRequired' : 'FieldValueInvalid');
  const meta = (schema.properties as JsonSchemaProps | undefined)?.metadata;
  if (isObject(meta)) {
    const extra = Object.keys((meta.properties as JsonSchemaProps | undefined) ?? {}).filter((k) => k !== 'name' && k !== 'generateName');
    if (extra.length) add(`${base}.properties[metadata]`, `Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified (found ${extra.join(', ')})`, 'FieldValueForbidden');
  }
  walk(schema, base, false, add);
  return out;
}

function walk(s: JsonSchemaProps, path: string, inJunctor: boolean, add: (field: string, message: string, reason?: string) => void): void {
  for (const k of forbidden) if (k in s) add(`${path}.${k}`, `Forbidden: ${k} is not supported`, 'FieldValueForbidden');
  if (s.uniqueItems === true) add(`${path}.uniqueItems`, 'Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic', 'FieldValueForbidden');
  if (inJunctor) {
    for (const k of notInJunctors) if (k in s) add(`${path}.${k}`, `Forbidden: must be empty to be structural (${k} inside allOf, anyOf, oneOf or not)`, 'FieldValueForbidden');
  } else {
    const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
    const intOrString = s['x-kubernetes-int-or-string'] === true;
    if (s.type === undefined && !preserve && !intOrString) add(`${path}.type`, 'Required value: must not be empty for specified object fields', 'FieldValueRequired');
    if (s.type !== undefined && !types.includes(String(s.type))) add(`${path}.type`, `Unsupported value: ${JSON.stringify(s.type)}: supported values: ${types.map((t) => JSON.stringify(t)).join(', ')}`, 'FieldValueNotSupported');
    if (intOrString && s.type !== undefined) add(`${path}.type`, 'Forbidden: must be empty if x-kubernetes-int-or-string is true', 'FieldValueForbidden');
    if (s.type === 'array' && !isObject(s.items)) add(`${path}.items`, 'Required value: must be specified for an array', 'FieldValueRequired');
  }
  if (s.properties !== undefined && s.additionalProperties !== undefined && s.additionalProperties !== false) {
    add(`${path}.additionalProperties`, 'Forbidden: additionalProperties and properties are mutual exclusive', 'FieldValueForbidden');
  }
  const listType = s['x-kubernetes-list-type'];
  if (listType !== undefined && !['atomic', 'set', 'map'].includes(String(listType))) add(`${path}.x-kubernetes-list-type`, `Unsupported value: ${JSON.stringify(listType)}: supported values: "atomic", "set", "map"`, 'FieldValueNotSupported');
  if (listType === 'map') {
    const keys = s['x-kubernetes-list-map-keys'];
    if (!Array.isArray(keys) || keys.length === 0) add(`${path}.x-kubernetes-list-map-keys`, 'Required value: must not be empty if x-kubernetes-list-type is map', 'FieldValueRequired');
  }
  if (isObject(s.properties)) for (const [k, v] of Object.entries(s.properties)) if (isObject(v)) walk(v, `${path}.properties[${k}]`, inJunctor, add);
  if (isObject(s.items)) walk(s.items, `${path}.items`, inJunctor, add);
  else if (s.items !== undefined) add(`${path}.items`, 'Forbidden: items must be a schema object, not an array', 'FieldValueForbidden');
  if (isObject(s.additionalProperties)) walk(s.additionalProperties, `${path}.additionalProperties`, inJunctor, add);
  for (const j of junctors) {
    const list = s[j];
    if (list === undefined) continue;
    if (!Array.isArray(list)) add(`${path}.${j}`, 'Invalid value: must be a list of schemas');
    else list.forEach((x, i) => isObject(x) && !(s['x-kubernetes-int-or-string'] === true && isIntOrStringAlternatives(j, list, i)) && walk(x, `${path}.${j}[${i}]`, true, add));
  }
  if (isObject(s.not)) walk(s.not, `${path}.not`, true, add);
}

/**
 * The one place a structural schema may say `type` inside a junctor: beside
 * x-kubernetes-int-or-string, `anyOf: [{type: integer}, {type: string}]` (or that anyOf as the first
 * allOf), which kubebuilder and Istio's generator write for an IntOrString field.
 */
function isIntOrStringAlternatives(junctor: (typeof junctors)[number], list: unknown[], index: number): boolean {
  const pair = (l: unknown) => JSON.stringify(l) === '[{"type":"integer"},{"type":"string"}]';
  if (junctor === 'anyOf') return pair(list);
  return junctor === 'allOf' && index === 0 && isObject(list[0]) && Object.keys(list[0]).length === 1 && pair(list[0].anyOf);
}

// Formats Kubernetes checks (k8s.io/kube-openapi's strfmt); others are accepted and not checked, as there.
const formats: Record<string, RegExp | ((v: string) => boolean)> = {
  'date-time': (v) => /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(v) && !Number.isNaN(Date.parse(v)),
  date: /^\d{4}-\d{2}-\d{2}$/,
  byte: /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/,
  uuid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/,
  ipv4: /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)$/,
  hostname: /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/,
  email: /^[^@\s]+@[^@\s]+\.[^@\s]+$/,
  int32: () => true,
  int64: () => true,
};
const numberFormats: Record<string, (n: number) => boolean> = {
  int32: (n) => n >= -2147483648 && n <= 2147483647,
  // Beyond 2^53 a JSON number is already rounded by the parser; anything integral that reached here fits.
  int64: (n) => Number.isInteger(n) && Math.abs(n) <= 2 ** 63,
};

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: true });
for (const [name, f] of Object.entries(formats)) ajv.addFormat(name, { type: 'string', validate: typeof f === 'function' ? f : (v: string) => f.test(v) });
for (const [name, f] of Object.entries(numberFormats)) ajv.addFormat(`${name}-number`, { type: 'number', validate: f });

/**
 * The JSON Schema Ajv checks a custom resource with: the CRD's schema with every object closed
 * (unless it preserves unknown fields or declares additionalProperties), OpenAPI's nullable and
 * exclusive bounds in JSON Schema's words, Kubernetes' extensions spelled out, and the metadata every
 * object has (checked as the server checks it, whatever the schema says).
 */
export function toJsonSchema(s: JsonSchemaProps, namespaced: boolean, root = true): JsonSchemaProps {
  const out: JsonSchemaProps = {};
  for (const k of ['enum', 'minimum', 'maximum', 'multipleOf', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'minProperties', 'maxProperties', 'required']) if (s[k] !== undefined) out[k] = s[k];
  if (s.exclusiveMinimum === true && typeof s.minimum === 'number') {
    out.exclusiveMinimum = s.minimum;
    delete out.minimum;
  }
  if (s.exclusiveMaximum === true && typeof s.maximum === 'number') {
    out.exclusiveMaximum = s.maximum;
    delete out.maximum;
  }
  let type: string | string[] | undefined = typeof s.type === 'string' ? s.type : undefined;
  if (s['x-kubernetes-int-or-string'] === true) type = ['integer', 'string'];
  if (type !== undefined) out.type = s.nullable === true ? [...(Array.isArray(type) ? type : [type]), 'null'] : type;
  if (s.nullable === true && Array.isArray(out.enum)) out.enum = [...(out.enum as unknown[]), null];
  if (typeof s.format === 'string') {
    if (type === 'string' && s.format in formats) out.format = s.format;
    else if ((type === 'integer' || type === 'number') && s.format in numberFormats) out.format = `${s.format}-number`;
  }
  const properties: Record<string, JsonSchemaProps> = {};
  if (isObject(s.properties)) for (const [k, v] of Object.entries(s.properties)) if (isObject(v)) properties[k] = toJsonSchema(v, namespaced, false);
  const embedded = s['x-kubernetes-embedded-resource'] === true;
  if (root || embedded) {
    properties.apiVersion = { type: 'string' };
    properties.kind = { type: 'string' };
    properties.metadata = root ? customResourceMetadata(namespaced) : { type: 'object' };
    if (embedded) out.required = [...new Set([...((out.required as string[] | undefined) ?? []), 'apiVersion', 'kind'])];
  }
  if (Object.keys(properties).length) out.properties = properties;
  if (isObject(s.additionalProperties)) out.additionalProperties = toJsonSchema(s.additionalProperties, namespaced, false);
  else if (typeof s.additionalProperties === 'boolean') out.additionalProperties = s.additionalProperties;
  else if (type === 'object' && s['x-kubernetes-preserve-unknown-fields'] !== true) out.additionalProperties = false;
  // An object given neither properties nor additionalProperties nor preserve-unknown-fields holds nothing, as in Kubernetes (everything would be pruned).
  if (isObject(s.items)) out.items = toJsonSchema(s.items, namespaced, false);
  for (const j of junctors) if (Array.isArray(s[j])) out[j] = (s[j] as unknown[]).filter(isObject).map((x) => toJsonSchema(x, namespaced, false));
  if (isObject(s.not)) out.not = toJsonSchema(s.not, namespaced, false);
  return out;
}

/** The causes an object breaks; `old` is the stored object on an update (for CEL transition rules). */
export type ObjectValidator = (obj: unknown, old?: unknown) => StatusCause[];

// Compiling is the expensive part (tens of milliseconds for a mesh kind's schema), so validators
// are kept by their schema's text: the same CRD on every start, in every API server of a process,
// compiles once. The oldest go past the bound, and Ajv forgets them too.
const compiled = new Map<string, { schema: JsonSchemaProps; validate: ValidateFunction }>();
const maxCompiled = 128;

function compile(schema: JsonSchemaProps, namespaced: boolean): ValidateFunction {
  const key = `${namespaced ? 'n' : 'c'}${JSON.stringify(schema)}`;
  let hit = compiled.get(key);
  if (hit) {
    compiled.delete(key);
  } else {
    const json = toJsonSchema(schema, namespaced);
    hit = { schema: json, validate: ajv.compile(json) };
    if (compiled.size >= maxCompiled) {
      const [oldest, entry] = compiled.entries().next().value as [string, { schema: JsonSchemaProps }];
      compiled.delete(oldest);
      ajv.removeSchema(entry.schema);
    }
  }
  compiled.set(key, hit);
  return hit.validate;
}

/** Throws what Ajv cannot compile (a pattern that is no regular expression). */
export function checkCompiles(schema: JsonSchemaProps, namespaced: boolean): void {
  compile(schema, namespaced);
}

/**
 * A validator for objects of one CRD version; each problem names its field (`spec.replicas`). It
 * compiles on first use, so serving a CRD costs nothing until an object of it is written.
 */
export function objectValidator(schema: JsonSchemaProps, namespaced: boolean): ObjectValidator {
  let fn: ValidateFunction | undefined;
  let rules: SchemaRules | undefined;
  return (obj, old) => {
    try {
      fn ??= compile(schema, namespaced);
    } catch (err) {
      return [{ reason: 'FieldValueInvalid', field: '', message: `the CustomResourceDefinition's schema cannot be checked (${(err as Error).message}); fix the CRD` }];
    }
    const validate = fn;
    // List uniqueness and CEL rules run on what the schema's types allow, so after it passes.
    if (validate(obj)) return ruleProblems((rules ??= compileSchemaRules(schema)), schema, obj, old);
    const seen = new Set<string>();
    const causes: StatusCause[] = [];
    for (const e of validate.errors ?? []) {
      if (e.keyword === 'oneOf' || e.keyword === 'anyOf' || e.keyword === 'allOf') continue;
      const d = describeAjvError(e);
      if (seen.has(d.field)) continue;
      seen.add(d.field);
      const reason = e.keyword === 'required' ? 'FieldValueRequired' : e.keyword === 'additionalProperties' ? 'FieldValueInvalid' : e.keyword === 'enum' ? 'FieldValueNotSupported' : e.keyword === 'type' ? 'FieldValueTypeInvalid' : 'FieldValueInvalid';
      const message = e.keyword === 'additionalProperties' ? 'field not declared in schema' : d.message;
      causes.push({ reason, field: d.field, message });
    }
    return causes;
  };
}

/**
 * The lists server-side apply merges in objects of this schema (merge-keys.ts's form): those marked
 * x-kubernetes-list-type `set`, or `map` with one key; every other list is atomic, as Kubernetes
 * treats a list with no list type.
 */
export function mergeSchemaOf(s: JsonSchemaProps): MergeSchema {
  const out: MergeSchema = {};
  if (!isObject(s.properties)) return out;
  for (const [k, v] of Object.entries(s.properties)) {
    if (!isObject(v)) continue;
    const meta: FieldMeta = {};
    const items = isObject(v.items) ? v.items : undefined;
    const keys = v['x-kubernetes-list-map-keys'];
    if (v['x-kubernetes-list-type'] === 'set') meta.list = 'merge';
    else if (v['x-kubernetes-list-type'] === 'map' && Array.isArray(keys) && keys.length === 1) {
      meta.list = 'merge';
      meta.key = String(keys[0]);
    }
    const of = mergeSchemaOf(items ?? v);
    if (Object.keys(of).length) meta.of = of;
    if (Object.keys(meta).length) out[k] = meta;
  }
  return out;
}
