// `ambit controller`: runs the controller in the foreground (`ambit up` starts it in the background).

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { defaultApiPort } from '../../controller/config.js';
import { runController } from '../../controller/main.js';
import { binDir, type CliContext } from '../context.js';

export async function controller(ctx: CliContext, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'local-cluster': { type: 'boolean' },
      listen: { type: 'string' },
      'service-cidr': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const [host, port] = (values.listen ?? `127.0.0.1:${defaultApiPort}`).split(':');
  if (!host || !port || !/^\d+$/.test(port)) throw new AmbitError('BadFlag', `--listen ${values.listen}: must be HOST:PORT`);
  await runController({
    stateDir: ctx.stateDir,
    apiHost: host,
    apiPort: Number(port),
    serviceCIDR: values['service-cidr'] ?? '10.96.0.0/16',
    localCluster: values['local-cluster'] === true,
    binDir,
    logLevel: values['log-level'] ?? 'info',
  });
}
