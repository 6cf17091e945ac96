// The controller's waypoint side, reading the cluster through the local Kubernetes API (informers)
// and writing back through it: a Gateway of class ambit-waypoint becomes a ServiceAccount, a
// Deployment and a Service (and goes with them), and routes attached to Services get the status
// conditions that say what the waypoint does with them, including whether any waypoint serves the
// Service at all.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { applyResources, deleteResources, type ApplyContext } from '../../../controller/resources/apply.js';
import { WaypointDeployer } from '../../../controller/waypoints/deployer.js';
import { RouteStatusWriter } from '../../../controller/waypoints/route-status.js';
import { ClusterCache, controllerKinds } from '../../../controller/kube/cache.js';
import { ControllerWriter } from '../../../controller/kube/view.js';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { createLogger } from '../../../shared/log.js';
import { startApi, type TestApi } from '../apiserver/helpers.js';
import { ResourceInvalid } from '../../../shared/errors.js';
import type { Deployment, Resource } from '../../../shared/resources/types.js';
import { until } from '../until.js';

let t: TestApi;
let ctx: ApplyContext;
let client: KubeClient;
let cache: ClusterCache;
let writer: ControllerWriter;
const log = createLogger('test', 'silent');

const gateway = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name, namespace: 'shop', ...extra },
  spec: { gatewayClassName: 'ambit-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
});
const base = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { selector: { app: 'web' }, ports: [{ name: 'http', port: 80 }] } },
  { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web-v1', namespace: 'shop' }, spec: { selector: { app: 'web', version: 'v1' }, ports: [{ name: 'http', port: 80 }] } },
];
const route = {
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'HTTPRoute',
  metadata: { name: 'canary', namespace: 'shop' },
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 80 }], rules: [{ backendRefs: [{ name: 'web-v1', port: 80 }, { name: 'web-v9', port: 80 }] }] },
};

test.before.each(async () => {
  t = await startApi();
  // What users apply goes into the API server's store, as `ambit apply` does.
  ctx = t.ctx;
  applyResources(ctx, base);
  client = new KubeClient(loadKubeconfig(t.kubeconfig));
  cache = new ClusterCache(client, controllerKinds, log);
  await cache.start();
  writer = new ControllerWriter(client);
});
test.after.each(async () => {
  cache.stop();
  client.close();
  await t.close();
});

test('a waypoint Gateway is deployed as its own ServiceAccount, Deployment and Service on 15008, and removed with it', async () => {
  const deployer = new WaypointDeployer({ view: cache, writer, log });
  deployer.start();
  applyResources(ctx, [gateway('waypoint', { annotations: { 'ambit.dev/otlp-traces-endpoint': 'http://10.250.0.254:4318/v1/traces', 'ambit.dev/waypoint-workers': '3' } })]);
  // The first pass may write the status before the informers have seen the Service it made: wait
  // for the status that carries the Service's address.
  await until('the Gateway status with its address', () => (ctx.store.get('Gateway', 'shop', 'waypoint')?.status as { addresses?: unknown[] } | undefined)?.addresses);
  const d = ctx.store.get('Deployment', 'shop', 'waypoint') as Deployment;
  assert.ok(ctx.store.get('ServiceAccount', 'shop', 'waypoint'));
  assert.is(d.spec!.template.spec.serviceAccountName, 'waypoint');
  assert.is(d.spec!.template.metadata!.labels!['ambit.dev/dataplane-mode'], 'none', 'its pods are not captured: they speak HBONE');
  assert.equal(d.spec!.template.spec.containers[0]!.command.slice(-6), ['--gateway', 'waypoint', '--otlp', 'http://10.250.0.254:4318/v1/traces', '--workers', '3']);
  assert.equal(d.spec!.template.spec.containers[0]!.env, [{ name: 'NODE_OPTIONS', value: '--max-semi-space-size=4' }], "V8's young generation bounded");
  const svc = ctx.store.get('Service', 'shop', 'waypoint') as Resource<string, { ports: { port: number }[]; clusterIP: string }>;
  assert.equal(svc.spec!.ports.map((p) => p.port), [15008]);
  const status = ctx.store.get('Gateway', 'shop', 'waypoint')!.status as { conditions: { type: string; status: string }[]; addresses: { value: string }[] };
  assert.equal(status.conditions.map((c) => [c.type, c.status]), [['Accepted', 'True'], ['Programmed', 'False']], 'programmed only once a pod runs');
  assert.is(status.addresses[0]!.value, svc.spec!.clusterIP);
  assert.ok(d.metadata.managedFields?.some((f) => f.manager === 'ambit-controller'), 'written through the API as the controller');
  deleteResources(ctx, [{ kind: 'Gateway', namespace: 'shop', name: 'waypoint' }]);
  // The deployer deletes what it made one object at a time: wait for the last of them.
  await until('the Deployment, Service and ServiceAccount gone', () => ['Deployment', 'Service', 'ServiceAccount'].every((k) => !ctx.store.get(k, 'shop', 'waypoint')));
  deployer.stop();
});

test('a waypoint Gateway must listen for HBONE on 15008, and says which field is wrong', () => {
  const bad = gateway('waypoint');
  (bad.spec.listeners[0] as { protocol: string }).protocol = 'HTTP';
  try {
    applyResources(ctx, [bad]);
    assert.unreachable('should refuse');
  } catch (err) {
    assert.instance(err, ResourceInvalid);
    assert.match((err as Error).message, 'spec.listeners[0].protocol must be HBONE');
  }
});

test('a waypoint Gateway whose waypoint-for label is not service, workload, all or none is refused, naming the label', () => {
  for (const label of ['istio.io/waypoint-for', 'ambit.dev/waypoint-for']) {
    try {
      applyResources(ctx, [gateway('waypoint-bogus', { labels: { [label]: 'pods' } })]);
      assert.unreachable('should refuse');
    } catch (err) {
      assert.instance(err, ResourceInvalid);
      assert.match((err as Error).message, `metadata.labels["${label}"] must be service, workload, all, none`);
      assert.match((err as Error).message, '"pods"');
    }
    assert.is(ctx.store.get('Gateway', 'shop', 'waypoint-bogus'), undefined, 'nothing applied');
  }
});

test('a waypoint Gateway whose workers annotation is not a whole number from 1 to 64 is refused, naming the annotation', () => {
  for (const value of ['0', '65', 'two', '1.5', '']) {
    try {
      applyResources(ctx, [gateway('waypoint-bogus', { annotations: { 'ambit.dev/waypoint-workers': value } })]);
      assert.unreachable('should refuse');
    } catch (err) {
      assert.instance(err, ResourceInvalid);
      assert.match((err as Error).message, `metadata.annotations["ambit.dev/waypoint-workers"] must be a whole number from 1 to 64 (the waypoint's event loops), not ${JSON.stringify(value)}`);
    }
    assert.is(ctx.store.get('Gateway', 'shop', 'waypoint-bogus'), undefined, 'nothing applied');
  }
});

test('a route gets Accepted, ResolvedRefs naming the missing backend, and whether a waypoint serves its Service', async () => {
  const statusWriter = new RouteStatusWriter(cache, writer, log);
  statusWriter.start();
  applyResources(ctx, [route]);
  await until('the route status', () => ctx.store.get('HTTPRoute', 'shop', 'canary')?.status);
  const parents = () => (ctx.store.get('HTTPRoute', 'shop', 'canary')!.status as { parents: { controllerName: string; conditions: { type: string; status: string; reason: string; message: string }[] }[] }).parents;
  const conditions = parents()[0]!.conditions;
  assert.is(parents()[0]!.controllerName, 'ambit.dev/waypoint');
  assert.equal(conditions.find((c) => c.type === 'Accepted')?.status, 'True');
  const refs = conditions.find((c) => c.type === 'ResolvedRefs')!;
  assert.equal([refs.status, refs.reason], ['False', 'BackendNotFound']);
  assert.match(refs.message, 'web-v9');
  const bound = conditions.find((c) => c.type === 'ambit.dev/WaypointBound')!;
  assert.equal([bound.status, bound.reason], ['False', 'NoWaypoint']);
  assert.match(bound.message, 'istio.io/use-waypoint');
  // The namespace uses a waypoint that exists: the route is in force.
  applyResources(ctx, [gateway('waypoint'), { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio.io/use-waypoint': 'waypoint' } } }]);
  await until('the route bound', () => parents()[0]!.conditions.find((x) => x.type === 'ambit.dev/WaypointBound')?.status === 'True');
  // A waypoint for pod-addressed traffic only does not route Service traffic: the route does nothing.
  applyResources(ctx, [gateway('waypoint', { labels: { 'istio.io/waypoint-for': 'workload' } })]);
  const unbound = await until('the route unbound', () => parents()[0]!.conditions.find((c) => c.type === 'ambit.dev/WaypointBound' && c.status === 'False'));
  assert.equal([unbound.status, unbound.reason], ['False', 'NoWaypoint']);
  assert.match(unbound.message, 'takes no Service traffic (istio.io/waypoint-for: workload');
  applyResources(ctx, [gateway('waypoint', { labels: { 'istio.io/waypoint-for': 'all' } })]);
  await until('the route bound again', () => parents()[0]!.conditions.find((c) => c.type === 'ambit.dev/WaypointBound')?.status === 'True');
  const revision = ctx.store.currentRevision;
  await new Promise((r) => setTimeout(r, 300));
  assert.is(ctx.store.currentRevision, revision, 'an unchanged status is not written again');
  statusWriter.stop();
});

test.run();
