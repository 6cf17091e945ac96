// `ambit exec POD -- CMD` and `ambit logs POD`: a command inside a pod (its network namespace,
// cgroup and /etc/hosts, as `kubectl exec` would give), and a container's output.

import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import type { Pod } from '../../shared/resources/types.js';
import { findPodIn } from '../../shared/resources/pods.js';
import { inPodArgs, podCgroup } from '../../cluster/kubelet/pods.js';
import { podNetns } from '../../cluster/topology.js';
import { binDir, type CliContext } from '../context.js';
import { listResources, withCluster } from '../kube.js';

/** Finds a pod by name, or the first running pod of `deploy/NAME`. */
export async function findPod(ctx: CliContext, target: string, namespace: string): Promise<Pod> {
  const items = (await withCluster(ctx, (client) => listResources(client, 'Pod', namespace))) as Pod[];
  return findPodIn(items, target, namespace);
}

/** A command in a pod's cgroup, network namespace and /etc/hosts, with ambit's tools on its PATH. */
export function spawnInPod(pod: { node: string; uid: string; namespace: string; name: string }, argv: string[], stdio: StdioOptions): ChildProcess {
  const cgroup = podCgroup(pod.node, pod.uid);
  return spawn('/bin/sh', inPodArgs(cgroup, podNetns(pod.namespace, pod.name), argv), { stdio, env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}` } });
}

export async function exec(ctx: CliContext, args: string[]): Promise<number> {
  const dash = args.indexOf('--');
  if (dash < 0 || dash === args.length - 1) throw new AmbitError('BadArgs', 'usage: ambit exec POD|deploy/NAME [-n NS] -- COMMAND [ARGS...]');
  const { values, positionals } = parseArgs({ args: args.slice(0, dash), allowPositionals: true, options: { namespace: { type: 'string', short: 'n' } } });
  const namespace = values.namespace ?? 'default';
  if (positionals.length !== 1) throw new AmbitError('BadArgs', 'exec needs exactly one pod before --');
  const pod = await findPod(ctx, positionals[0]!, namespace);
  const child = spawnInPod({ node: pod.spec.nodeName, uid: pod.metadata.uid ?? '', namespace, name: pod.metadata.name }, args.slice(dash + 1), 'inherit');
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

export async function logs(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { namespace: { type: 'string', short: 'n' }, container: { type: 'string', short: 'c' } } });
  const namespace = values.namespace ?? 'default';
  if (positionals.length !== 1) throw new AmbitError('BadArgs', 'usage: ambit logs POD|deploy/NAME [-n NS] [-c CONTAINER]');
  const pod = await findPod(ctx, positionals[0]!, namespace);
  const container = values.container ?? pod.spec.containers[0]!.name;
  const file = join(ctx.stateDir, 'logs', `${namespace}.${pod.metadata.name}`, `${container}.log`);
  if (!existsSync(file)) throw new AmbitError('NotFound', `no log for container ${container} of pod ${namespace}/${pod.metadata.name}`);
  await new Promise((resolve, reject) => createReadStream(file).on('end', () => resolve(undefined)).on('error', reject).pipe(process.stdout, { end: false }));
  return 0;
}
