// Which traffic goes through a waypoint, for each value of its Gateway's `istio.io/waypoint-for`
// (service, the default; workload; all; none), from what the controller computes for a node (the
// share, through a real full push into the agent's state) to the resolver's answer at the source and
// the waypoint-only guard at the destination. Service-addressed traffic is Istio's `service`,
// pod-addressed traffic its `workload`; a Service without a waypoint reaching a pod with its own goes
// through the pod's, as ztunnel sends it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ShareBuilder } from '../../../controller/push/share.js';
import { AgentState } from '../../../agent/state/state.js';
import { Resolver, type Resolution } from '../../../agent/proxy/resolve.js';
import { waypointOnly } from '../../../agent/proxy/inbound.js';
import type { Pod, Resource } from '../../../shared/resources/types.js';
import type { WaypointFor } from '../../../shared/waypoint/names.js';

const nodeIp = { 'node-1': '10.250.0.1', 'node-2': '10.250.0.2' } as const;

const pod = (ns: string, name: string, node: keyof typeof nodeIp, ip: string, labels: Record<string, string>, serviceAccount = name): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { nodeName: node, serviceAccountName: serviceAccount, containers: [{ name: 'c', command: ['x'] }] },
  status: { phase: 'Running', podIP: ip, hostIP: nodeIp[node], restarts: 0, containerStatuses: [] },
});

const gateway = (handles: WaypointFor | undefined): Resource => ({
  apiVersion: 'gateway.networking.k8s.io/v1',
  kind: 'Gateway',
  metadata: { name: 'waypoint', namespace: 'shop', ...(handles ? { labels: { 'istio.io/waypoint-for': handles } } : {}) },
  spec: { gatewayClassName: 'ambit-waypoint', listeners: [{ name: 'mesh', port: 15008, protocol: 'HBONE' }] },
});

/** shop uses its waypoint (namespace label); web-1 and web-2 back Service web; the waypoint's own pod runs on node-2. */
function resources(handles: WaypointFor | undefined, extra: Resource[] = []): Resource[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient', 'istio.io/use-waypoint': 'waypoint' } } },
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
    gateway(handles),
    pod('other', 'client', 'node-1', '10.244.1.9', { app: 'client' }),
    pod('shop', 'web-1', 'node-1', '10.244.1.2', { app: 'web' }),
    pod('shop', 'web-2', 'node-2', '10.244.2.2', { app: 'web' }),
    pod('shop', 'waypoint-abc', 'node-2', '10.244.2.50', { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }, 'waypoint'),
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] } },
    { apiVersion: 'v1', kind: 'Service', metadata: { name: 'waypoint', namespace: 'shop', labels: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' } }, spec: { clusterIP: '10.96.0.50', selector: { 'gateway.networking.k8s.io/gateway-name': 'waypoint' }, ports: [{ port: 15008 }] } },
    ...extra,
  ];
}

function pushed(share: ShareBuilder, node: string): AgentState {
  const full = share.fullPush(node);
  const state = new AgentState(node);
  state.apply({ type: 'config', full: true, from: 0, to: share.revision, upserts: JSON.parse(`[${[full.common.toString(), ...full.own].filter(Boolean).join(',')}]`), deletes: [] });
  return state;
}

function resolverFor(handles: WaypointFor | undefined, extra: Resource[] = []): { state: AgentState; resolver: Resolver } {
  const share = new ShareBuilder('istio-system');
  share.load(resources(handles, extra), 7);
  const state = pushed(share, 'node-1');
  return { state, resolver: new Resolver(state) };
}

const ok = (r: ReturnType<Resolver['resolve']>): Resolution => {
  if ('error' in r) throw new Error(r.reason);
  return r;
};

/** Where a connection goes: `waypoint -> ip:port` when through the waypoint, else `direct -> ip:port`. */
function route(handles: WaypointFor | undefined, ip: string, port: number, extra: Resource[] = []): string {
  const { state, resolver } = resolverFor(handles, extra);
  const r = ok(resolver.resolve({ ip, port }, state.workloads.get('workload/other/client')!, true));
  return r.waypoint ? `waypoint ${r.waypoint.namespace}/${r.waypoint.name} pod ${r.node!.ip} -> ${r.target.ip}:${r.target.port}` : `direct -> ${r.target.ip}:${r.target.port}`;
}

test('pod-addressed traffic goes through the waypoint for workload and all, addressed to the pod; direct for service (the default) and none', () => {
  assert.is(route('workload', '10.244.2.2', 8080), 'waypoint shop/waypoint pod 10.244.2.50 -> 10.244.2.2:8080');
  assert.is(route('all', '10.244.2.2', 8080), 'waypoint shop/waypoint pod 10.244.2.50 -> 10.244.2.2:8080');
  assert.is(route('service', '10.244.2.2', 8080), 'direct -> 10.244.2.2:8080');
  assert.is(route(undefined, '10.244.2.2', 8080), 'direct -> 10.244.2.2:8080');
  assert.is(route('none', '10.244.2.2', 8080), 'direct -> 10.244.2.2:8080');
});

test('Service-addressed traffic goes through the waypoint to the VIP for service and all; for workload, through it to the endpoint picked; direct for none', () => {
  assert.is(route('service', '10.96.0.10', 80), 'waypoint shop/waypoint pod 10.244.2.50 -> 10.96.0.10:80');
  assert.is(route(undefined, '10.96.0.10', 80), 'waypoint shop/waypoint pod 10.244.2.50 -> 10.96.0.10:80');
  assert.is(route('all', '10.96.0.10', 80), 'waypoint shop/waypoint pod 10.244.2.50 -> 10.96.0.10:80');
  assert.match(route('workload', '10.96.0.10', 80), /^waypoint shop\/waypoint pod 10\.244\.2\.50 -> 10\.244\.[12]\.2:8080$/);
  assert.match(route('none', '10.96.0.10', 80), /^direct -> 10\.244\.[12]\.2:8080$/);
});

test("the waypoint's own pods, a pod labelled use-waypoint=none and a pod outside the namespace are never sent through it; a pod's own label binds it", () => {
  assert.is(route('workload', '10.244.2.50', 15008), 'direct -> 10.244.2.50:15008');
  const optedOut = pod('shop', 'web-3', 'node-2', '10.244.2.3', { app: 'web', 'istio.io/use-waypoint': 'none' });
  assert.is(route('workload', '10.244.2.3', 8080, [optedOut]), 'direct -> 10.244.2.3:8080');
  const elsewhere = pod('other', 'db', 'node-2', '10.244.2.4', { app: 'db' });
  assert.is(route('workload', '10.244.2.4', 5432, [elsewhere]), 'direct -> 10.244.2.4:5432');
  const labelled = pod('other', 'cache', 'node-2', '10.244.2.5', { 'ambit.dev/use-waypoint': 'waypoint', 'ambit.dev/use-waypoint-namespace': 'shop' });
  assert.is(route('workload', '10.244.2.5', 6379, [labelled]), 'waypoint shop/waypoint pod 10.244.2.50 -> 10.244.2.5:6379');
});

test('with no waypoint pod ready, pod-addressed traffic is refused rather than sent around the waypoint', () => {
  const share = new ShareBuilder('istio-system');
  share.load(resources('workload').filter((r) => r.metadata.name !== 'waypoint-abc'), 7);
  const state = pushed(share, 'node-1');
  const r = new Resolver(state).resolve({ ip: '10.244.2.2', port: 8080 }, state.workloads.get('workload/other/client'), true);
  assert.ok('error' in r);
  assert.match((r as { reason: string }).reason, 'uses waypoint shop/waypoint for traffic addressed to it, which has no ready pod: refused rather than bypassed');
});

test('the destination takes connections to a pod bound for workload traffic only from the waypoint, on every port; for service, only on the Service port', () => {
  const waypointPeer = { namespace: 'shop', serviceAccount: 'waypoint' };
  const clientPeer = { namespace: 'other', serviceAccount: 'client' };
  const decide = (handles: WaypointFor, port: number, peer?: typeof clientPeer) => {
    const { state, resolver } = resolverFor(handles);
    const d = waypointOnly(resolver, state.workloads.get('workload/shop/web-1')!, { ip: '10.244.1.2', port }, peer);
    return d ? d.reason : 'allowed';
  };
  assert.is(decide('workload', 8080, waypointPeer), 'allowed');
  assert.is(decide('workload', 9090, waypointPeer), 'allowed');
  assert.match(decide('workload', 9090, clientPeer), "pod shop/web-1 port 9090 is behind waypoint shop/waypoint (the pod's own, for traffic addressed to it): only the waypoint may connect");
  assert.match(decide('workload', 8080), 'only the waypoint may connect');
  assert.match(decide('all', 8080, clientPeer), 'behind waypoint shop/waypoint (Service shop/web uses it) and waypoint shop/waypoint (the pod\'s own');
  assert.is(decide('service', 9090, clientPeer), 'allowed', 'service: the ports no waypointed Service targets stay open, as before');
  assert.match(decide('service', 8080, clientPeer), 'behind waypoint shop/waypoint (Service shop/web uses it): only the waypoint may connect; go through the Service');
  assert.is(decide('none', 8080, clientPeer), 'allowed');
});

test("changing the Gateway's waypoint-for, or the namespace's label, changes the pods' entries the agents get", () => {
  const share = new ShareBuilder('istio-system');
  share.load(resources('service'), 7);
  const bound = () => JSON.parse(`[${share.fullPush('node-2').common.toString()}]`).find((e: { key: string }) => e.key === 'workload/shop/web-2').value.waypoint;
  assert.is(bound(), undefined);
  let changed = share.apply({ revision: 8, changes: [{ type: 'upsert', resource: gateway('workload') }] });
  assert.ok(changed.includes('workload/shop/web-2'));
  assert.equal(bound(), { namespace: 'shop', name: 'waypoint' });
  changed = share.apply({ revision: 9, changes: [{ type: 'upsert', resource: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } } }] });
  assert.ok(changed.includes('workload/shop/web-2'));
  assert.not.ok(changed.includes('workload/other/client'), 'only the pods of that namespace');
  assert.is(bound(), undefined);
});

test.run();
