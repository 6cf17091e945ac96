// Label and field selectors of list and watch requests, with the Kubernetes grammar and meaning:
// `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a` for labels; `=`, `==`, `!=` on
// the few fields each kind indexes for fields. A selector that does not parse is a 400 that says why.

import type { Resource } from '../../shared/resources/types.js';
import { badRequest } from './errors.js';

type LabelRequirement =
  | { op: 'exists' | 'notExists'; key: string }
  | { op: 'in' | 'notin'; key: string; values: string[] };

export type Selector = (r: Resource) => boolean;

const key = String.raw`[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const value = String.raw`(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;
const equality = new RegExp(`^(${key})\\s*(==|=|!=)\\s*(${value})$`);
const set = new RegExp(`^(${key})\\s+(in|notin)\\s*\\(([^()]*)\\)$`);
const exists = new RegExp(`^(!?)\\s*(${key})$`);

/** Splits at commas outside parentheses: `a in (x,y),b` is two terms. */
function terms(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')') depth--;
    else if (text[i] === ',' && depth === 0) {
      out.push(text.slice(start, i));
      start = i + 1;
    }
  }
  out.push(text.slice(start));
  return out.map((t) => t.trim()).filter((t) => t !== '');
}

function parseLabelTerm(term: string): LabelRequirement {
  let m = equality.exec(term);
  if (m) return { op: m[2] === '!=' ? 'notin' : 'in', key: m[1]!, values: [m[3]!] };
  m = set.exec(term);
  if (m) {
    const values = m[3]!.split(',').map((v) => v.trim());
    if (values.some((v) => !new RegExp(`^${value}$`).test(v))) throw badRequest(`unable to parse requirement: invalid label value in "${term}"`);
    return { op: m[2] as 'in' | 'notin', key: m[1]!, values };
  }
  m = exists.exec(term);
  if (m) return { op: m[1] ? 'notExists' : 'exists', key: m[2]! };
  throw badRequest(`unable to parse requirement: "${term}" is not a label selector term (key, !key, key=value, key!=value, key in (a,b), key notin (a,b))`);
}

/** A `labelSelector` query parameter as a predicate; an empty one matches everything. */
export function labelSelector(text: string | null): Selector {
  if (!text) return () => true;
  const reqs = terms(text).map(parseLabelTerm);
  return (r) => {
    const labels = r.metadata.labels ?? {};
    return reqs.every((q) => {
      const has = Object.hasOwn(labels, q.key);
      switch (q.op) {
        case 'exists':
          return has;
        case 'notExists':
          return !has;
        case 'in':
          return has && q.values.includes(labels[q.key]!);
        case 'notin':
          // As in Kubernetes: != and notin also match objects without the label.
          return !has || !q.values.includes(labels[q.key]!);
      }
    });
  };
}

type FieldGetter = (r: Resource) => string | undefined;

const commonFields: Record<string, FieldGetter> = {
  'metadata.name': (r) => r.metadata.name,
  'metadata.namespace': (r) => r.metadata.namespace ?? '',
};

const spec = (r: Resource) => (r.spec ?? {}) as Record<string, unknown>;
const status = (r: Resource) => (r.status ?? {}) as Record<string, unknown>;
const str = (v: unknown) => (typeof v === 'string' ? v : '');

/** The fields each kind can be selected on, beyond name and namespace (the real server's field labels for pods). */
const top = (r: Resource) => r as unknown as Record<string, unknown>;
const involved = (field: string): FieldGetter => (r) => str(((top(r).involvedObject ?? {}) as Record<string, unknown>)[field]);

const kindFields: Record<string, Record<string, FieldGetter>> = {
  // What `kubectl describe` selects an object's events by, and the rest of the real server's set.
  Event: {
    'involvedObject.kind': involved('kind'),
    'involvedObject.namespace': involved('namespace'),
    'involvedObject.name': involved('name'),
    'involvedObject.uid': involved('uid'),
    'involvedObject.apiVersion': involved('apiVersion'),
    'involvedObject.resourceVersion': involved('resourceVersion'),
    'involvedObject.fieldPath': involved('fieldPath'),
    reason: (r) => str(top(r).reason),
    reportingComponent: (r) => str(top(r).reportingComponent),
    source: (r) => str(((top(r).source ?? {}) as Record<string, unknown>).component),
    type: (r) => str(top(r).type),
  },
  Pod: {
    'spec.nodeName': (r) => str(spec(r).nodeName),
    'spec.serviceAccountName': (r) => str(spec(r).serviceAccountName) || 'default',
    'status.phase': (r) => str(status(r).phase),
    'status.podIP': (r) => str(status(r).podIP),
  },
};

/** A `fieldSelector` query parameter for `kind` as a predicate; a field the kind does not index is a 400 naming it. */
export function fieldSelector(kind: string, text: string | null): Selector {
  if (!text) return () => true;
  const fields = { ...commonFields, ...kindFields[kind] };
  const reqs = terms(text).map((term) => {
    const m = /^([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw badRequest(`invalid field selector term "${term}": expected field=value, field==value or field!=value`);
    const get = fields[m[1]!];
    if (!get) throw badRequest(`field label not supported: ${m[1]} (${kind} supports ${Object.keys(fields).join(', ')})`);
    return { get, negate: m[2] === '!=', value: m[3]! };
  });
  return (r) => reqs.every((q) => (q.get(r) === q.value) !== q.negate);
}
