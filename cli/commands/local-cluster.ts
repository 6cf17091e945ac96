// `ambit local-cluster`: runs the local cluster's own process (its Kubernetes API, pods, agents and
// Service rules) in the foreground; `ambit up` starts it in the background, before the controller.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { defaultDashboardPort, defaultKubeApiPort } from '../../controller/config.js';
import { serveLocalCluster } from '../../cluster/serve.js';
import { binDir, cliEntry, type CliContext } from '../context.js';
import { listenFlag } from '../flags.js';

export async function localCluster(ctx: CliContext, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'kube-api-listen': { type: 'string' },
      'kube-api-netns': { type: 'string' },
      'root-namespace': { type: 'string' },
      'log-level': { type: 'string' },
    },
  });
  const kubeApi = listenFlag('--kube-api-listen', values['kube-api-listen'], `127.0.0.1:${defaultKubeApiPort}`, '--kube-api-netns', values['kube-api-netns']);
  if (!kubeApi) throw new AmbitError('BadFlag', '--kube-api-listen off: the local cluster is reached through its Kubernetes API');
  await serveLocalCluster({
    stateDir: ctx.stateDir,
    cliEntry,
    binDir,
    kubeApi,
    inheritedNetns: [values['kube-api-netns']].filter((p): p is string => p !== undefined && p.startsWith('/proc/self/fd/')),
    rootNamespace: values['root-namespace'] ?? 'istio-system',
    dashboardPort: defaultDashboardPort,
    logLevel: values['log-level'] ?? 'info',
  });
}
