// `ambit down`: removes the local cluster and everything it made, even after a crashed `ambit up`.

import { teardown } from '../../cluster/teardown.js';
import type { CliContext } from '../context.js';

export async function down(ctx: CliContext): Promise<number> {
  const r = await teardown(ctx.stateDir);
  process.stdout.write(`Removed ${r.namespaces} network namespaces, ${r.cgroups} cgroups, ${r.processes} processes.\n`);
  return 0;
}
