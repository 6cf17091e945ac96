// `ambit ca rotate [--overlap 48h]`: a new CA root. The previous one stays in the trust bundle for
// the overlap, agents move their certificates to the new root within seconds, and connections
// between holders of old and new certificates keep verifying meanwhile.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { leader } from '../controllers.js';
import type { CliContext } from '../context.js';

export async function ca(ctx: CliContext, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'rotate') throw new AmbitError('BadArgs', 'usage: ambit ca rotate [--overlap 48h]');
  const { values } = parseArgs({ args: rest, options: { overlap: { type: 'string' } } });
  const overlapSeconds = parseDuration(values.overlap ?? '48h', '--overlap');
  const r = await (await leader(ctx)).request<{ revision: number; overlapSeconds: number }>('POST', '/v1/ca/rotate', { overlapSeconds });
  process.stdout.write(`New CA root in revision ${r.revision}; the previous root stays trusted for ${r.overlapSeconds} s. Agents renew their certificates now; see \`ambit query NODE certs\`.\n`);
  return 0;
}
