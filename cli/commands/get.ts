// `ambit get KIND [NAME]`: resources as kubectl shows them, or whole as JSON or YAML.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { kindByName, kinds } from '../../shared/resources/kinds.js';
import { type Deployment, type Pod, type Resource, type Service } from '../../shared/resources/types.js';
import type { CliContext } from '../context.js';
import { listResources, withCluster } from '../kube.js';
import { age, outputFormat, printData, table } from '../output.js';
import { podOwner } from '../../shared/resources/owners.js';

export async function get(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, 'all-namespaces': { type: 'boolean', short: 'A' }, output: { type: 'string', short: 'o' } },
  });
  const format = outputFormat(values.output);
  const [kindName, name] = positionals;
  const info = kindName ? kindByName(kindName) : undefined;
  if (!info) throw new AmbitError('BadArgs', `${kindName ? `unknown kind ${kindName}` : 'get needs a kind'}; known: ${kinds.map((k) => k.names[1]).join(', ')}`);
  const namespace = !info.namespaced || values['all-namespaces'] ? undefined : (values.namespace ?? 'default');
  // A Deployment's READY column counts its running pods, as kubectl's does.
  const [items, pods] = await withCluster(ctx, (client) => Promise.all([listResources(client, info.kind, namespace), info.kind === 'Deployment' ? (listResources(client, 'Pod', namespace) as Promise<Pod[]>) : Promise.resolve([])]));
  const selected = name ? items.filter((r) => r.metadata.name === name) : items;
  if (name && selected.length === 0) throw new AmbitError('NotFound', `${info.kind} ${namespace ? `${namespace}/` : ''}${name} not found`);
  if (printData(format, name ? selected[0] : { apiVersion: 'v1', kind: 'List', items: selected })) return 0;
  if (selected.length === 0) {
    process.stderr.write(`No ${info.names[1]} found${namespace ? ` in namespace ${namespace}` : ''}.\n`);
    return 0;
  }
  const wide = format === 'wide';
  const withNs = info.namespaced && !namespace;
  const { headers, row } = columns(info.kind, wide, pods);
  process.stdout.write(table(withNs ? ['NAMESPACE', ...headers] : headers, selected.map((r) => (withNs ? [r.metadata.namespace ?? '', ...row(r)] : row(r)))));
  return 0;
}

function columns(kind: string, wide: boolean, pods: Pod[]): { headers: string[]; row: (r: Resource) => string[] } {
  const labels = (r: Resource) => Object.entries(r.metadata.labels ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>';
  switch (kind) {
    case 'Service':
      return {
        headers: ['NAME', 'CLUSTER-IP', 'PORT(S)', 'AGE', ...(wide ? ['SELECTOR'] : [])],
        row: (r) => {
          const s = (r as Service).spec!;
          const sel = Object.entries(s.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',') || '<none>';
          return [r.metadata.name, s.clusterIP ?? '', s.ports.map((p) => `${p.port}/TCP`).join(','), age(r.metadata.creationTimestamp), ...(wide ? [sel] : [])];
        },
      };
    case 'Deployment':
      return {
        headers: ['NAME', 'READY', 'AGE', ...(wide ? ['COMMAND', 'SERVICE-ACCOUNT'] : [])],
        row: (r) => {
          const spec = (r as Deployment).spec!;
          const owner = `Deployment/${r.metadata.name}`;
          const running = pods.filter((p) => p.metadata.namespace === r.metadata.namespace && podOwner(p) === owner && p.status.phase === 'Running').length;
          return [r.metadata.name, `${running}/${spec.replicas ?? 1}`, age(r.metadata.creationTimestamp), ...(wide ? [spec.template.spec.containers.map((c) => [...c.command, ...(c.args ?? [])].join(' ')).join('; '), spec.template.spec.serviceAccountName ?? 'default'] : [])];
        },
      };
    case 'Pod':
      return {
        headers: ['NAME', 'STATUS', 'RESTARTS', 'IP', 'NODE', 'AGE', ...(wide ? ['SERVICE-ACCOUNT', 'LABELS'] : [])],
        row: (r) => {
          const p = r as Pod;
          return [r.metadata.name, p.status.phase, String(p.status.restarts), p.status.podIP, p.spec.nodeName, age(p.status.startTime ?? r.metadata.creationTimestamp), ...(wide ? [p.spec.serviceAccountName ?? 'default', labels(r)] : [])];
        },
      };
    default:
      return { headers: ['NAME', 'AGE', ...(wide ? ['LABELS'] : [])], row: (r) => [r.metadata.name, age(r.metadata.creationTimestamp), ...(wide ? [labels(r)] : [])] };
  }
}
