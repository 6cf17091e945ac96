// `ambit status`: the local cluster's nodes, pods and services, for people or as JSON/YAML.

import { parseArgs } from 'node:util';
import { AmbitError, errorMessage } from '../../shared/errors.js';
import type { ClusterStatus } from '../../cluster/status.js';
import type { AgentStatus } from '../../controller/push/server.js';
import { ClusterClient } from '../../cluster/api.js';
import { askEveryReplica, mergeAgents } from '../controllers.js';
import type { CliContext } from '../context.js';
import { outputFormat, printData, table } from '../output.js';

export async function status(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o' } } });
  const format = outputFormat(values.output);
  const cluster = await new ClusterClient(ctx.stateDir).request<ClusterStatus>('GET', '/v1/status');
  // The agents as the controller replicas see them; the cluster is shown without them when none answers.
  const agents = await askEveryReplica(ctx, (c) => c.request<{ agents: AgentStatus[] }>('GET', '/v1/agents', undefined, 5000)).then(
    (answers) => mergeAgents(answers.map((a) => ({ identity: a.identity, agents: a.answer.agents }))),
    (err: unknown) => (err instanceof AmbitError ? `${err.code}: ${err.message}` : errorMessage(err)),
  );
  const s = { ...cluster, ...(typeof agents === 'string' ? { controller: agents } : { agents }) };
  if (printData(format, s)) return 0;
  printStatus(s);
  return 0;
}

export function printStatus(s: ClusterStatus & { agents?: AgentStatus[]; controller?: string }): void {
  const out = process.stdout;
  out.write(`Cluster ${s.name}\n`);
  if (s.controller) out.write(`\nThe controller does not answer: ${s.controller}\n`);
  out.write('\nNODES\n');
  const agent = (node: string) => s.agents?.find((a) => a.node === node);
  out.write(
    table(
      ['NAME', 'IP', 'POD-CIDR', 'PODS', 'AGENT', 'CONFIG-VERSION'],
      s.nodes.map((n) => [n.name, n.ip, n.podCIDR, n.pods, agent(n.name)?.connected ? 'connected' : s.controller ? 'unknown' : 'not connected', agent(n.name)?.ackedVersion ?? '-']),
    ),
  );
  out.write('\nPODS\n');
  out.write(
    table(
      ['NAMESPACE', 'NAME', 'STATUS', 'RESTARTS', 'IP', 'NODE', 'SERVICE-ACCOUNT', 'CAPTURE'],
      s.pods.map((p) => [p.namespace, p.name, p.phase, p.restarts, p.ip, p.node, p.serviceAccount, p.capture ?? (p.phase === 'Pending' && p.message?.includes('ambit-cni') ? 'waiting' : '-')]),
    ),
  );
  out.write('\nSERVICES\n');
  out.write(
    table(
      ['NAMESPACE', 'NAME', 'CLUSTER-IP', 'PORT', 'ENDPOINTS'],
      s.services.flatMap((svc) => svc.ports.map((p) => [svc.namespace, svc.name, svc.clusterIP, p.port, p.endpoints.join(',') || '<none>'])),
    ),
  );
}
