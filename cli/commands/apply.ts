// `ambit apply -f FILE|DIR`: read and check the manifests here (so problems name file and line),
// then send the batch to the controller, which checks again against the store and stores all or none.

import { parseArgs } from 'node:util';
import { AmbitError, ResourceInvalid } from '../../shared/errors.js';
import { locate, readManifests } from '../../shared/resources/manifest.js';
import { validateResources } from '../../shared/resources/validate.js';
import { ControllerClient } from '../client.js';
import type { CliContext } from '../context.js';
import type { ApplyResult } from '../../controller/resources/apply.js';

export async function apply(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { filename: { type: 'string', short: 'f', multiple: true }, 'dry-run': { type: 'boolean' } } });
  if (!values.filename?.length) throw new AmbitError('BadFlag', 'apply needs -f FILE or -f DIR');
  const docs = readManifests(values.filename);
  if (docs.length === 0) throw new AmbitError('NothingToApply', `no resources in ${values.filename.join(', ')}`);
  const resources = docs.map((d) => d.value);
  const problems = validateResources(resources);
  if (problems.length) throw new ResourceInvalid(locate(problems, docs));
  let result: ApplyResult;
  try {
    result = await new ControllerClient(ctx).request<ApplyResult>('POST', '/v1/apply', { resources, dryRun: values['dry-run'] === true });
  } catch (err) {
    if (err instanceof ResourceInvalid) throw new ResourceInvalid(locate(err.problems, docs));
    throw err;
  }
  const suffix = values['dry-run'] ? ' (dry run)' : '';
  for (const r of result.results) process.stdout.write(`${r.resource} ${r.action}${suffix}\n`);
  return 0;
}
