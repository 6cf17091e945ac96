#!/usr/bin/env node
// The `ambit` command: one entry point, one module per subcommand under cli/commands/. Global
// settings (state directory, controller address) are read here, once, and passed down.

import { AmbitError, errorMessage } from '../shared/errors.js';
import { projectRoot, type CliContext } from './context.js';
import { kubeconfigPath } from '../controller/config.js';
import { commands } from './commands/index.js';

const usage = `ambit: a sidecarless service mesh, with a local multi-node cluster

Usage: ambit <command> [flags]

Local cluster:
  up [--cluster FILE] [--no-samples]   create the cluster (default: 2 nodes) and the sample workloads
  down                                 remove the cluster and everything it made
  status [-o json|yaml]                nodes, pods and services
  demo [--cluster-only]                the cluster, then a tour of the mesh (undone at the end)
  kubeconfig                           the kubeconfig's path: export KUBECONFIG=$(ambit kubeconfig)
  exec POD|deploy/NAME [-n NS] -- CMD  run a command inside a pod
  logs POD|deploy/NAME [-n NS] [-c C]  print a container's output

Mesh:
  query NODE workloads|services|policies|certs|connections|workers|events|version|config_dump [-o json|yaml|wide] [--follow]
  query NODE profile [--seconds N] [--out DIR] | heap [--out DIR]   where each event loop's time and heap go
  agents [--resync NODE]               every node agent's connection and config version
  explain [-n NS] SRC DST:PORT [-o json]   every decision on a connection's path: capture,
                                       endpoint, HBONE or plaintext, identities, policy and rule
  enroll NAMESPACE / unenroll NAMESPACE   set or remove ambit.dev/dataplane-mode=ambient
  ca rotate [--overlap 48h]            a new CA root; the old one stays trusted for the overlap
  estimate --nodes N --pods N --services N --rps N [--waypoints N] [--l7-share F]
           [--connections N] [--price-core USD] [--price-gib USD] [-o json]
                                       what the mesh adds (latency, CPU, memory, cost) beside
                                       Istio sidecars, from the recorded benchmarks

Resources:
  apply -f FILE|DIR [--dry-run] [--wait]   create or update; --wait until every agent runs it
  get KIND [NAME] [-n NS|-A] [-o json|yaml|wide]
  delete -f FILE|DIR | KIND NAME [-n NS] [--ignore-not-found]

On a Kubernetes cluster ($KUBECONFIG):
  install [--set KEY=VALUE ...] [-f values.yaml] [--dry-run [-o yaml|json]] [--helm-chart DIR]
                                       the controller, the agent DaemonSet, CRDs and RBAC; -o prints them
  uninstall [--purge]                  remove what install made (--purge: the mesh CRDs and their objects too)

Processes:
  controller [--local-cluster [--replica N]|--kubeconfig F]
                                       run a controller replica (ambit up starts the local cluster's)
  local-cluster                        run the local cluster's Kubernetes API, pods and agents
                                       (ambit up starts it)
  agent --node NAME ...                run a node agent (ambit up starts one per node)
  agent --cni-uninstall                take ambit's CNI plugin off this node (--cni-conf-dir, --cni-bin-dir)
  sample http-server|tcp-echo|load     the sample workloads' programs

Global flags: --state-dir DIR (default /var/lib/ambit, or $AMBIT_STATE_DIR)
apply, get, delete, enroll and waypoint talk to the Kubernetes API of $KUBECONFIG, else of the local cluster
`;

async function main(argv: string[]): Promise<number> {
  let stateDir = process.env.AMBIT_STATE_DIR ?? '/var/lib/ambit';
  const i = argv.indexOf('--state-dir');
  if (i >= 0 && argv[0] !== 'exec') {
    stateDir = argv[i + 1] ?? '';
    if (!stateDir) throw new AmbitError('BadFlag', '--state-dir needs a directory');
    argv = [...argv.slice(0, i), ...argv.slice(i + 2)];
  }
  // As kubectl: $KUBECONFIG when set (its first file), else the local cluster's.
  const kubeconfig = process.env.KUBECONFIG?.split(':').find(Boolean) ?? kubeconfigPath(stateDir);
  const ctx: CliContext = { stateDir, root: projectRoot, kubeconfig };
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    process.stdout.write(usage);
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`ambit: unknown command ${JSON.stringify(name)}\n\n${usage}`);
    return 2;
  }
  return (await command(ctx, rest)) ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    // Long-running subcommands (controller, sample servers) return undefined and keep the loop alive.
    if (code !== undefined) process.exitCode = code;
  },
  (err: unknown) => {
    const code = err instanceof AmbitError ? err.code : 'Error';
    process.stderr.write(`error: ${code}: ${errorMessage(err)}\n`);
    process.exitCode = 1;
  },
);
