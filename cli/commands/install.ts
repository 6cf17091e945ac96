// `ambit install`: renders ambit's manifests from values (deploy/) and applies them through the
// Kubernetes API, as `ambit apply` does (every object checked by a dry run first); `--dry-run -o
// yaml|json` prints them instead, with no cluster needed (as `istioctl manifest generate`), and
// `--helm-chart DIR` writes the Helm chart made from the same renderer. `ambit uninstall` removes
// what install made.

import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { AmbitError } from '../../shared/errors.js';
import type { Resource } from '../../shared/resources/types.js';
import { agentPods, newAdminToken, planInstall, uninstallRefs } from '../../deploy/install.js';
import { render } from '../../deploy/manifests.js';
import { resolveValues, setOverride, valuesFile } from '../../deploy/values.js';
import { writeChart } from '../../deploy/helm.js';
import type { CliContext } from '../context.js';
import { applyResources, deleteResources, withCluster } from '../kube.js';

export async function install(ctx: CliContext, args: string[]): Promise<number> {
  const { values: flags } = parseArgs({
    args,
    options: {
      'dry-run': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      set: { type: 'string', multiple: true },
      values: { type: 'string', short: 'f', multiple: true },
      'helm-chart': { type: 'string' },
    },
  });
  // As Helm: the files in order, then each --set over them.
  const values = resolveValues([...(flags.values ?? []).map(valuesFile), ...(flags.set ?? []).map(setOverride)]);
  if (flags['helm-chart']) {
    for (const file of writeChart(flags['helm-chart'])) process.stdout.write(`${file}\n`);
    return 0;
  }
  if (flags.output !== undefined) {
    if (flags.output !== 'yaml' && flags.output !== 'json') throw new AmbitError('BadFlag', `-o ${flags.output}: must be yaml or json`);
    if (!flags['dry-run']) throw new AmbitError('BadFlag', '-o prints the manifests instead of installing them: give --dry-run too');
    // Every CRD (the cluster is not asked which it has) and a fresh query API token.
    const resources = render(values, { adminToken: newAdminToken() });
    process.stdout.write(flags.output === 'json' ? JSON.stringify({ apiVersion: 'v1', kind: 'List', items: resources }, null, 2) + '\n' : printYaml(resources));
    return 0;
  }
  const dryRun = flags['dry-run'] === true;
  await withCluster(ctx, async (client) => {
    const plan = await planInstall(client, values);
    const suffix = dryRun ? ' (server dry run)' : '';
    for (const name of plan.kept) process.stdout.write(`customresourcedefinition/${name} kept: installed by another (Istio or the Gateway API), not ambit's to change\n`);
    const { results } = await applyResources(client, plan.resources, dryRun);
    for (const r of results) {
      process.stdout.write(`${r.resource} ${r.action}${suffix}\n`);
      for (const w of r.warnings) process.stdout.write(`  warning: ${w}\n`);
    }
  });
  return 0;
}

export async function uninstall(ctx: CliContext, args: string[]): Promise<number> {
  const { values: flags } = parseArgs({ args, options: { purge: { type: 'boolean' }, timeout: { type: 'string' } } });
  const timeoutSeconds = Number(flags.timeout ?? 120);
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 0) throw new AmbitError('BadFlag', `--timeout ${flags.timeout}: must be seconds`);
  return withCluster(ctx, async (client) => {
    const refs = await uninstallRefs(client, flags.purge === true);
    const deleted = await deleteResources(client, refs, { ignoreNotFound: true });
    for (const d of deleted) process.stdout.write(`${d} deleted\n`);
    if (!deleted.length) process.stdout.write('ambit is not installed on this cluster: nothing to delete\n');
    // Each agent removes ambit's entry from its node's CNI configuration as it stops with no
    // successor; wait for them, so the nodes are clean when this returns.
    const until = Date.now() + timeoutSeconds * 1000;
    let left = await agentPods(client);
    if (left.length) process.stdout.write(`waiting for ${left.length} agent pod(s) to stop: each removes ambit's entry from its node's CNI configuration as it ends\n`);
    while (left.length && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1000));
      left = await agentPods(client);
    }
    if (left.length) {
      process.stdout.write(`warning: agent pods still stopping after ${timeoutSeconds} s (${left.join(', ')}); each removes its node's CNI entry when it ends\n`);
      return 1;
    }
    if (!flags.purge) process.stdout.write('The mesh CRDs and the policies and routes in them are kept; `ambit uninstall --purge` removes them too.\n');
    return 0;
  });
}

/** Multi-document YAML, as kubectl and istioctl print manifests. */
export function printYaml(resources: Resource[]): string {
  return resources.map((r) => stringify(r, { lineWidth: 0 })).join('---\n');
}
