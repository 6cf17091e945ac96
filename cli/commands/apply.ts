// `ambit apply -f FILE|DIR`: read and check the manifests here (so problems name file and line),
// then send the batch to the controller, which checks again against the store and stores all or none.

import { parseArgs } from 'node:util';
import { AmbitError, ResourceInvalid } from '../../shared/errors.js';
import { locate, readManifests } from '../../shared/resources/manifest.js';
import { validateResources } from '../../shared/resources/validate.js';
import { ControllerClient } from '../../controller/api/client.js';
import type { CliContext } from '../context.js';
import type { ApplyResult } from '../../controller/resources/apply.js';
import type { AgentStatus } from '../../controller/push/server.js';

export async function apply(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { filename: { type: 'string', short: 'f', multiple: true }, 'dry-run': { type: 'boolean' }, wait: { type: 'boolean' }, timeout: { type: 'string' } } });
  if (!values.filename?.length) throw new AmbitError('BadFlag', 'apply needs -f FILE or -f DIR');
  const docs = readManifests(values.filename);
  if (docs.length === 0) throw new AmbitError('NothingToApply', `no resources in ${values.filename.join(', ')}`);
  const resources = docs.map((d) => d.value);
  const problems = validateResources(resources);
  if (problems.length) throw new ResourceInvalid(locate(problems, docs));
  const waitSeconds = values.wait ? Number(values.timeout ?? 30) : 0;
  let result: ApplyResult & { wait?: { ms: number; agents: AgentStatus[]; lagging: string[] } };
  try {
    result = await new ControllerClient(ctx.stateDir).request('POST', '/v1/apply', { resources, dryRun: values['dry-run'] === true, waitSeconds }, (waitSeconds + 30) * 1000);
  } catch (err) {
    if (err instanceof ResourceInvalid) throw new ResourceInvalid(locate(err.problems, docs));
    throw err;
  }
  const suffix = values['dry-run'] ? ' (dry run)' : '';
  for (const r of result.results) {
    process.stdout.write(`${r.resource} ${r.action}${suffix}\n`);
    for (const w of r.warnings ?? []) process.stdout.write(`  warning: ${w}\n`);
  }
  if (!result.wait) return 0;
  // The figure no mesh publishes: how long until a change is in force on every node.
  const { ms, agents, lagging } = result.wait;
  const connected = agents.filter((a) => a.connected).length;
  const away = agents.filter((a) => !a.connected).map((a) => a.node);
  if (lagging.length === 0) {
    process.stdout.write(`Revision ${result.revision} acknowledged by all ${connected} connected agents in ${ms} ms.${away.length ? ` Not connected: ${away.join(', ')}.` : ''}\n`);
    return 0;
  }
  process.stdout.write(`Revision ${result.revision}: not acknowledged within ${waitSeconds} s by ${lagging.join(', ')}; see \`ambit agents\`.\n`);
  return 1;
}
