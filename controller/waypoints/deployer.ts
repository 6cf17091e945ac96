// Deploys waypoints, as Istio's gateway deployment controller does: for every Gateway of class
// `ambit-waypoint` a ServiceAccount (the waypoint's SPIFFE identity), a Deployment running
// `ambit waypoint run`, and a Service on 15008 that node proxies send HBONE to, all named after the
// Gateway and marked as managed; they go when the Gateway goes. The Gateway's status says whether
// it is accepted and programmed (a waypoint pod runs) and at which address.
// Which Services use a waypoint is the push's business (controller/push/share.ts).

import type { Logger } from '../../shared/log.js';
import { enrollLabels } from '../../shared/enrollment.js';
import type { Deployment, Pod, Resource, Service } from '../../shared/resources/types.js';
import { gatewayNameLabel, managedLabel, managedValue, tracesEndpointAnnotation, waypointGatewayClass, waypointHbonePort, workersAnnotation } from '../../shared/waypoint/names.js';
import type { ClusterView, ControllerWriter } from '../kube/view.js';
import { followChanges } from './reconcile.js';

const managedKinds = ['ServiceAccount', 'Deployment', 'Service'] as const;

export interface WaypointDeployerOptions {
  /** The cluster as the informers see it; ServiceAccounts, Deployments, Services, Pods, Gateways and Namespaces among it. */
  view: ClusterView;
  writer: ControllerWriter;
  log: Logger;
  /** The command that runs a waypoint in a pod (`ambit` on the local cluster's pods' PATH). */
  command?: string[];
}

/**
 * Each V8 isolate's young generation at most 3 x 4 MB (Node's default lets it grow to 3 x 16 MB):
 * bench:waypoint measured the waypoint's peak RSS 108 -> 92 MB with it and no loss of requests/s or
 * CPU per request beyond the run's noise (BENCHMARKS.md).
 */
const waypointEnv = [{ name: 'NODE_OPTIONS', value: '--max-semi-space-size=4' }];

export class WaypointDeployer {
  private stopFollowing: (() => void) | undefined;

  constructor(private readonly o: WaypointDeployerOptions) {}

  /** Reconciles now and after every change that concerns a waypoint. */
  start(): void {
    const concerns = (r: Resource) => r.kind === 'Gateway' || r.kind === 'Namespace' || r.metadata.labels?.[gatewayNameLabel] !== undefined;
    this.stopFollowing = followChanges(this.o.view, concerns, () => this.reconcile(), this.o.log, 'waypoint reconcile');
  }

  stop(): void {
    this.stopFollowing?.();
  }

  async reconcile(): Promise<void> {
    const store = this.o.view;
    const gateways = store.list('Gateway').filter((g) => (g.spec as { gatewayClassName?: string }).gatewayClassName === waypointGatewayClass);
    const wanted = new Set<string>();
    for (const g of gateways) {
      const ns = g.metadata.namespace!;
      if (!store.get('Namespace', '', ns)) continue;
      const desired = this.resourcesFor(g);
      for (const r of desired) wanted.add(`${r.kind}/${ns}/${r.metadata.name}`);
      const stale = desired.filter((r) => differs(r, store.get(r.kind, ns, r.metadata.name)));
      if (stale.length) {
        await this.o.writer.apply(stale);
        this.o.log.info({ gateway: `${ns}/${g.metadata.name}`, applied: stale.map((r) => r.kind) }, 'waypoint deployed');
      }
      await this.writeStatus(g);
    }
    // What a deleted Gateway left behind.
    const orphans = managedKinds.flatMap((k) => store.list(k)).filter((r) => r.metadata.labels?.[managedLabel] === managedValue && !wanted.has(`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`));
    if (orphans.length) {
      await this.o.writer.delete(orphans.map((r) => ({ kind: r.kind, namespace: r.metadata.namespace!, name: r.metadata.name })));
      this.o.log.info({ removed: orphans.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`) }, 'waypoint removed');
    }
  }

  /** The ServiceAccount, Deployment and Service a waypoint Gateway stands for. */
  resourcesFor(g: Resource): Resource[] {
    const name = g.metadata.name;
    const namespace = g.metadata.namespace!;
    const labels = { [gatewayNameLabel]: name, [managedLabel]: managedValue };
    // Its pods speak HBONE themselves: the node proxy must not capture them (Istio's waypoints are
    // labelled the same way), yet each has its own identity, the ServiceAccount's.
    const podLabels = { ...labels, [enrollLabels[0]!]: 'none' };
    const command = this.o.command ?? ['ambit', 'waypoint', 'run'];
    const traces = g.metadata.annotations?.[tracesEndpointAnnotation];
    // Checked when the Gateway was admitted (shared/resources/validate.ts).
    const workers = g.metadata.annotations?.[workersAnnotation];
    const deployment: Deployment = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace, labels },
      spec: {
        replicas: 1,
        selector: { matchLabels: { [gatewayNameLabel]: name } },
        template: {
          // Istio's waypoints ask to be scraped the same way.
          metadata: { labels: podLabels, annotations: { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15020', 'prometheus.io/path': '/stats/prometheus' } },
          spec: {
            serviceAccountName: name,
            containers: [{ name: 'waypoint', image: 'ambit', command: [...command, '--gateway', name, ...(traces ? ['--otlp', traces] : []), ...(workers ? ['--workers', workers] : [])], env: waypointEnv, ports: [{ containerPort: waypointHbonePort, name: 'mesh' }, { containerPort: 15020, name: 'metrics' }] }],
          },
        },
      },
    };
    const service: Service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace, labels },
      spec: { selector: { [gatewayNameLabel]: name }, ports: [{ name: 'mesh', port: waypointHbonePort, targetPort: waypointHbonePort }] },
    };
    return [{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace, labels } }, deployment, service];
  }

  /** Accepted once deployed; Programmed once a waypoint pod runs; the address is its Service's. */
  private async writeStatus(g: Resource): Promise<void> {
    const store = this.o.view;
    const ns = g.metadata.namespace!;
    const service = store.get('Service', ns, g.metadata.name) as Service | undefined;
    const running = (store.list('Pod', ns) as Pod[]).filter((p) => p.metadata.labels?.[gatewayNameLabel] === g.metadata.name && p.status.phase === 'Running');
    const generation = g.metadata.generation ?? 1;
    const old = (g.status as { conditions?: { type: string; status: string; lastTransitionTime: string }[] } | undefined)?.conditions ?? [];
    const condition = (type: string, ok: boolean, reason: string, message: string) => {
      const was = old.find((c) => c.type === type);
      const status = ok ? 'True' : 'False';
      return { type, status, reason, message, observedGeneration: generation, lastTransitionTime: was?.status === status ? was.lastTransitionTime : new Date().toISOString() };
    };
    const status = {
      conditions: [
        condition('Accepted', true, 'Accepted', 'Resource accepted'),
        running.length
          ? condition('Programmed', true, 'Programmed', `${running.length} waypoint pod${running.length > 1 ? 's' : ''} running`)
          : condition('Programmed', false, 'Pending', 'waiting for a waypoint pod to run'),
      ],
      ...(service?.spec?.clusterIP ? { addresses: [{ type: 'IPAddress', value: service.spec.clusterIP }] } : {}),
    };
    if (JSON.stringify(status) === JSON.stringify(g.status)) return;
    await this.o.writer.status(g, status);
  }
}

/** Whether what is stored differs from what the waypoint needs (labels and spec; what ambit fills in aside). */
function differs(want: Resource, have: Resource | undefined): boolean {
  if (!have) return true;
  for (const [k, v] of Object.entries(want.metadata.labels ?? {})) if (have.metadata.labels?.[k] !== v) return true;
  if (want.kind === 'Service') {
    const w = (want as Service).spec!;
    const h = (have as Service).spec!;
    return JSON.stringify(w.selector) !== JSON.stringify(h.selector) || JSON.stringify(w.ports) !== JSON.stringify(h.ports);
  }
  return JSON.stringify(want.spec) !== JSON.stringify(have.spec);
}
