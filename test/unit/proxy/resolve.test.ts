// Where the proxy sends a connection, from what the controller computes for a node (the share,
// through a real full push into the agent's state) to the resolver's answer: round robin by
// default, a DestinationRule's RANDOM or LEAST_REQUEST, PreferClose, HBONE only to enrolled pods
// (an opted-out pod of an enrolled namespace included), passthrough outside the mesh.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ShareBuilder } from '../../../controller/push/share.js';
import { AgentState } from '../../../agent/state/state.js';
import { Resolver, type Resolution } from '../../../agent/proxy/resolve.js';
import type { Pod, Resource } from '../../../shared/resources/types.js';

const nodeIp = { 'node-1': '10.250.0.1', 'node-2': '10.250.0.2' } as const;

const pod = (ns: string, name: string, node: keyof typeof nodeIp, ip: string, labels: Record<string, string>): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { nodeName: node, serviceAccountName: name, containers: [{ name: 'c', command: ['x'] }] },
  status: { phase: 'Running', podIP: ip, hostIP: nodeIp[node], restarts: 0, containerStatuses: [] },
});
const service = (name: string, clusterIP: string, app: string, extra: Record<string, unknown> = {}): Resource => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name, namespace: 'shop' },
  spec: { clusterIP, selector: { app }, ports: [{ port: 80, targetPort: 8080 }], ...extra },
});

function stateOf(node: string, resources: Resource[]): AgentState {
  const share = new ShareBuilder('istio-system');
  share.load(resources, 7);
  const full = share.fullPush(node);
  const upserts = JSON.parse(`[${[full.common.toString(), ...full.own].filter(Boolean).join(',')}]`);
  const state = new AgentState(node);
  state.apply({ type: 'config', full: true, from: 0, to: 7, upserts, deletes: [] });
  return state;
}

const resources: Resource[] = [
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'ambit.dev/dataplane-mode': 'ambient' } } },
  { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } },
  pod('shop', 'client', 'node-1', '10.244.1.9', { app: 'client' }),
  pod('shop', 'web-1', 'node-1', '10.244.1.2', { app: 'web' }),
  pod('shop', 'web-2', 'node-2', '10.244.2.2', { app: 'web' }),
  pod('shop', 'web-3', 'node-2', '10.244.2.3', { app: 'web' }),
  pod('shop', 'quiet', 'node-2', '10.244.2.4', { app: 'quiet', 'ambit.dev/dataplane-mode': 'none' }),
  pod('plain', 'legacy', 'node-2', '10.244.2.5', { app: 'legacy' }),
  service('web', '10.96.0.10', 'web'),
  service('near', '10.96.0.11', 'web', { trafficDistribution: 'PreferClose' }),
  service('lucky', '10.96.0.12', 'web'),
  service('busy', '10.96.0.13', 'web'),
  service('empty', '10.96.0.14', 'nobody'),
  { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'lucky', namespace: 'shop' }, spec: { host: 'lucky.shop.svc.cluster.local', trafficPolicy: { loadBalancer: { simple: 'RANDOM' } } } },
  { apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'busy', namespace: 'shop' }, spec: { host: 'busy', trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' } } } },
];

const state = stateOf('node-1', resources);
const client = state.workloads.get('workload/shop/client')!;
const ok = (r: ReturnType<Resolver['resolve']>): Resolution => {
  if ('error' in r) throw new Error(r.reason);
  return r;
};

test('round robin by default: each endpoint in turn', () => {
  const resolver = new Resolver(state);
  const picks = Array.from({ length: 6 }, () => ok(resolver.resolve({ ip: '10.96.0.10', port: 80 }, client)).target.ip);
  assert.equal(picks, ['10.244.1.2', '10.244.2.2', '10.244.2.3', '10.244.1.2', '10.244.2.2', '10.244.2.3']);
});

test('a DestinationRule picks RANDOM for its host', () => {
  let n = 0;
  const rolls = [0.9, 0.1, 0.5];
  const resolver = new Resolver(state, new Map(), () => rolls[n++ % 3]!);
  const picks = Array.from({ length: 3 }, () => ok(resolver.resolve({ ip: '10.96.0.12', port: 80 }, client)).target.ip);
  assert.equal(picks, ['10.244.2.3', '10.244.1.2', '10.244.2.2']);
  assert.match(ok(resolver.resolve({ ip: '10.96.0.12', port: 80 }, client)).reason, 'RANDOM');
});

test('LEAST_REQUEST takes the less busy of two endpoints', () => {
  const active = new Map([['10.244.1.2:8080', 5]]);
  let n = 0;
  const rolls = [0, 0.5]; // first 10.244.1.2 (5 open), then 10.244.2.2 (none)
  const resolver = new Resolver(state, active, () => rolls[n++ % 2]!);
  assert.is(ok(resolver.resolve({ ip: '10.96.0.13', port: 80 }, client)).target.ip, '10.244.2.2');
});

test("PreferClose keeps to the client's node while it has an endpoint there", () => {
  const resolver = new Resolver(state);
  for (let i = 0; i < 3; i++) assert.is(ok(resolver.resolve({ ip: '10.96.0.11', port: 80 }, client)).target.ip, '10.244.1.2');
});

test('an enrolled pod is reached over HBONE through its node; an opted-out pod and a pod outside the mesh in plain TCP', () => {
  const resolver = new Resolver(state);
  const web2 = ok(resolver.resolve({ ip: '10.244.2.2', port: 8080 }, client));
  assert.equal([web2.protocol, web2.node?.ip, web2.workload?.name], ['HBONE', '10.250.0.2', 'web-2']);
  assert.is(ok(resolver.resolve({ ip: '10.244.2.4', port: 8080 }, client)).protocol, 'TCP');
  assert.is(ok(resolver.resolve({ ip: '10.244.2.5', port: 8080 }, client)).protocol, 'TCP');
  const outside = ok(resolver.resolve({ ip: '192.0.2.1', port: 443 }, client));
  assert.equal([outside.protocol, outside.workload], ['TCP', undefined]);
  assert.match(outside.reason, 'passthrough');
});

test('a Service without endpoints is refused with the reason', () => {
  const r = new Resolver(state).resolve({ ip: '10.96.0.14', port: 80 }, client);
  assert.ok('error' in r && r.error === 'no-endpoints');
});

test('peeking (ambit explain) does not move the round robin on', () => {
  const resolver = new Resolver(state);
  const a = ok(resolver.resolve({ ip: '10.96.0.10', port: 80 }, client, true)).target.ip;
  const b = ok(resolver.resolve({ ip: '10.96.0.10', port: 80 }, client, true)).target.ip;
  assert.is(a, b);
});

test.run();
