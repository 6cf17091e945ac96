// `ambit agents`: every node agent's connection to the controller and the config version it runs,
// so an operator sees whether a change is in force everywhere; `--resync NODE` sends one agent
// everything again; `--restart NODE` replaces it (a new agent beside the old one, then the old one
// drains) without losing a connection. `ambit enroll NS` / `unenroll NS` set or remove the namespace label that puts
// a namespace's pods in the mesh.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { enrollLabels } from '../../shared/enrollment.js';
import type { AgentStatus } from '../../controller/push/server.js';
import { ClusterClient } from '../../cluster/api.js';
import { askEveryReplica, mergeAgents } from '../controllers.js';
import type { CliContext } from '../context.js';
import { labelNamespace, withCluster } from '../kube.js';
import { age, outputFormat, printData, table } from '../output.js';

export async function agents(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { output: { type: 'string', short: 'o' }, resync: { type: 'string' }, restart: { type: 'string' } } });
  if (values.restart) {
    const r = await new ClusterClient(ctx.stateDir).request<{ node: string; oldPid?: number; newPid: number; readyMs: number }>('POST', '/v1/agents/restart', { node: values.restart }, 60_000);
    if (printData(outputFormat(values.output), r)) return 0;
    process.stdout.write(`The agent of ${r.node} was replaced: pid ${r.newPid} serves every pod (ready in ${r.readyMs} ms)${r.oldPid ? `; pid ${r.oldPid} drains its open connections` : ''}.\n`);
    return 0;
  }
  if (values.resync) {
    // The replica the agent is connected to is the one that can resync it.
    const answers = await askEveryReplica(ctx, (c) => c.request<{ node: string; revision: number }>('POST', '/v1/agents/resync', { node: values.resync }));
    const r = answers[0]!.answer;
    process.stdout.write(`Sent the agent of ${r.node} a full push at revision ${r.revision}.\n`);
    return 0;
  }
  const answers = await askEveryReplica(ctx, (c) => c.request<{ revision: number; agents: AgentStatus[] }>('GET', '/v1/agents'));
  const r = { revision: Math.max(...answers.map((a) => a.answer.revision)), agents: mergeAgents(answers.map((a) => ({ identity: a.identity, agents: a.answer.agents }))) };
  if (printData(outputFormat(values.output), r)) return 0;
  process.stdout.write(`Controller revision ${r.revision}\n`);
  process.stdout.write(
    table(
      ['NODE', 'CONNECTED', 'CONTROLLER', 'AUTH', 'VERSION', 'IN-SYNC', 'SINCE', 'LAST-REJECTED'],
      r.agents.map((a) => [a.node, a.connected ? 'yes' : 'no', a.controller ?? '-', a.auth ?? '-', a.ackedVersion, a.ackedVersion >= r.revision ? 'yes' : 'no', age(a.connected ? a.connectedAt : a.disconnectedAt), a.lastNack ? `v${a.lastNack.version}: ${a.lastNack.reason}` : '-']),
    ),
  );
  return 0;
}

const enrollLabel = enrollLabels[0]!;

async function setEnrollment(ctx: CliContext, args: string[], enrolled: boolean): Promise<number> {
  const [name] = args;
  if (!name) throw new AmbitError('BadArgs', `usage: ambit ${enrolled ? 'enroll' : 'unenroll'} NAMESPACE`);
  const { changed, resourceVersion } = await withCluster(ctx, (client) => labelNamespace(client, name, { [enrollLabel]: enrolled ? 'ambient' : null }));
  process.stdout.write(`Namespace ${name} ${changed ? '' : 'already '}${enrolled ? 'enrolled' : 'unenrolled'} (${enrollLabel}${enrolled ? '=ambient' : ' removed'}), resourceVersion ${resourceVersion}\n`);
  return 0;
}

export const enroll = (ctx: CliContext, args: string[]) => setEnrollment(ctx, args, true);
export const unenroll = (ctx: CliContext, args: string[]) => setEnrollment(ctx, args, false);
