// `explain`: every decision on the path of a hypothetical connection, asked of the agents that would
// make them, and the lines that say it to a person. The CLI (`ambit explain`) and the controller's
// dashboard both run this; each brings its own way to reach an agent's query API and its own list
// of pods and Services. Nothing connects: the agents answer from the code their proxies run.

import { AmbitError } from '../errors.js';
import type { Pod } from '../resources/types.js';
import { applyRequestFilters, compileRoutes, type RouteObject } from '../routing/index.js';

export interface Outbound {
  captured: boolean;
  steps: string[];
  error?: string;
  sourcePrincipal?: string;
  destination?: { protocol: 'HBONE' | 'TCP'; target: string; service?: string; workload?: string; node?: string; principal?: string; via?: string; waypoint?: string };
}

/** The waypoint's hop: the route the request takes there, its backend, and what its filters do. */
export interface WaypointHop {
  waypoint: string;
  steps: string[];
  /** The endpoint the explanation follows on to (one of the backend's), with the waypoint's identity. */
  next?: { target: string; node: string; principal: string; sourceIp: string };
  /** The waypoint answers itself (a redirect, a route that matches nothing, a missing backend). */
  answers?: number;
  /** Its security refused the request (400, 401, 403): the answer is `answers`. */
  refused?: boolean;
}

/** What explaining the L7 hop needs: the routes, the Services, and optionally a request to follow. */
export interface L7Context {
  routes: RouteObject[];
  http?: { method: string; path: string; headers: Record<string, string> };
  trustDomain?: string;
}

export interface Inbound {
  allowed: boolean;
  steps: string[];
  mtlsMode?: string;
  decision?: { allowed: boolean; reason: string; policy?: string; rule?: number };
  warnings?: { policy: string; rule?: number; message: string }[];
}

export type Verdict = 'allowed' | 'denied' | 'refused';

export interface ExplainResult {
  source: string;
  sourceNode: string;
  destination: string;
  verdict: Verdict;
  outbound: Outbound;
  waypoint?: WaypointHop;
  inbound?: Inbound;
  inboundNode?: string;
}

/** Where pods run and where Services answer; `ambit status` gives it, so does the controller's store. */
export interface Directory {
  pods: { namespace: string; name: string; ip: string; node: string; serviceAccount?: string }[];
  /** With their ports' endpoints (`ip:port`) where known: the waypoint's hop follows on to one. */
  services: { namespace: string; name: string; clusterIP: string; ports?: { name?: string; port: number; endpoints?: string[] }[] }[];
}

/** A call to a node agent's query API (`explain-outbound`, `explain-inbound`). */
export type AgentCall = (node: string, method: string, params: unknown) => Promise<unknown>;

export const usage = "usage: ambit explain [-n NAMESPACE] SRC DST:PORT [--http METHOD PATH [-H 'name: value']... [--jwt TOKEN]] [-o json]   (SRC: POD, deploy/NAME or NS/POD; DST: an IP, NAME.NAMESPACE of a Service, or NS/POD)";

export interface ExplainRequest {
  /** The source pod's namespace and name, or `deploy/NAME` for a running pod of a Deployment. */
  sourceNamespace: string;
  sourceName: string;
  /** An IP, `NAME.NAMESPACE` of a Service, or `NS/POD`, as written. */
  destinationHost: string;
  port: number;
}

/** Reads `SRC` and `DST:PORT` as the command line writes them; `namespace` is the source's when SRC names none. */
export function parseExplainArgs(src: string, dst: string, namespace = 'default'): ExplainRequest {
  const m = /^(.+):(\d{1,5})$/.exec(dst.trim());
  if (!m || Number(m[2]) > 65535 || Number(m[2]) < 1) throw new AmbitError('BadArgs', `${dst}: the destination needs a port (1-65535), e.g. web.shop:80; ${usage}`);
  const s = src.trim();
  if (!s) throw new AmbitError('BadArgs', `the source is empty; ${usage}`);
  const [sourceNamespace, sourceName] = s.includes('/') && !s.startsWith('deploy') ? s.split('/', 2) : [namespace, s];
  return { sourceNamespace: sourceNamespace!, sourceName: sourceName!, destinationHost: m[1]!, port: Number(m[2]) };
}

/** Asks the source's agent, then (when the connection would reach a pod) the destination's agent. */
export async function explainConnection(source: Pod, req: ExplainRequest, directory: Directory, call: AgentCall, l7?: L7Context): Promise<ExplainResult> {
  const ip = destinationIp(req.destinationHost, directory);
  const out = (await call(source.spec.nodeName, 'explain-outbound', { sourceIp: source.status.podIP, ip, port: req.port })) as Outbound;
  let inbound: Inbound | undefined;
  let inboundNode: string | undefined;
  let waypoint: WaypointHop | undefined;
  const target = out.destination?.target;
  const targetPod = target ? directory.pods.find((p) => p.ip === target.split(':')[0]) : undefined;
  if (!out.error && out.destination?.waypoint && (out.destination.service || targetPod)) {
    // The waypoint is asked for a pod's address (its own waypoint, waypoint-for workload or all) or
    // for a Service's VIP (the Service's waypoint).
    const [tip, tport] = target!.split(':');
    const to = targetPod ? { ip: tip!, port: Number(tport) } : { service: out.destination.service!, port: req.port };
    waypoint = 'ip' in to ? workloadHop(out.destination.waypoint, targetPod!, target!, directory, l7) : waypointHop(out.destination.waypoint, to.service, req.port, source.metadata.namespace!, directory, l7);
    if (l7?.http) waypoint = await withSecurity(waypoint, to, source, out.sourcePrincipal ?? '', directory, call, l7.http);
    if (waypoint.next) {
      inboundNode = waypoint.next.node;
      const [tip, tport] = waypoint.next.target.split(':');
      inbound = (await call(waypoint.next.node, 'explain-inbound', { sourceIp: waypoint.next.sourceIp, sourcePrincipal: waypoint.next.principal, ip: tip, port: Number(tport), mtls: true })) as Inbound;
    }
  } else if (!out.error && target && targetPod) {
    inboundNode = targetPod.node;
    const [tip, tport] = target.split(':');
    const mtls = out.captured && out.destination?.protocol === 'HBONE';
    inbound = (await call(targetPod.node, 'explain-inbound', {
      sourceIp: source.status.podIP,
      ...(mtls && out.sourcePrincipal ? { sourcePrincipal: out.sourcePrincipal } : {}),
      ip: tip,
      port: Number(tport),
      mtls,
    })) as Inbound;
  }
  const verdict: Verdict = out.error ? 'refused' : (inbound && !inbound.allowed) || (waypoint?.refused ?? false) ? 'denied' : 'allowed';
  return {
    source: `${source.metadata.namespace}/${source.metadata.name}`,
    sourceNode: source.spec.nodeName,
    destination: `${req.destinationHost}:${req.port}`,
    verdict,
    outbound: out,
    ...(waypoint ? { waypoint } : {}),
    ...(inbound ? { inbound, inboundNode } : {}),
  };
}

/**
 * The waypoint's decisions, made by the routing engine the waypoint runs (shared/routing): the
 * routes attached to the Service and port for this client's namespace, and with a request to follow
 * (`--http METHOD PATH`), the rule it matches, the backend drawn (with every backend's share) and
 * what the filters do. Then one endpoint of that backend, which the explanation follows on to.
 */
function waypointHop(waypointName: string, serviceName: string, port: number, clientNamespace: string, directory: Directory, l7: L7Context | undefined): WaypointHop {
  const [sns, sname] = serviceName.split('/') as [string, string];
  const steps: string[] = [];
  const lookup = (ns: string, name: string) => {
    const s = directory.services.find((x) => x.namespace === ns && x.name === name);
    return s ? { namespace: ns, name, ports: (s.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port })) } : undefined;
  };
  let backend = { namespace: sns, name: sname, port };
  const table = compileRoutes(l7?.routes ?? [], lookup);
  const parent = table.lookup({ namespace: sns, name: sname }, port, clientNamespace);
  if (!parent) steps.push(`no HTTPRoute or GRPCRoute is attached to ${serviceName}:${port} for clients in ${clientNamespace}: requests go to the Service itself`);
  else {
    const routes = [...new Set(parent.entries.map((e) => `${e.rule.route.kind} ${e.rule.route.namespace}/${e.rule.route.name}`))];
    steps.push(`routes attached to ${serviceName}:${port} (${parent.scope.type === 'consumer' ? `consumer routes of ${clientNamespace}` : 'producer routes'}): ${routes.join(', ')}`);
    if (!l7?.http) {
      steps.push('give --http METHOD PATH [-H "name: value"] to follow a request through them');
      return { waypoint: waypointName, steps };
    }
    const view = { method: l7.http.method, path: l7.http.path, headers: Object.fromEntries(Object.entries(l7.http.headers).map(([k, v]) => [k.toLowerCase(), v])) };
    const m = table.match(parent, view);
    if (!m) {
      steps.push(`${view.method} ${view.path} matches no rule: the waypoint answers 404 (flag NR)`);
      return { waypoint: waypointName, steps, answers: 404 };
    }
    const rule = m.rule;
    steps.push(`${view.method} ${view.path} matches ${rule.route.kind} ${rule.route.namespace}/${rule.route.name} rule ${rule.name ?? rule.index}`);
    const valid = rule.backends.filter((b) => b.weight > 0);
    if (valid.length) steps.push(`backends: ${valid.map((b) => `${b.namespace}/${b.name}:${b.port ?? port} ${Math.round((b.weight / rule.totalWeight) * 1000) / 10}%${b.invalid ? ` (${b.invalid.reason}: answered 500)` : ''}`).join(', ')}`);
    const plan = applyRequestFilters(m, view, { port });
    if (plan.redirect) {
      steps.push(`redirected: ${plan.redirect.status} to ${plan.redirect.location}`);
      return { waypoint: waypointName, steps, answers: plan.redirect.status };
    }
    if (plan.failure || !plan.backend) {
      steps.push(`answered ${plan.failure?.status ?? 500}: ${plan.failure?.message ?? 'no backend'}`);
      return { waypoint: waypointName, steps, answers: 500 };
    }
    const filters: string[] = [];
    for (const h of plan.headers) filters.push(`request headers${h.set.length ? ` set ${h.set.map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''}${h.add.length ? ` add ${h.add.map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''}${h.remove.length ? ` remove ${h.remove.join(', ')}` : ''}`);
    if (plan.path !== undefined) filters.push(`path rewritten to ${plan.path}`);
    if (plan.host !== undefined) filters.push(`host rewritten to ${plan.host}`);
    for (const x of rule.filters.mirrors) filters.push(`mirrored to ${x.backend.namespace}/${x.backend.name} (${Math.round(x.fraction * 100)}%)`);
    for (const x of plan.extensions) filters.push(`${x.kind} ${x.name}`);
    if (plan.timeouts.requestMs) filters.push(`request timeout ${plan.timeouts.requestMs} ms`);
    if (plan.timeouts.backendRequestMs) filters.push(`per-try timeout ${plan.timeouts.backendRequestMs} ms`);
    if (plan.retry) filters.push(`retry ${plan.retry.attempts}x${plan.retry.codes.length ? ` on ${plan.retry.codes.join(', ')}` : ''}`);
    if (filters.length) steps.push(`filters: ${filters.join('; ')}`);
    backend = { namespace: plan.backend.namespace, name: plan.backend.name, port: plan.backend.port ?? port };
    if (valid.length > 1) steps.push(`this time drawn: ${backend.namespace}/${backend.name}:${backend.port}`);
  }
  const [wns, wname] = waypointName.split('/') as [string, string];
  const principal = `${l7?.trustDomain ?? 'cluster.local'}/ns/${wns}/sa/${wname}`;
  const wpod = directory.pods.find((p) => p.namespace === wns && p.name.startsWith(`${wname}-`));
  const svc = directory.services.find((x) => x.namespace === backend.namespace && x.name === backend.name);
  const endpoint = svc?.ports?.find((p) => p.port === backend.port)?.endpoints?.[0];
  const pod = endpoint ? directory.pods.find((p) => p.ip === endpoint.split(':')[0]) : undefined;
  if (!endpoint || !pod || !wpod) {
    steps.push(`${backend.namespace}/${backend.name}:${backend.port} has no ready endpoint to follow on to`);
    return { waypoint: waypointName, steps };
  }
  steps.push(`sent over HBONE as ${principal} to ${endpoint} (${pod.namespace}/${pod.name}, one of the endpoints of ${backend.namespace}/${backend.name})`);
  return { waypoint: waypointName, steps, next: { target: endpoint, node: pod.node, principal, sourceIp: wpod.ip } };
}

/**
 * The waypoint's hop for traffic addressed to a pod (its own waypoint, `waypoint-for` workload or
 * all): as in Istio, no route attached to a Service applies; the waypoint's security does, and it
 * sends the connection on to that pod.
 */
function workloadHop(waypointName: string, pod: Directory['pods'][number], target: string, directory: Directory, l7: L7Context | undefined): WaypointHop {
  const [wns, wname] = waypointName.split('/') as [string, string];
  const principal = `${l7?.trustDomain ?? 'cluster.local'}/ns/${wns}/sa/${wname}`;
  const steps = [`addressed to pod ${pod.namespace}/${pod.name}, which uses this waypoint for traffic addressed to it: routes attached to Services do not apply, policies attached to the waypoint do`];
  const wpod = directory.pods.find((p) => p.namespace === wns && p.name.startsWith(`${wname}-`));
  if (!wpod) {
    steps.push(`no pod of waypoint ${waypointName} runs to follow on from`);
    return { waypoint: waypointName, steps };
  }
  steps.push(`sent over HBONE as ${principal} to ${target} (${pod.namespace}/${pod.name}, the pod addressed)`);
  return { waypoint: waypointName, steps, next: { target, node: pod.node, principal, sourceIp: wpod.ip } };
}

/**
 * The waypoint's security before its routing: the waypoint pod itself is asked (through its node's
 * agent), so the JWT keys and policies are the ones it runs with. A refusal ends the hop there.
 */
async function withSecurity(hop: WaypointHop, to: { service: string; port: number } | { ip: string; port: number }, source: Pod, sourcePrincipal: string, directory: Directory, call: AgentCall, http: NonNullable<L7Context['http']>): Promise<WaypointHop> {
  const [wns, wname] = hop.waypoint.split('/') as [string, string];
  const wpod = directory.pods.find((p) => p.namespace === wns && p.name.startsWith(`${wname}-`));
  if (!wpod) return { ...hop, steps: [`security: no pod of waypoint ${hop.waypoint} runs to ask`, ...hop.steps] };
  let answer: { steps: string[]; refused?: { status: number; message: string } };
  try {
    answer = (await call(wpod.node, 'explain-waypoint', { pod: `${wns}/${wpod.name}`, ...to, sourceIp: source.status.podIP ?? '', sourcePrincipal, method: http.method, path: http.path, headers: http.headers })) as typeof answer;
  } catch (err) {
    return { ...hop, steps: [`security: waypoint pod ${wns}/${wpod.name} could not be asked: ${(err as Error).message}`, ...hop.steps] };
  }
  const security = answer.steps.map((s) => `security: ${s}`);
  if (!answer.refused) return { ...hop, steps: [...security, ...hop.steps] };
  return { waypoint: hop.waypoint, steps: [...security, `the waypoint answers ${answer.refused.status} (${answer.refused.message}); the request goes no further`], answers: answer.refused.status, refused: true };
}

/** What `ambit explain` prints, line by line; the dashboard shows the same lines. */
export function explainLines(result: ExplainResult): string[] {
  const lines = [`${result.source} -> ${result.destination}: ${result.verdict.toUpperCase()}`, `  at the source (agent of ${result.sourceNode}):`];
  const out = result.outbound;
  for (const s of out.steps) lines.push(`    - ${s}`);
  if (out.destination) {
    const d = out.destination;
    lines.push(`    = ${d.protocol === 'HBONE' ? `HBONE (mutual TLS) via ${d.via}` : 'plain TCP'} to ${d.target}${d.workload ? ` (${d.workload}${d.principal && d.protocol === 'HBONE' ? `, ${d.principal}` : ''})` : ''}`);
  }
  if (result.waypoint) {
    lines.push(`  at the waypoint (${result.waypoint.waypoint}):`);
    for (const s of result.waypoint.steps) lines.push(`    - ${s}`);
  }
  if (result.inbound) {
    lines.push(`  at the destination (agent of ${result.inboundNode}):`);
    for (const s of result.inbound.steps) lines.push(`    - ${s}`);
    for (const w of result.inbound.warnings ?? []) lines.push(`    ! warning: ${w.policy}${w.rule !== undefined ? ` rule ${w.rule}` : ''}: ${w.message}`);
  }
  return lines;
}

/** An IP as given, a Service's ClusterIP (`name.ns`, `name.ns.svc.cluster.local`) or a pod's IP (`ns/pod`). */
function destinationIp(text: string, directory: Directory): string {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return text;
  if (text.includes('/')) {
    const [ns, name] = text.split('/', 2);
    const pod = directory.pods.find((p) => p.namespace === ns && p.name === name);
    if (!pod) throw new AmbitError('NotFound', `pod ${text} not found`);
    return pod.ip;
  }
  const [name, ns] = text.split('.');
  const svc = directory.services.find((s) => s.name === name && s.namespace === ns);
  if (!svc) throw new AmbitError('NotFound', `service ${text} not found (write NAME.NAMESPACE, an IP, or NS/POD)`);
  return svc.clusterIP;
}
