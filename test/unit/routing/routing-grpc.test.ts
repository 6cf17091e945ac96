// GRPCRoute: method matching on /<service>/<method>, the spec's precedence, and how GRPCRoutes and
// HTTPRoutes share a Service (GEP-1294: they never merge; on one port the GRPCRoute wins).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes, isGrpcRequest, routeStatus } from '../../../shared/routing/index.js';
import { echoParent, meshNs, route, send, services } from './routing-helpers.js';

const grpcHeaders = { 'content-type': 'application/grpc' };
const to = (name: string) => [{ name, port: 7070 }];
const call = (table: ReturnType<typeof compileRoutes>, path: string, headers: Record<string, string> = {}) => {
  const o = send(table, { port: 7070, method: 'POST', path, headers: { ...grpcHeaders, ...headers } });
  return o.status === 200 ? o.backend! : String(o.status);
};

test('method matches: exact service, exact method, both, and whole-name regexes, most specific first', () => {
  const r = route('GRPCRoute', 'g', {
    parentRefs: [{ ...echoParent, port: 7070 }],
    rules: [
      { matches: [{ method: { service: 'shop.Cart' } }], backendRefs: to('echo-v1') },
      { matches: [{ method: { service: 'shop.Cart', method: 'Checkout' } }], backendRefs: to('echo-v2') },
      { matches: [{ method: { method: 'Health' } }], backendRefs: to('echo') },
      { matches: [{ method: { type: 'RegularExpression', service: 'shop\\.(Orders|Users)' } }], backendRefs: to('echo-v2') },
      { backendRefs: to('echo') },
    ],
  });
  const table = compileRoutes([r], services);
  assert.equal(
    [
      call(table, '/shop.Cart/Add'),
      call(table, '/shop.Cart/Checkout'),
      call(table, '/shop.Cart/Health'),
      call(table, '/other.Svc/Health'),
      call(table, '/shop.Orders/List'),
      call(table, '/shop.OrdersX/List'),
      call(table, '/shop.Cartx/Add'),
    ],
    ['echo-v1', 'echo-v2', 'echo-v1', 'echo', 'echo-v2', 'echo', 'echo'],
  );
});

test('header matches break ties between equal method matches; no match is 404 for the proxy to answer as gRPC', () => {
  const r = route('GRPCRoute', 'g', {
    parentRefs: [{ ...echoParent, port: 7070 }],
    rules: [
      { matches: [{ method: { service: 'a.B' } }], backendRefs: to('echo-v1') },
      { matches: [{ method: { service: 'a.B' }, headers: [{ name: 'x-canary', value: 'yes' }] }], backendRefs: to('echo-v2') },
    ],
  });
  const table = compileRoutes([r], services);
  assert.equal([call(table, '/a.B/C'), call(table, '/a.B/C', { 'x-canary': 'yes' }), call(table, '/z.Y/C')], ['echo-v1', 'echo-v2', '404']);
  assert.is(table.lookup({ namespace: meshNs, name: 'echo' }, 7070, meshNs)?.protocol, 'grpc');
});

test('a GRPCRoute takes a Service port from HTTPRoutes there; the HTTPRoute still routes the ports it alone has', () => {
  const grpc = route('GRPCRoute', 'g', { parentRefs: [{ ...echoParent, port: 7070 }], rules: [{ backendRefs: to('echo-v2') }] });
  const http = route('HTTPRoute', 'h', { parentRefs: [echoParent], rules: [{ backendRefs: [{ name: 'echo-v1' }] }] });
  const table = compileRoutes([http, grpc], services);
  assert.equal([call(table, '/a.B/C'), send(table, { port: 80 }).backend], ['echo-v2', 'echo-v1']);
  const accepted = routeStatus(http, services, [http, grpc])[0]!.conditions.find((c) => c.type === 'Accepted')!;
  assert.equal([accepted.status, accepted.reason], ['True', 'Accepted']);
  assert.match(accepted.message, /not port 7070: a GRPCRoute attaches/);
  const onlyGrpcPort = route('HTTPRoute', 'h2', { parentRefs: [{ ...echoParent, port: 7070 }], rules: [{ backendRefs: to('echo-v1') }] });
  const conflicted = routeStatus(onlyGrpcPort, services, [onlyGrpcPort, grpc])[0]!.conditions.find((c) => c.type === 'Accepted')!;
  assert.equal([conflicted.status, conflicted.reason], ['False', 'Conflicted']);
});

test('gRPC requests are recognised by content-type', () => {
  assert.equal(
    ['application/grpc', 'application/grpc+proto', 'application/grpc;charset=utf-8', 'application/grpc-web', 'application/json', undefined].map((ct) => isGrpcRequest({ 'content-type': ct })),
    [true, true, true, false, false, false],
  );
});

test.run();
