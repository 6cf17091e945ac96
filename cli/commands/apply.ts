// `ambit apply -f FILE|DIR`: read and check the manifests here (so problems name file and line),
// then apply them through the Kubernetes API (cli/kube.ts: all checked by a dry run before any is
// written). With --wait, the controller says when every agent runs what the change made.

import { parseArgs } from 'node:util';
import { AmbitError, ResourceInvalid } from '../../shared/errors.js';
import { locate, readManifests } from '../../shared/resources/manifest.js';
import { validateResources } from '../../shared/resources/validate.js';
import type { Resource } from '../../shared/resources/types.js';
import { askEveryReplica, mergeAgents } from '../controllers.js';
import type { CliContext } from '../context.js';
import type { AgentStatus } from '../../controller/push/server.js';
import { type Applied, applyResources, withCluster } from '../kube.js';

export async function apply(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { filename: { type: 'string', short: 'f', multiple: true }, 'dry-run': { type: 'boolean' }, wait: { type: 'boolean' }, timeout: { type: 'string' } } });
  if (!values.filename?.length) throw new AmbitError('BadFlag', 'apply needs -f FILE or -f DIR');
  const docs = readManifests(values.filename);
  if (docs.length === 0) throw new AmbitError('NothingToApply', `no resources in ${values.filename.join(', ')}`);
  const resources = docs.map((d) => d.value as Resource);
  const problems = validateResources(resources);
  if (problems.length) throw new ResourceInvalid(locate(problems, docs));
  const dryRun = values['dry-run'] === true;
  let result: Applied;
  try {
    result = await withCluster(ctx, (client) => applyResources(client, resources, dryRun));
  } catch (err) {
    if (err instanceof ResourceInvalid) throw new ResourceInvalid(locate(err.problems, docs));
    throw err;
  }
  const suffix = dryRun ? ' (dry run)' : '';
  for (const r of result.results) {
    process.stdout.write(`${r.resource} ${r.action}${suffix}\n`);
    for (const w of r.warnings) process.stdout.write(`  warning: ${w}\n`);
  }
  if (!values.wait || dryRun) return 0;
  // The figure no mesh publishes: how long until a change is in force on every node.
  const waitSeconds = Number(values.timeout ?? 30);
  const kinds = [...new Set(resources.map((r) => r.kind))];
  // Each replica waits for the agents connected to it.
  const answers = await askEveryReplica(ctx, (c) =>
    c.request<{ revision: number; ms: number; agents: AgentStatus[]; lagging: string[] }>('POST', '/v1/wait', { resourceVersion: result.resourceVersion, kinds, waitSeconds }, (waitSeconds + 30) * 1000),
  );
  const revision = Math.max(...answers.map((a) => a.answer.revision));
  const ms = Math.max(...answers.map((a) => a.answer.ms));
  const agents = mergeAgents(answers.map((a) => ({ identity: a.identity, agents: a.answer.agents })));
  const lagging = [...new Set(answers.flatMap((a) => a.answer.lagging))];
  const connected = agents.filter((a) => a.connected).length;
  const away = agents.filter((a) => !a.connected).map((a) => a.node);
  if (lagging.length === 0) {
    process.stdout.write(`Revision ${revision} acknowledged by all ${connected} connected agents in ${ms} ms.${away.length ? ` Not connected: ${away.join(', ')}.` : ''}\n`);
    return 0;
  }
  process.stdout.write(`Revision ${revision}: not acknowledged within ${waitSeconds} s by ${lagging.join(', ')}; see \`ambit agents\`.\n`);
  return 1;
}
