// `ambit waypoint ...`, as `istioctl waypoint`: `apply` declares a namespace's waypoint (a Gateway of
// class ambit-waypoint, which the controller deploys) and can point the namespace at it; `list` and
// `delete` do what they say; `run` is what the waypoint's pod executes.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import type { Resource } from '../../shared/resources/types.js';
import { useWaypointLabels, waypointFor, waypointForLabels, waypointGatewayClass, waypointForValues, waypointHbonePort, waypointWorkers, workersAnnotation, type WaypointFor } from '../../shared/waypoint/names.js';
import type { CliContext } from '../context.js';
import { applyResources, deleteResources, labelNamespace, listResources, withCluster } from '../kube.js';

const usage = 'usage: ambit waypoint apply -n NAMESPACE [--name waypoint] [--for service|workload|all|none] [--workers N] [--enroll-namespace] | list [-n NAMESPACE] | delete NAME -n NAMESPACE | run --gateway NAME [--workers N]';

export async function waypoint(ctx: CliContext, args: string[]): Promise<number | void> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, name: { type: 'string' }, for: { type: 'string' }, 'enroll-namespace': { type: 'boolean' }, gateway: { type: 'string' }, otlp: { type: 'string' }, 'log-level': { type: 'string' }, workers: { type: 'string' } },
  });
  switch (sub) {
    case 'run': {
      const { readWaypointConfig } = await import('../../waypoint/config.js');
      const { runWaypoint } = await import('../../waypoint/main.js');
      await runWaypoint(readWaypointConfig(values, process.env));
      return new Promise<void>(() => undefined);
    }
    case 'apply':
      return applyWaypoint(ctx, values);
    case 'list':
      return listWaypoints(ctx, values.namespace);
    case 'delete': {
      const name = positionals[0] ?? values.name;
      if (!name || !values.namespace) throw new AmbitError('BadArgs', usage);
      await withCluster(ctx, (client) => deleteResources(client, [{ kind: 'Gateway', namespace: values.namespace!, name }]));
      process.stdout.write(`waypoint ${values.namespace}/${name} deleted\n`);
      return 0;
    }
    default:
      throw new AmbitError('BadArgs', usage);
  }
}

async function applyWaypoint(ctx: CliContext, o: { namespace?: string; name?: string; for?: string; workers?: string; 'enroll-namespace'?: boolean }): Promise<number> {
  if (!o.namespace) throw new AmbitError('BadArgs', `waypoint apply needs -n NAMESPACE; ${usage}`);
  const name = o.name ?? 'waypoint';
  const handles = (o.for ?? 'service') as WaypointFor;
  // Checked here too (the controller refuses the label as well), so nothing is sent when it is wrong.
  if (!waypointForValues.includes(handles)) throw new AmbitError('BadArgs', `--for must be ${waypointForValues.join(', ')} (the traffic the waypoint takes: addressed to a Service, to a pod, both, or neither), not ${JSON.stringify(o.for)}`);
  const workers = o.workers === undefined ? undefined : waypointWorkers(o.workers);
  if (typeof workers === 'string') throw new AmbitError('BadArgs', `--workers ${workers}`);
  const gateway: Resource = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'Gateway',
    metadata: { name, namespace: o.namespace, labels: { [waypointForLabels[1]!]: handles }, ...(workers ? { annotations: { [workersAnnotation]: String(workers) } } : {}) },
    spec: { gatewayClassName: waypointGatewayClass, listeners: [{ name: 'mesh', port: waypointHbonePort, protocol: 'HBONE' }] },
  };
  await withCluster(ctx, async (client) => {
    const r = await applyResources(client, [gateway], false);
    for (const x of r.results) process.stdout.write(`${x.resource} ${x.action}\n`);
    if (o['enroll-namespace']) await labelNamespace(client, o.namespace!, { [useWaypointLabels[1]!]: name });
  });
  process.stdout.write(`waypoint ${o.namespace}/${name} applied (traffic for: ${handles})${o['enroll-namespace'] ? `; namespace ${o.namespace} labelled ${useWaypointLabels[1]}=${name}` : `; label a namespace or ${handles === 'workload' ? 'Pod' : handles === 'all' ? 'Service or Pod' : 'Service'} ${useWaypointLabels[1]}=${name} to use it`}\n`);
  return 0;
}

async function listWaypoints(ctx: CliContext, namespace: string | undefined): Promise<number> {
  const items = await withCluster(ctx, (client) => listResources(client, 'Gateway', namespace));
  const waypoints = items.filter((g) => (g.spec as { gatewayClassName?: string }).gatewayClassName === waypointGatewayClass);
  if (!waypoints.length) {
    process.stdout.write('No waypoints.\n');
    return 0;
  }
  process.stdout.write('NAMESPACE\tNAME\tPROGRAMMED\tADDRESS\tFOR\n');
  for (const g of waypoints) {
    const status = g.status as { conditions?: { type: string; status: string }[]; addresses?: { value: string }[] } | undefined;
    // Which traffic it takes (its waypoint-for label, `service` when unset), as istioctl waypoint list shows it.
    process.stdout.write(`${g.metadata.namespace}\t${g.metadata.name}\t${status?.conditions?.find((c) => c.type === 'Programmed')?.status ?? 'Unknown'}\t${status?.addresses?.[0]?.value ?? '-'}\t${waypointFor(g.metadata.labels)}\n`);
  }
  return 0;
}
