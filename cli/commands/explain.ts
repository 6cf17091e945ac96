// `ambit explain SRC DST:PORT`: every decision on the path of a hypothetical connection, from the
// code the proxies run: the source's agent says whether the pod is captured, where the destination
// resolves (Service endpoint, pod, passthrough) and how it would travel (HBONE with which
// identities, or plaintext); the destination's agent says which mTLS mode and which policy and
// rule would allow or deny it, and warns about policy parts it does not enforce. Nothing connects.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { ControllerClient } from '../../controller/api/client.js';
import type { ClusterStatus } from '../../scripts/cluster/status.js';
import type { CliContext } from '../context.js';
import { outputFormat, printData } from '../output.js';
import { findPod } from './exec.js';
import { callAgent } from './query.js';

interface Outbound {
  captured: boolean;
  steps: string[];
  error?: string;
  sourcePrincipal?: string;
  destination?: { protocol: 'HBONE' | 'TCP'; target: string; service?: string; workload?: string; node?: string; principal?: string; via?: string };
}

interface Inbound {
  allowed: boolean;
  steps: string[];
  mtlsMode?: string;
  decision?: { allowed: boolean; reason: string; policy?: string; rule?: number };
  warnings?: { policy: string; rule?: number; message: string }[];
}

const usage = 'usage: ambit explain [-n NAMESPACE] SRC DST:PORT [-o json]   (SRC: POD, deploy/NAME or NS/POD; DST: an IP, NAME.NAMESPACE of a Service, or NS/POD)';

export async function explain(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o' } } });
  const [src, dst] = positionals;
  if (!src || !dst || positionals.length !== 2) throw new AmbitError('BadArgs', usage);
  const m = /^(.+):(\d{1,5})$/.exec(dst);
  if (!m || Number(m[2]) > 65535 || Number(m[2]) < 1) throw new AmbitError('BadArgs', `${dst}: the destination needs a port (1-65535), e.g. web.shop:80; ${usage}`);
  const port = Number(m[2]);
  const [srcNs, srcName] = src.includes('/') && !src.startsWith('deploy') ? src.split('/', 2) : [values.namespace ?? 'default', src];
  const source = await findPod(ctx, srcName!, srcNs!);
  const status = await new ControllerClient(ctx.stateDir).request<ClusterStatus>('GET', '/v1/status');
  const ip = destinationIp(m[1]!, status);

  const out = (await callAgent(ctx, source.spec.nodeName, 'explain-outbound', { sourceIp: source.status.podIP, ip, port })) as Outbound;
  let inbound: Inbound | undefined;
  let inboundNode: string | undefined;
  const target = out.destination?.target;
  const targetPod = target ? status.pods.find((p) => p.ip === target.split(':')[0]) : undefined;
  if (!out.error && target && targetPod) {
    inboundNode = targetPod.node;
    const [tip, tport] = target.split(':');
    const mtls = out.captured && out.destination?.protocol === 'HBONE';
    inbound = (await callAgent(ctx, targetPod.node, 'explain-inbound', {
      sourceIp: source.status.podIP,
      ...(mtls && out.sourcePrincipal ? { sourcePrincipal: out.sourcePrincipal } : {}),
      ip: tip,
      port: Number(tport),
      mtls,
    })) as Inbound;
  }
  const verdict = out.error ? 'refused' : inbound && !inbound.allowed ? 'denied' : 'allowed';
  const result = { source: `${source.metadata.namespace}/${source.metadata.name}`, sourceNode: source.spec.nodeName, destination: `${m[1]}:${port}`, verdict, outbound: out, ...(inbound ? { inbound, inboundNode } : {}) };
  if (printData(outputFormat(values.output), result)) return verdict === 'allowed' ? 0 : 3;
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say(`${result.source} -> ${result.destination}: ${verdict.toUpperCase()}`);
  say(`  at the source (agent of ${source.spec.nodeName}):`);
  for (const s of out.steps) say(`    - ${s}`);
  if (out.destination) {
    const d = out.destination;
    say(`    = ${d.protocol === 'HBONE' ? `HBONE (mutual TLS) via ${d.via}` : 'plain TCP'} to ${d.target}${d.workload ? ` (${d.workload}${d.principal && d.protocol === 'HBONE' ? `, ${d.principal}` : ''})` : ''}`);
  }
  if (inbound) {
    say(`  at the destination (agent of ${inboundNode}):`);
    for (const s of inbound.steps) say(`    - ${s}`);
    for (const w of inbound.warnings ?? []) say(`    ! warning: ${w.policy}${w.rule !== undefined ? ` rule ${w.rule}` : ''}: ${w.message}`);
  }
  return verdict === 'allowed' ? 0 : 3;
}

/** An IP as given, a Service's ClusterIP (`name.ns`, `name.ns.svc.cluster.local`) or a pod's IP (`ns/pod`). */
function destinationIp(text: string, status: ClusterStatus): string {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(text)) return text;
  if (text.includes('/')) {
    const [ns, name] = text.split('/', 2);
    const pod = status.pods.find((p) => p.namespace === ns && p.name === name);
    if (!pod) throw new AmbitError('NotFound', `pod ${text} not found`);
    return pod.ip;
  }
  const [name, ns] = text.split('.');
  const svc = status.services.find((s) => s.name === name && s.namespace === ns);
  if (!svc) throw new AmbitError('NotFound', `service ${text} not found (write NAME.NAMESPACE, an IP, or NS/POD)`);
  return svc.clusterIP;
}
