// The small pieces every kind's JSON Schema is built from (schemas.ts, pod-schemas.ts): closed
// objects, Kubernetes' name and label patterns, ports, label selectors. Kept apart so the schema
// modules import them one way and never each other in a cycle.

export type Schema = Record<string, unknown>;

export const dns1123Label = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const dns1123Subdomain = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
// Label keys: an optional DNS-subdomain prefix and a name of up to 63 characters.
export const labelKey = '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$';
export const labelValue = '^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$';

export const ipv4Pattern = '^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$';

export function closed(properties: Record<string, Schema>, required: string[] = []): Schema {
  return { type: 'object', properties, required, additionalProperties: false };
}

export const str: Schema = { type: 'string' };
export const bool: Schema = { type: 'boolean' };
export const nonNegative: Schema = { type: 'integer', minimum: 0 };
export const labels: Schema = {
  type: 'object',
  propertyNames: { pattern: labelKey, maxLength: 316 },
  additionalProperties: { type: 'string', pattern: labelValue },
};
export const annotations: Schema = { type: 'object', additionalProperties: { type: 'string' } };
export const port: Schema = { type: 'integer', minimum: 1, maximum: 65535 };
/** IntOrString, as Kubernetes marks it: a number, or a string such as a port name or `25%`. */
export const intOrString: Schema = { oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', minLength: 1 }] };
export const stringList: Schema = { type: 'array', items: { type: 'string', minLength: 1 } };
export const labelSelector: Schema = closed({
  matchLabels: labels,
  matchExpressions: { type: 'array', items: closed({ key: { type: 'string', pattern: labelKey }, operator: { enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'] }, values: { type: 'array', items: { type: 'string' } } }, ['key', 'operator']) },
});
