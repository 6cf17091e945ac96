// Service endpoints: selection by labels and namespace, named target ports, running pods only.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { endpointsOf, hostsFor, servicesRuleset } from '../../../cluster/kube-proxy/services.js';
import { defaultClusterFile, layout } from '../../../cluster/topology.js';
import type { Pod, Service } from '../../../shared/resources/types.js';

const pod = (name: string, ns: string, labels: Record<string, string>, ip: string, phase: 'Running' | 'Pending' = 'Running'): Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: ns, labels },
  spec: { nodeName: 'node-1', containers: [{ name: 'c', command: ['x'], ports: [{ containerPort: 8080, name: 'http' }] }] },
  status: { phase, podIP: ip, hostIP: '10.250.0.1', restarts: 0, containerStatuses: [] },
});
const web: Service = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'web', namespace: 'shop' }, spec: { clusterIP: '10.96.0.10', selector: { app: 'web' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } };

test('endpoints are the running pods of the namespace that match, on the named port', () => {
  const pods = [pod('a', 'shop', { app: 'web' }, '10.244.1.2'), pod('b', 'shop', { app: 'web' }, '10.244.2.2'), pod('c', 'other', { app: 'web' }, '10.244.1.3'), pod('d', 'shop', { app: 'web' }, '10.244.1.4', 'Pending'), pod('e', 'shop', { app: 'db' }, '10.244.1.5')];
  const [sp] = endpointsOf([web], pods);
  assert.equal(sp!.endpoints.map((e) => `${e.ip}:${e.port}`), ['10.244.1.2:8080', '10.244.2.2:8080']);
});

test('the ruleset picks among endpoints at random and refuses a Service without endpoints', () => {
  const t = layout(defaultClusterFile());
  const rules = servicesRuleset(t, endpointsOf([web], [pod('a', 'shop', { app: 'web' }, '10.244.1.2'), pod('b', 'shop', { app: 'web' }, '10.244.2.2')]));
  assert.match(rules, 'ip daddr 10.96.0.10 tcp dport 80 goto svc_0');
  assert.match(rules, 'numgen random mod 2 vmap { 0 : goto ep_0_0, 1 : goto ep_0_1 }');
  assert.match(rules, 'dnat to 10.244.2.2:8080');
  const empty = servicesRuleset(t, endpointsOf([web], []));
  assert.not.match(empty, 'svc_0');
  assert.match(empty, 'ip daddr 10.96.0.0/16 meta l4proto tcp reject with tcp reset');
});

test('pods resolve Service names the way cluster DNS would, short names only in their namespace', () => {
  assert.match(hostsFor('shop', [web]), '10.96.0.10 web.shop.svc.cluster.local web.shop.svc web.shop web\n');
  assert.match(hostsFor('client', [web]), '10.96.0.10 web.shop.svc.cluster.local web.shop.svc web.shop\n');
});

test.run();
