// Which routes apply to a request: by Service and port, and by the client's namespace. From the
// conformance tests MeshPorts, MeshFrontend, MeshFrontendHostname and MeshConsumerRoute.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes } from '../../../shared/routing/index.js';
import { conformanceTable, consumerNs, echoParent, meshNs, route, send, services } from './routing-helpers.js';

test('MeshPorts: a parentRef port scopes the route to that Service port; without one it covers every port', () => {
  const table = conformanceTable('mesh-ports');
  const cases = [
    send(table, { service: 'echo-v1', port: 80 }),
    send(table, { service: 'echo-v1', port: 8080 }),
    send(table, { service: 'echo-v2', port: 80 }),
    send(table, { service: 'echo-v2', port: 8080 }),
  ];
  assert.equal(
    cases.map((o) => [o.backend, o.responseHeaders['x-header-set']]),
    [
      ['echo-v1', 'v1'],
      ['echo-v1', undefined],
      ['echo-v2', 'v2'],
      ['echo-v2', 'v2'],
    ],
  );
  assert.is(table.lookup({ namespace: meshNs, name: 'echo-v1' }, 8080, meshNs), undefined, 'no route on the excluded port: the waypoint forwards to the Service');
});

test('MeshFrontend and MeshFrontendHostname: the route follows the Service the request was sent to, not its Host header', () => {
  const table = conformanceTable('mesh-frontend');
  const toV2 = send(table, { service: 'echo-v2', headers: { host: 'echo-v1' } });
  const toV1 = send(table, { service: 'echo-v1', headers: { host: 'echo-v2' } });
  assert.equal([toV2.backend, toV2.responseHeaders['x-header-set']], ['echo-v2', 'set']);
  assert.equal([toV1.backend, toV1.responseHeaders['x-header-set']], ['echo-v1', undefined]);
});

test("MeshConsumerRoute: a route in another namespace applies to clients in the route's namespace only", () => {
  const table = conformanceTable('mesh-consumer-route');
  const consumer = send(table, { service: 'echo-v1', clientNamespace: consumerNs });
  const producer = send(table, { service: 'echo-v1', clientNamespace: meshNs });
  assert.equal([consumer.backend, consumer.backendPort, consumer.responseHeaders['x-header-set']], ['echo-v1', 80, 'set']);
  assert.equal([producer.backend, producer.responseHeaders['x-header-set']], ['echo-v1', undefined]);
});

test("consumer routes replace the producer routes for their namespace's clients, and only for them", () => {
  const producer = route('HTTPRoute', 'producer', { parentRefs: [echoParent], rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080 }] }] });
  const consumer = route('HTTPRoute', 'consumer', { parentRefs: [{ ...echoParent, namespace: meshNs }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/c' } }], backendRefs: [{ name: 'echo-v2', namespace: meshNs, port: 8080 }] }] }, { namespace: consumerNs });
  const table = compileRoutes([producer, consumer], services);
  assert.equal(
    [
      send(table, { clientNamespace: consumerNs, path: '/c' }).backend,
      // Not merged with the producer route: the consumer group has no rule for `/`.
      send(table, { clientNamespace: consumerNs, path: '/' }).status,
      send(table, { clientNamespace: meshNs, path: '/c' }).backend,
      send(table, { clientNamespace: 'elsewhere', path: '/c' }).backend,
    ],
    ['echo-v2', 404, 'echo-v1', 'echo-v1'],
  );
});

test('parentRefs that are not core Services, or name a missing Service or port, attach nowhere', () => {
  const spec = (parentRef: object) => ({ parentRefs: [parentRef], rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080 }] }] });
  const table = compileRoutes(
    [
      route('HTTPRoute', 'gateway', spec({ name: 'echo' })),
      route('HTTPRoute', 'nogroup', spec({ kind: 'Service', name: 'echo' })),
      route('HTTPRoute', 'missing', spec({ ...echoParent, name: 'nope' })),
      route('HTTPRoute', 'port', spec({ ...echoParent, port: 81 })),
    ],
    services,
  );
  for (const port of [80, 81, 8080]) assert.is(table.lookup({ namespace: meshNs, name: 'echo' }, port, meshNs), undefined, `port ${port}`);
});

test('sectionName names a Service port by its name', () => {
  const r = route('HTTPRoute', 'r', { parentRefs: [{ ...echoParent, sectionName: 'http-alt' }], rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080 }] }] });
  const table = compileRoutes([r], services);
  assert.equal([table.lookup({ namespace: meshNs, name: 'echo' }, 8080, meshNs)?.port, table.lookup({ namespace: meshNs, name: 'echo' }, 80, meshNs)], [8080, undefined]);
});

test('routes on the same Service port merge: a port-scoped route and an all-ports route both apply there', () => {
  const all = route('HTTPRoute', 'all', { parentRefs: [echoParent], rules: [{ backendRefs: [{ name: 'echo-v1', port: 8080 }] }] });
  const scoped = route('HTTPRoute', 'scoped', { parentRefs: [{ ...echoParent, port: 80 }], rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/s' } }], backendRefs: [{ name: 'echo-v2', port: 8080 }] }] });
  const table = compileRoutes([all, scoped], services);
  assert.equal(
    [send(table, { path: '/s' }).backend, send(table, { path: '/x' }).backend, send(table, { port: 8080, path: '/s' }).backend],
    ['echo-v2', 'echo-v1', 'echo-v1'],
  );
});

test.run();
