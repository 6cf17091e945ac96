// Validation of resources before anything is stored: the JSON Schema of each kind (Ajv), the rules a
// schema cannot say (a selector that matches its template), and references to other resources.
// Every problem names the resource and the field; the caller refuses the whole batch on any problem.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { FieldProblem } from '../errors.js';
import { kindInfo, kinds } from './kinds.js';
import { ipv4Pattern, schemas } from './schemas.js';
import { waypointForLabels, waypointForValues, waypointGatewayClass, waypointHbonePort, waypointWorkers, workersAnnotation } from '../waypoint/names.js';
import { type Deployment, keyOf, type Resource, resourceName, type Service } from './types.js';
import { rateLimitProblems } from '../policy/http/rate-limit.js';

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map<string, ValidateFunction>(Object.entries(schemas).map(([kind, s]) => [kind, ajv.compile(s)]));

const patternHelp: Record<string, string> = {
  '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$': "must be a DNS label: lower-case letters, digits and '-', starting and ending with a letter or digit",
  [ipv4Pattern]: 'must be an IPv4 address',
};

/** `/spec/containers/0/command` -> `spec.containers[0].command` */
export function fieldPath(instancePath: string, child?: string): string {
  const parts = instancePath.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  if (child !== undefined) parts.push(child);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out;
}

export function describeAjvError(e: ErrorObject): { field: string; message: string } {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return { field: fieldPath(e.instancePath, String(p.additionalProperty)), message: 'is not a known field' };
    case 'required':
      return { field: fieldPath(e.instancePath, String(p.missingProperty)), message: 'is required' };
    case 'const':
      return { field: fieldPath(e.instancePath), message: `must be ${JSON.stringify(p.allowedValue)}` };
    case 'enum':
      return { field: fieldPath(e.instancePath), message: `must be one of ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'type':
      return { field: fieldPath(e.instancePath), message: `must be of type ${String(p.type)}` };
    case 'pattern':
      return { field: fieldPath(e.instancePath), message: patternHelp[String(p.pattern)] ?? `must match ${String(p.pattern)}` };
    case 'propertyNames':
      return { field: fieldPath(e.instancePath, String(p.propertyName)), message: 'is not a valid label key' };
    default:
      return { field: fieldPath(e.instancePath), message: e.message ?? e.keyword };
  }
}

/**
 * Schema and per-resource rules; needs nothing but the resources themselves. `api`: the caller is the
 * Kubernetes API server, which alone checks and establishes a CustomResourceDefinition.
 */
export function validateResources(resources: unknown[], o: { api?: boolean } = {}): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const seen = new Map<string, number>();
  resources.forEach((raw, index) => {
    const add = (field: string, message: string, resource = describe(raw)) => problems.push({ index, resource, field, message });
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      add('', 'must be a mapping with apiVersion, kind and metadata');
      return;
    }
    // Before anything walks it recursively (JSON.stringify, structuredClone, the store's log): a
    // value nested thousands deep overflows the stack. No kind needs more than a few levels.
    if (nestedDeeperThan(raw, maxDepth)) {
      add('', `is nested deeper than ${maxDepth} levels`);
      return;
    }
    const r = raw as Resource;
    const info = typeof r.kind === 'string' ? kindInfo(r.kind) : undefined;
    if (!info) {
      add('kind', r.kind === undefined ? 'is required' : `${JSON.stringify(r.kind)} is not a known kind (known: ${kinds.filter((k) => k.userApplied && k.kind !== 'CustomResourceDefinition').map((k) => k.kind).join(', ')})`);
      return;
    }
    if (info.kind === 'CustomResourceDefinition' && !o.api) {
      add('kind', 'a CustomResourceDefinition is applied through the Kubernetes API (kubectl apply), which checks and establishes it');
      return;
    }
    if (!info.userApplied) {
      add('kind', `${info.kind} is made by ambit, not applied${info.kind === 'Pod' ? '; apply a Deployment instead' : ''}`);
      return;
    }
    const validate = validators.get(info.kind)!;
    if (!validate(r)) {
      const fields = new Set<string>();
      for (const e of validate.errors ?? []) {
        // oneOf reports each branch; the branch errors say more than the summary.
        if (e.keyword === 'oneOf') continue;
        const d = describeAjvError(e);
        if (fields.has(d.field)) continue;
        fields.add(d.field);
        add(d.field, d.message);
      }
      return;
    }
    if (info.namespaced && !r.metadata.namespace) r.metadata.namespace = 'default';
    const key = keyOf({ kind: r.kind, namespace: r.metadata.namespace ?? '', name: r.metadata.name });
    if (seen.has(key)) add('metadata.name', `appears twice in this apply (also resource ${seen.get(key)! + 1})`);
    seen.set(key, index);
    checkOwnerReferences(r, add);
    if (r.kind === 'Deployment' || r.kind === 'DaemonSet') checkDeployment(r as Deployment, add);
    if (r.kind === 'Service') checkService(r as Service, add);
    if (r.kind === 'Gateway') checkGateway(r, add);
  });
  return problems;
}

/** What Kubernetes' ValidateOwnerReferences refuses beyond the shape: one owner twice, two controllers. */
function checkOwnerReferences(r: Resource, add: (field: string, message: string) => void): void {
  const refs = r.metadata.ownerReferences ?? [];
  const uids = new Set<string>();
  let controller: string | undefined;
  refs.forEach((o, i) => {
    if (uids.has(o.uid)) add(`metadata.ownerReferences[${i}].uid`, `${o.uid} appears twice`);
    uids.add(o.uid);
    if (!o.controller) return;
    if (controller) add('metadata.ownerReferences', `only one reference can have controller set to true; found it on ${controller} and ${o.kind}/${o.name}`);
    controller ??= `${o.kind}/${o.name}`;
  });
}

function checkDeployment(d: Deployment, add: (field: string, message: string) => void): void {
  const labels = d.spec!.template.metadata?.labels ?? {};
  for (const [k, v] of Object.entries(d.spec!.selector.matchLabels)) {
    if (labels[k] !== v) add(`spec.selector.matchLabels.${k}`, `does not match spec.template.metadata.labels (${k}=${labels[k] ?? '<unset>'})`);
  }
  const names = new Set<string>();
  d.spec!.template.spec.containers.forEach((c, i) => {
    if (names.has(c.name)) add(`spec.template.spec.containers[${i}].name`, `${c.name} is used by two containers`);
    names.add(c.name);
  });
}

function checkService(s: Service, add: (field: string, message: string) => void): void {
  const ports = s.spec!.ports;
  const numbers = new Set<number>();
  const names = new Set<string>();
  ports.forEach((p, i) => {
    if (ports.length > 1 && !p.name) add(`spec.ports[${i}].name`, 'is required when a Service has more than one port');
    if (p.name && names.has(p.name)) add(`spec.ports[${i}].name`, `${p.name} is used by two ports`);
    if (numbers.has(p.port)) add(`spec.ports[${i}].port`, `${p.port} is used by two ports`);
    if (p.name) names.add(p.name);
    numbers.add(p.port);
  });
}

/**
 * A Gateway of the waypoint class is ambit's to run, and a waypoint takes HBONE on 15008 only (as
 * Istio's waypoint class requires); other classes belong to other controllers and are stored as they are.
 */
function checkGateway(g: Resource, add: (field: string, message: string) => void): void {
  const spec = g.spec as { gatewayClassName: string; listeners: { port: number; protocol: string }[] };
  if (spec.gatewayClassName !== waypointGatewayClass) return;
  spec.listeners.forEach((l, i) => {
    if (l.protocol !== 'HBONE') add(`spec.listeners[${i}].protocol`, `must be HBONE for a Gateway of class ${waypointGatewayClass} (a waypoint)`);
    if (l.port !== waypointHbonePort) add(`spec.listeners[${i}].port`, `must be ${waypointHbonePort} for a Gateway of class ${waypointGatewayClass} (a waypoint)`);
  });
  for (const label of waypointForLabels) {
    const v = g.metadata.labels?.[label];
    if (v !== undefined && !(waypointForValues as readonly string[]).includes(v)) add(`metadata.labels[${JSON.stringify(label)}]`, `must be ${waypointForValues.join(', ')} (what traffic the waypoint takes), not ${JSON.stringify(v)}`);
  }
  const workers = g.metadata.annotations?.[workersAnnotation];
  const problem = workers === undefined ? undefined : waypointWorkers(workers);
  if (typeof problem === 'string') add(`metadata.annotations[${JSON.stringify(workersAnnotation)}]`, problem);
}

/** What reference checks need to know of the store and the cluster. */
export interface ReferenceView {
  get(kind: string, namespace: string, name: string): Resource | undefined;
  nodeNames?: string[];
}

/**
 * References from each resource to others: its namespace, its service account, its node. A reference
 * may be satisfied by another resource of the same batch, as `kubectl apply -f dir` allows.
 */
export function validateReferences(resources: Resource[], view: ReferenceView): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const inBatch = new Set(resources.map((r) => keyOf({ kind: r.kind, namespace: r.metadata.namespace ?? '', name: r.metadata.name })));
  const exists = (kind: string, namespace: string, name: string) => inBatch.has(keyOf({ kind, namespace, name })) || view.get(kind, namespace, name) !== undefined;
  resources.forEach((r, index) => {
    const add = (field: string, message: string) => problems.push({ index, resource: resourceName(r), field, message });
    const ns = r.metadata.namespace;
    if (ns && !exists('Namespace', '', ns)) add('metadata.namespace', `${ns} does not exist; create the Namespace first (in this apply or before it)`);
    if (r.kind === 'Deployment') {
      const pod = (r as Deployment).spec!.template.spec;
      const sa = pod.serviceAccountName;
      if (sa && sa !== 'default' && ns && !exists('ServiceAccount', ns, sa)) {
        add('spec.template.spec.serviceAccountName', `${sa} does not exist in namespace ${ns}; create the ServiceAccount first`);
      }
      if (pod.nodeName && view.nodeNames && !view.nodeNames.includes(pod.nodeName)) {
        add('spec.template.spec.nodeName', `node ${pod.nodeName} is not in the cluster (nodes: ${view.nodeNames.join(', ')})`);
      }
    }
  });
  return problems;
}

/**
 * Rules that need the mesh's configuration, after the schema passed: the root namespace, from which
 * alone a policy may name every waypoint (GatewayClass), and what a LocalRateLimit's bucket may hold.
 */
export function validateMeshRules(resources: Resource[], rootNamespace: string): FieldProblem[] {
  const problems: FieldProblem[] = [];
  resources.forEach((r, index) => {
    if (r.kind !== 'LocalRateLimit') return;
    for (const p of rateLimitProblems(r.spec, r.metadata.namespace ?? 'default', rootNamespace)) problems.push({ index, resource: resourceName(r), field: p.field, message: p.message });
  });
  return problems;
}

const maxDepth = 64;

/** Whether objects and arrays nest deeper than `max` inside `v`; walked without recursion. */
function nestedDeeperThan(v: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[v, 0]];
  while (stack.length) {
    const [x, depth] = stack.pop()!;
    if (!x || typeof x !== 'object') continue;
    if (depth >= max) return true;
    for (const child of Object.values(x)) stack.push([child, depth + 1]);
  }
  return false;
}

function describe(raw: unknown): string {
  if (typeof raw !== 'object' || raw === null) return 'resource';
  const r = raw as Partial<Resource>;
  const kind = typeof r.kind === 'string' ? r.kind : 'resource';
  const name = typeof r.metadata?.name === 'string' ? r.metadata.name : '<unnamed>';
  const ns = typeof r.metadata?.namespace === 'string' ? r.metadata.namespace : undefined;
  return ns ? `${kind} ${ns}/${name}` : `${kind} ${name}`;
}
