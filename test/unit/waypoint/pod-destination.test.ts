// Traffic addressed to a pod at the waypoint (waypoint-for workload or all): the waypoint takes it
// only for the pods bound to it, forwards it to that pod whatever routes are attached to a Service of
// the same name, and holds it to the policies attached to its Gateway but not to those attached to a
// Service, as Istio's waypoint does.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pino } from 'pino';
import { WaypointSecurity } from '../../../waypoint/security.js';
import { WaypointState } from '../../../waypoint/state.js';
import { Router } from '../../../waypoint/router.js';
import { addressedPod } from '../../../waypoint/pod-destination.js';
import type { DownstreamRequest } from '../../../waypoint/proxy/forward.js';
import type { TunnelContext } from '../../../waypoint/proxy/ingress.js';
import type { PolicyEntry, ServiceEntry, TrafficEntry, WorkloadEntry } from '../../../shared/protocol/config.js';

const self = { namespace: 'shop', name: 'waypoint' };
const bound: WorkloadEntry = { name: 'web', namespace: 'shop', ip: '10.244.1.2', node: 'node-1', serviceAccount: 'web', owner: 'Deployment/web', waypoint: self };
const elsewhere: WorkloadEntry = { ...bound, name: 'api', ip: '10.244.1.3', waypoint: { namespace: 'shop', name: 'other' } };
const unbound: WorkloadEntry = { ...bound, name: 'db', ip: '10.244.1.4' };
delete unbound.waypoint;
// A Service named as the pod, with a route and a policy attached: neither may touch the pod's traffic.
const web: ServiceEntry = { name: 'web', namespace: 'shop', clusterIP: '10.96.0.20', ports: [{ port: 8080, targetPort: 8080 }], endpoints: [{ ip: bound.ip, node: 'node-1', ports: { '8080': 8080 } }] };
const route: TrafficEntry = {
  kind: 'HTTPRoute',
  name: 'to-v2',
  namespace: 'shop',
  spec: { parentRefs: [{ group: '', kind: 'Service', name: 'web', port: 8080 }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], filters: [{ type: 'RequestRedirect', requestRedirect: { statusCode: 301, hostname: 'elsewhere' } }] }] },
};
const deny = (name: string, targetRef: Record<string, string>, path: string): PolicyEntry => ({ kind: 'AuthorizationPolicy', name, namespace: 'shop', spec: { targetRefs: [targetRef], action: 'DENY', rules: [{ to: [{ operation: { paths: [path] } }] }] } });
const policies = [deny('at-gateway', { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'waypoint' }, '/gateway-denied'), deny('at-service', { group: '', kind: 'Service', name: 'web' }, '/service-denied')];

const state = new WaypointState();
state.apply({ type: 'snapshot', version: 1, trustDomain: 'cluster.local', services: [web], workloads: [bound, elsewhere, unbound], nodes: [], namespaces: [], trustBundles: [], traffic: [route], policies });
const log = pino({ level: 'silent' });
const ctx = (service: ServiceEntry): TunnelContext => ({ peer: { trustDomain: 'cluster.local', namespace: 'shop', serviceAccount: 'client' }, peerUri: 'spiffe://cluster.local/ns/shop/sa/client', sourceIp: '10.244.1.9', service, port: 8080 });
const request = (url: string) => ({ url, method: 'GET', headers: { host: 'x' } }) as unknown as DownstreamRequest;

test('the waypoint takes a pod address only for the pods bound to it, as one destination per pod and port', () => {
  const d = state.podAt(bound.ip, 8080, self)!;
  assert.ok(d);
  assert.is(addressedPod(d), state.workloadAt(bound.ip));
  assert.equal(d.endpoints, [{ ip: bound.ip, node: 'node-1', ports: { '8080': 8080 } }]);
  assert.is(state.podAt(bound.ip, 8080, self), d, 'made once per snapshot');
  assert.is(state.podAt(elsewhere.ip, 8080, self), undefined, 'bound to another waypoint');
  assert.is(state.podAt(unbound.ip, 8080, self), undefined, 'bound to none');
  assert.is(addressedPod(web), undefined, 'a Service is no pod');
});

test('routes attached to a Service do not apply to the pod addressed directly', () => {
  const router = new Router(state, log, () => undefined);
  const pod = state.podAt(bound.ip, 8080, self)!;
  assert.equal(router.plan(request('/x'), ctx(pod)), { backend: { service: pod, port: 8080 } });
  assert.is(router.plan(request('/x'), ctx(web)).respond?.status, 301, 'the same route applies to the Service');
});

test('policies attached to the Gateway apply to the pod addressed directly; those attached to a Service do not', async () => {
  const s = new WaypointSecurity({ waypoint: 'shop/waypoint', rootNamespace: 'istio-system', state, log, fetchJwks: () => Promise.reject(new Error('no fetch')) });
  const pod = state.podAt(bound.ip, 8080, self)!;
  assert.is((await s.admit(request('/gateway-denied'), ctx(pod)))?.status, 403);
  assert.is(await s.admit(request('/service-denied'), ctx(pod)), undefined);
  assert.is((await s.admit(request('/service-denied'), ctx(web)))?.status, 403, 'the Service-attached DENY holds for the Service');
  s.close();
});

test.run();
