// Route status per Service parentRef: Accepted, ResolvedRefs and PartiallyInvalid with the
// Gateway API's reasons, computed by the same compile the waypoint runs.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { routeStatus, type RouteCondition } from '../../../shared/routing/index.js';
import { consumerNs, echoParent, meshNs, route, routesFromYaml, services } from './routing-helpers.js';
import { manifests } from './routing-manifests.js';

const summary = (cs: RouteCondition[]) => cs.map((c) => `${c.type}=${c.status}/${c.reason}`);

test('every conformance manifest is Accepted with its references resolved, except the weight-0 echo-v3 that does not exist', () => {
  for (const [name, text] of Object.entries(manifests)) {
    for (const r of routesFromYaml(text)) {
      const statuses = routeStatus(r, services);
      assert.ok(statuses.length > 0, `${name}: a status per Service parentRef`);
      for (const s of statuses) {
        const expected = name === 'grpcroute-weight' ? ['Accepted=True/Accepted', 'ResolvedRefs=False/BackendNotFound'] : ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs'];
        assert.equal(summary(s.conditions), expected, name);
        assert.is(s.controllerName, 'ambit.dev/waypoint');
      }
    }
  }
});

test('the status echoes each Service parentRef and says which clients and ports it routes', () => {
  const [consumer] = routesFromYaml(manifests['mesh-consumer-route']!);
  const [s] = routeStatus(consumer!, services);
  assert.equal(s!.parentRef, { group: '', kind: 'Service', name: 'echo-v1', namespace: meshNs });
  assert.is(s!.conditions[0]!.message, `routes requests from clients in namespace ${consumerNs} to Service ${meshNs}/echo-v1 ports 80, 8080, 443, 9090, 7070`);
  assert.is(s!.conditions[0]!.observedGeneration, 1);
});

test('NoMatchingParent for a missing Service, a missing port, and a Service parentRef without the core group', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [{ ...echoParent, name: 'nope' }, { ...echoParent, port: 81 }, { kind: 'Service', name: 'echo' }, { name: 'some-gateway' }],
    rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080 }] }],
  });
  const statuses = routeStatus(r, services);
  assert.is(statuses.length, 3, 'the Gateway parentRef is left to its own controller');
  assert.equal(
    statuses.map((s) => [s.conditions[0]!.reason, s.conditions[0]!.message]),
    [
      ['NoMatchingParent', `Service ${meshNs}/nope does not exist`],
      ['NoMatchingParent', `Service ${meshNs}/echo has no port 81 (its ports: 80 (http), 8080 (http-alt), 443 (https), 9090 (tcp), 7070 (grpc))`],
      ['NoMatchingParent', 'parentRef kind Service with no group (which the spec defaults to gateway.networking.k8s.io) names no Service; write group: "" for a core Service'],
    ],
  );
});

test('ResolvedRefs names missing backends and wrong kinds; a cross-namespace backend needs no ReferenceGrant', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { backendRefs: [{ name: 'gone', port: 80 }, { name: 'echo-v1', port: 8080 }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/k' } }], backendRefs: [{ group: 'example.com', kind: 'Bucket', name: 'b' }] },
      { matches: [{ path: { type: 'PathPrefix', value: '/p' } }], backendRefs: [{ name: 'echo-v1', port: 81 }] },
    ],
  });
  const resolved = routeStatus(r, services)[0]!.conditions.find((c) => c.type === 'ResolvedRefs')!;
  assert.equal([resolved.status, resolved.reason], ['False', 'BackendNotFound']);
  assert.is(
    resolved.message,
    `spec.rules[0].backendRefs[0]: backendRef Service ${meshNs}/gone does not exist; spec.rules[1].backendRefs[0]: backendRef example.com/Bucket ${meshNs}/b: only core Services can be backends; spec.rules[2].backendRefs[0]: backendRef Service ${meshNs}/echo-v1 has no port 81 (its ports: 80, 8080, 443, 9090, 7070)`,
  );
  const cross = route('HTTPRoute', 'x', { parentRefs: [{ ...echoParent, namespace: meshNs }], rules: [{ backendRefs: [{ name: 'echo-v1', namespace: meshNs, port: 80 }] }] }, { namespace: consumerNs });
  assert.equal(summary(routeStatus(cross, services)[0]!.conditions), ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
});

test('a bad regex or incompatible filters drop their rule (PartiallyInvalid, "Dropped Rule"); with no rule left the route is not Accepted', () => {
  const bad = { matches: [{ headers: [{ name: 'x', type: 'RegularExpression', value: '[' }] }], backendRefs: [{ name: 'echo-v1', port: 8080 }] };
  const both = {
    matches: [{ path: { type: 'PathPrefix', value: '/b' } }],
    filters: [
      { type: 'URLRewrite', urlRewrite: { hostname: 'a' } },
      { type: 'RequestRedirect', requestRedirect: { hostname: 'b' } },
    ],
  };
  const good = { matches: [{ path: { type: 'PathPrefix', value: '/g' } }], backendRefs: [{ name: 'echo-v1', port: 8080 }] };
  const partly = routeStatus(route('HTTPRoute', 'p', { parentRefs: [echoParent], rules: [bad, good, both] }), services)[0]!;
  assert.equal(summary(partly.conditions), ['Accepted=True/Accepted', 'PartiallyInvalid=True/UnsupportedValue', 'ResolvedRefs=True/ResolvedRefs']);
  assert.match(partly.conditions[1]!.message, /^Dropped Rules 0, 2: spec\.rules\[0\]\.matches\[0\]\.headers\[0\]\.value: "\[" is not a valid regular expression/);
  assert.match(partly.conditions[1]!.message, /spec\.rules\[2\]\.filters\[1\]: a rule may have one RequestRedirect and no URLRewrite beside it/);
  const none = routeStatus(route('HTTPRoute', 'n', { parentRefs: [echoParent], rules: [both] }), services)[0]!;
  assert.equal(summary(none.conditions), ['Accepted=False/IncompatibleFilters', 'ResolvedRefs=True/ResolvedRefs']);
});

test('an ExtensionRef the waypoint does not know leaves ResolvedRefs False; ambit.dev FaultInjection resolves', () => {
  const ext = (group: string, kind: string) =>
    route('HTTPRoute', 'e', { parentRefs: [echoParent], rules: [{ filters: [{ type: 'ExtensionRef', extensionRef: { group, kind, name: 'f' } }], backendRefs: [{ name: 'echo-v1', port: 8080 }] }] });
  assert.equal(summary(routeStatus(ext('ambit.dev', 'FaultInjection'), services)[0]!.conditions), ['Accepted=True/Accepted', 'ResolvedRefs=True/ResolvedRefs']);
  assert.equal(summary(routeStatus(ext('example.com', 'Thing'), services)[0]!.conditions), ['Accepted=True/Accepted', 'ResolvedRefs=False/InvalidKind']);
});

test.run();
