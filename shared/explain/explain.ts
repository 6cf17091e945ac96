// `explain`: every decision on the path of a hypothetical connection, asked of the agents that would
// make them, and the lines that say it to a person. The CLI (`ambit explain`) and the controller's
// dashboard both run this; each brings its own way to reach an agent's query API and its own list
// of pods and Services. Nothing connects: the agents answer from the code their proxies run.

import { AmbitError } from '../errors.js';
import type { Pod } from '../resources/types.js';

export interface Outbound {
  captured: boolean;
  steps: string[];
  error?: string;
  sourcePrincipal?: string;
  destination?: { protocol: 'HBONE' | 'TCP'; target: string; service?: string; workload?: string; node?: string; principal?: string; via?: string };
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
  inbound?: Inbound;
  inboundNode?: string;
}

/** Where pods run and where Services answer; `ambit status` gives it, so does the controller's store. */
export interface Directory {
  pods: { namespace: string; name: string; ip: string; node: string }[];
  services: { namespace: string; name: string; clusterIP: string }[];
}

/** A call to a node agent's query API (`explain-outbound`, `explain-inbound`). */
export type AgentCall = (node: string, method: string, params: unknown) => Promise<unknown>;

export const usage = 'usage: ambit explain [-n NAMESPACE] SRC DST:PORT [-o json]   (SRC: POD, deploy/NAME or NS/POD; DST: an IP, NAME.NAMESPACE of a Service, or NS/POD)';

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
export async function explainConnection(source: Pod, req: ExplainRequest, directory: Directory, call: AgentCall): Promise<ExplainResult> {
  const ip = destinationIp(req.destinationHost, directory);
  const out = (await call(source.spec.nodeName, 'explain-outbound', { sourceIp: source.status.podIP, ip, port: req.port })) as Outbound;
  let inbound: Inbound | undefined;
  let inboundNode: string | undefined;
  const target = out.destination?.target;
  const targetPod = target ? directory.pods.find((p) => p.ip === target.split(':')[0]) : undefined;
  if (!out.error && target && targetPod) {
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
  const verdict: Verdict = out.error ? 'refused' : inbound && !inbound.allowed ? 'denied' : 'allowed';
  return {
    source: `${source.metadata.namespace}/${source.metadata.name}`,
    sourceNode: source.spec.nodeName,
    destination: `${req.destinationHost}:${req.port}`,
    verdict,
    outbound: out,
    ...(inbound ? { inbound, inboundNode } : {}),
  };
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
