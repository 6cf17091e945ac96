// What the routing tests share: the conformance suite's mesh namespace (Services echo, echo-v1 and
// echo-v2 with its five ports), routes read from its manifests through ambit's own validation, and a
// `send` that plays the waypoint's part (lookup, match, plan, header edits) the way the lead wires it.

import * as assert from 'uvu/assert';
import { parseAllDocuments } from 'yaml';
import { validateResources } from '../../../shared/resources/validate.js';
import {
  applyRequestFilters,
  compileRoutes,
  editHeaders,
  type HeaderBag,
  type RequestPlan,
  type RouteObject,
  type RouteTable,
  type ServiceLookup,
  type ServiceRef,
} from '../../../shared/routing/index.js';
import { manifests } from './routing-manifests.js';

export const meshNs = 'gateway-conformance-mesh';
export const consumerNs = 'gateway-conformance-mesh-consumer';

const echoPorts = [
  { name: 'http', port: 80 },
  { name: 'http-alt', port: 8080 },
  { name: 'https', port: 443 },
  { name: 'tcp', port: 9090 },
  { name: 'grpc', port: 7070 },
];

/** The conformance suite's Services (conformance/mesh/manifests.yaml); there is no echo-v3. */
export function serviceLookup(extra: ServiceRef[] = []): ServiceLookup {
  const all: ServiceRef[] = [...['echo', 'echo-v1', 'echo-v2'].map((name) => ({ namespace: meshNs, name, ports: echoPorts })), ...extra];
  return (namespace, name) => all.find((s) => s.namespace === namespace && s.name === name);
}
export const services = serviceLookup();

/** Routes from YAML, after ambit's schema validation (which must accept them), oldest first. */
export function routesFromYaml(text: string): RouteObject[] {
  const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind: 'HTTPRoute' | 'GRPCRoute'; metadata: { namespace: string; name: string; creationTimestamp?: string }; spec: unknown });
  assert.equal(validateResources(docs), [], 'the manifests pass ambit validation');
  return docs.map((d, i) => ({
    kind: d.kind,
    namespace: d.metadata.namespace,
    name: d.metadata.name,
    creationTimestamp: d.metadata.creationTimestamp ?? new Date(Date.UTC(2025, 0, 1, 0, 0, i)).toISOString(),
    generation: 1,
    spec: d.spec,
  }));
}

export function conformanceTable(...names: string[]): RouteTable {
  return compileRoutes(
    names.flatMap((n) => routesFromYaml(manifests[n]!)),
    services,
  );
}

export interface Request {
  /** The Service the client sends to (the waypoint knows it from the destination address). */
  service?: string;
  port?: number;
  clientNamespace?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  random?: () => number;
}

export interface Outcome {
  status: number;
  /** The Service that answers: a backend, or the Service itself when no route attaches. */
  backend?: string;
  backendPort?: number;
  location?: string;
  /** Request headers as the backend receives them (lower-case names). */
  headers: HeaderBag;
  /** The request-target as the backend receives it. */
  path: string;
  /** Headers the waypoint adds to or edits on the backend's response. */
  responseHeaders: HeaderBag;
  ruleName?: string;
  plan?: RequestPlan;
}

/** One request through the routing engine, as the waypoint will run it. */
export function send(table: RouteTable, r: Request): Outcome {
  const service = r.service ?? 'echo';
  const port = r.port ?? 80;
  const path = r.path ?? '/';
  const headers: HeaderBag = { host: service };
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = v;
  const req = { method: r.method ?? 'GET', path, headers };
  const parent = table.lookup({ namespace: meshNs, name: service }, port, r.clientNamespace ?? meshNs);
  if (!parent) return { status: 200, backend: service, backendPort: port, headers, path, responseHeaders: {} };
  const m = table.match(parent, req);
  if (!m) return { status: 404, headers, path, responseHeaders: {} };
  const plan = applyRequestFilters(m, req, { port, random: r.random });
  const responseHeaders: HeaderBag = {};
  editHeaders(responseHeaders, plan.responseHeaders);
  if (plan.redirect) return { status: plan.redirect.status, location: plan.redirect.location, headers, path, responseHeaders, plan, ruleName: m.rule.name };
  if (plan.failure) return { status: plan.failure.status, headers, path, responseHeaders, plan, ruleName: m.rule.name };
  editHeaders(headers, plan.headers);
  if (plan.host !== undefined) headers.host = plan.host;
  return { status: 200, backend: plan.backend!.name, backendPort: plan.backend!.port ?? port, headers, path: plan.path ?? path, responseHeaders, plan, ruleName: m.rule.name };
}

export { seededRandom as seeded } from '../../helpers/random.js';

/** A route object written inline, for cases the conformance manifests do not cover. */
export function route(kind: 'HTTPRoute' | 'GRPCRoute', name: string, spec: unknown, extra: Partial<RouteObject> = {}): RouteObject {
  return { kind, namespace: meshNs, name, creationTimestamp: '2025-01-01T00:00:00Z', generation: 1, spec, ...extra };
}

export const echoParent = { group: '', kind: 'Service', name: 'echo' };
