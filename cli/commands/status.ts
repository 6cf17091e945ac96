// `ambit status`: the local cluster's nodes, pods and services, for people or as JSON/YAML.

import { parseArgs } from 'node:util';
import type { ClusterStatus } from '../../cluster/status.js';
import type { AgentStatus } from '../../controller/push/server.js';
import { ControllerClient } from '../../controller/api/client.js';
import type { CliContext } from '../context.js';
import { outputFormat, printData, table } from '../output.js';

export async function status(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o' } } });
  const format = outputFormat(values.output);
  const s = await new ControllerClient(ctx.stateDir).request<ClusterStatus & { agents?: AgentStatus[] }>('GET', '/v1/status');
  if (printData(format, s)) return 0;
  printStatus(s);
  return 0;
}

export function printStatus(s: ClusterStatus & { agents?: AgentStatus[] }): void {
  const out = process.stdout;
  out.write(`Cluster ${s.name}\n\nNODES\n`);
  const agent = (node: string) => s.agents?.find((a) => a.node === node);
  out.write(
    table(
      ['NAME', 'IP', 'POD-CIDR', 'PODS', 'AGENT', 'CONFIG-VERSION'],
      s.nodes.map((n) => [n.name, n.ip, n.podCIDR, n.pods, agent(n.name)?.connected ? 'connected' : 'not connected', agent(n.name)?.ackedVersion ?? '-']),
    ),
  );
  out.write('\nPODS\n');
  out.write(
    table(
      ['NAMESPACE', 'NAME', 'STATUS', 'RESTARTS', 'IP', 'NODE', 'SERVICE-ACCOUNT', 'CAPTURE'],
      s.pods.map((p) => [p.namespace, p.name, p.phase, p.restarts, p.ip, p.node, p.serviceAccount, p.capture ?? (p.message?.startsWith('waiting for the agent') ? 'waiting' : '-')]),
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
