// Resource validation: every kind of bad input is refused with the field named, and manifests keep
// their lines so the error points into the file.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FieldProblem } from '../../../shared/errors.js';
import { locate, parseManifest } from '../../../shared/resources/manifest.js';
import { validateReferences, validateResources } from '../../../shared/resources/validate.js';
import type { Resource } from '../../../shared/resources/types.js';

const deployment = () => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web', namespace: 'shop' },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'web' } },
    template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'web', command: ['sleep', '1'] }] } },
  },
});

const only = (p: FieldProblem[]) => p.map((x) => `${x.field}: ${x.message}`);

test('a valid Deployment passes and a missing namespace defaults to "default"', () => {
  const d = deployment() as Resource;
  delete d.metadata.namespace;
  assert.equal(validateResources([d]), []);
  assert.is(d.metadata.namespace, 'default');
});

test('an unknown field is named with its full path', () => {
  const d = deployment();
  (d.spec.template.spec.containers[0] as Record<string, unknown>).colour = 'red';
  assert.equal(only(validateResources([d])), ['spec.template.spec.containers[0].colour: is not a known field']);
});

test('a wrong type names the field and the type it must have', () => {
  const d = deployment() as unknown as { spec: { replicas: unknown } };
  d.spec.replicas = 'two';
  assert.equal(only(validateResources([d])), ['spec.replicas: must be of type integer']);
});

test('an unknown kind is refused with the known kinds listed', () => {
  const p = validateResources([{ apiVersion: 'v1', kind: 'Frobnicator', metadata: { name: 'x' } }]);
  assert.is(p.length, 1);
  assert.match(p[0]!.message, /"Frobnicator" is not a known kind \(known: Namespace, ServiceAccount, Service, ConfigMap, Secret, Event, Deployment, DaemonSet, PodDisruptionBudget, ClusterRole, ClusterRoleBinding, Role, RoleBinding, Lease, ValidatingWebhookConfiguration, AuthorizationPolicy, PeerAuthentication, RequestAuthentication, DestinationRule, TrustBundle, HTTPRoute, GRPCRoute, Gateway, FaultInjection, LocalRateLimit\)/);
});

test('a wrong apiVersion for a kind is refused', () => {
  const d = deployment();
  d.apiVersion = 'v1';
  assert.equal(only(validateResources([d])), ['apiVersion: must be "apps/v1"']);
});

test('Pods cannot be applied: they come from Deployments', () => {
  const p = validateResources([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } }]);
  assert.match(p[0]!.message, /made by ambit, not applied; apply a Deployment instead/);
});

test('a selector that does not match the template labels is refused', () => {
  const d = deployment();
  d.spec.selector.matchLabels.app = 'other';
  assert.equal(only(validateResources([d])), ['spec.selector.matchLabels.app: does not match spec.template.metadata.labels (app=web)']);
});

test('a Service with two unnamed ports is refused, per port', () => {
  const s = { apiVersion: 'v1', kind: 'Service', metadata: { name: 's' }, spec: { ports: [{ port: 80 }, { port: 80 }] } };
  assert.equal(only(validateResources([s])), [
    'spec.ports[0].name: is required when a Service has more than one port',
    'spec.ports[1].name: is required when a Service has more than one port',
    'spec.ports[1].port: 80 is used by two ports',
  ]);
});

test('an invalid name is refused with what a DNS label is', () => {
  const d = deployment();
  d.metadata.name = 'Web_1';
  assert.match(only(validateResources([d]))[0]!, /^metadata.name: must be a DNS label/);
});

test('the same resource twice in one apply is refused', () => {
  const p = validateResources([deployment(), deployment()]);
  assert.match(p[0]!.message, /appears twice/);
});

test('references: a namespace and service account from the same batch satisfy them; missing ones are named', () => {
  const d = deployment() as Resource;
  (d.spec as { template: { spec: { serviceAccountName?: string } } }).template.spec.serviceAccountName = 'web';
  const none = { get: () => undefined, nodeNames: ['node-1'] };
  assert.equal(only(validateReferences([d], none)), [
    'metadata.namespace: shop does not exist; create the Namespace first (in this apply or before it)',
    'spec.template.spec.serviceAccountName: web does not exist in namespace shop; create the ServiceAccount first',
  ]);
  const ns = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } };
  const sa = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'web', namespace: 'shop' } };
  assert.equal(validateReferences([ns, sa, d], none), []);
});

test('manifests: problems point at the line of the field, across documents', () => {
  const text = `apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
      containers:
        - name: web
          comand: [sleep, "1"]
`;
  const problems: FieldProblem[] = [];
  const docs = parseManifest(text, 'web.yaml', problems);
  assert.equal(problems, []);
  const found = locate(validateResources(docs.map((d) => d.value)), docs);
  const lines = found.map((p) => `${p.file}:${p.line} ${p.field} ${p.message}`);
  assert.equal(lines, [
    'web.yaml:19 spec.template.spec.containers[0].command is required',
    'web.yaml:20 spec.template.spec.containers[0].comand is not a known field',
  ]);
});

test('manifests: a YAML syntax error names the file and line', () => {
  const problems: FieldProblem[] = [];
  parseManifest('apiVersion: v1\nkind: Namespace\nmetadata:\n  name: [oops\n', 'bad.yaml', problems);
  assert.is(problems.length, 1);
  assert.is(problems[0]!.file, 'bad.yaml');
  assert.ok(problems[0]!.line! >= 4, `line ${problems[0]!.line}`);
  assert.match(problems[0]!.message, /syntax error/);
});

test('manifests: a duplicated key is a syntax error, not a silent override', () => {
  const problems: FieldProblem[] = [];
  parseManifest('apiVersion: v1\nkind: Namespace\nkind: Service\nmetadata: {name: x}\n', 'dup.yaml', problems);
  assert.is(problems.length, 1);
  assert.is(problems[0]!.line, 3);
});

test('Istio AuthorizationPolicy: a valid one passes, a misspelt field and a bad action are named', () => {
  const ap = {
    apiVersion: 'security.istio.io/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name: 'allow-client', namespace: 'shop' },
    spec: { selector: { matchLabels: { app: 'web' } }, action: 'ALLOW', rules: [{ from: [{ source: { principals: ['cluster.local/ns/client/sa/curl'] } }], to: [{ operation: { ports: ['8080'] } }] }] },
  };
  assert.equal(validateResources([ap]), []);
  const bad = structuredClone(ap) as unknown as { spec: { action: string; rules: { from: { source: Record<string, unknown> }[] }[] } };
  bad.spec.action = 'PERMIT';
  bad.spec.rules[0]!.from[0]!.source.principal = ['x'];
  assert.equal(only(validateResources([bad])), ['spec.action: must be one of "ALLOW", "DENY", "AUDIT", "CUSTOM"', 'spec.rules[0].from[0].source.principal: is not a known field']);
});

test('PeerAuthentication modes and Gateway API HTTPRoute shapes are checked', () => {
  const pa = { apiVersion: 'security.istio.io/v1', kind: 'PeerAuthentication', metadata: { name: 'strict', namespace: 'shop' }, spec: { mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'PERMISSIVE' } } } };
  assert.equal(validateResources([pa]), []);
  const route = {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name: 'web', namespace: 'shop' },
    spec: { parentRefs: [{ name: 'web', kind: 'Service', group: '' }], rules: [{ backendRefs: [{ name: 'web-v1', port: 80, weight: 90 }, { name: 'web-v2', port: 80, weight: '10' }] }] },
  };
  assert.equal(only(validateResources([route])), ['spec.rules[0].backendRefs[1].weight: must be of type integer']);
});

test("a DestinationRule's load balancer must be one the node proxy implements, and names the field", () => {
  const dr = (simple: string) => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'web', namespace: 'shop' }, spec: { host: 'web', trafficPolicy: { loadBalancer: { simple } } } });
  assert.equal(validateResources([dr('LEAST_REQUEST')]), []);
  const p = validateResources([dr('FASTEST')]);
  assert.is(p.length, 1);
  assert.is(p[0]!.field, 'spec.trafficPolicy.loadBalancer.simple');
});

test.run();
