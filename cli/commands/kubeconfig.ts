// `ambit kubeconfig`: where the local cluster's kubeconfig is, for `export KUBECONFIG=$(ambit kubeconfig)`.

import { existsSync } from 'node:fs';
import { AmbitError } from '../../shared/errors.js';
import { kubeconfigPath } from '../../controller/config.js';
import type { CliContext } from '../context.js';

export async function kubeconfig(ctx: CliContext): Promise<number> {
  const path = kubeconfigPath(ctx.stateDir);
  if (!existsSync(path)) throw new AmbitError('NoCluster', `no kubeconfig at ${path}: is the cluster up? Run \`ambit up\``);
  process.stdout.write(`${path}\n`);
  return 0;
}
