// Matching and precedence, from the conformance tests MeshHTTPRouteMatching,
// MeshHTTPRouteQueryParamMatching, MeshTrafficSplit, MeshHTTPRouteSimpleSameNamespace and
// MeshHTTPRouteNamedRule, then the spec's tie-breaks the suite does not reach.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes } from '../../../shared/routing/index.js';
import { conformanceTable, echoParent, route, send, services } from './routing-helpers.js';

/** Which backend answers each request (404 when no rule matches). */
function backends(table: ReturnType<typeof conformanceTable>, requests: { path: string; headers?: Record<string, string>; method?: string }[]): string[] {
  return requests.map((r) => {
    const o = send(table, r);
    return o.status === 200 ? o.backend! : String(o.status);
  });
}

test('MeshHTTPRouteMatching: paths match by segment and OR-ed header matches pick the backend', () => {
  const table = conformanceTable('httproute-matching');
  const cases: [string, Record<string, string> | undefined, string][] = [
    ['/', undefined, 'echo-v1'],
    ['/example', undefined, 'echo-v1'],
    ['/', { Version: 'one' }, 'echo-v1'],
    ['/v2', undefined, 'echo-v2'],
    ['/v2/example', undefined, 'echo-v2'],
    ['/', { Version: 'two' }, 'echo-v2'],
    ['/v2/', undefined, 'echo-v2'],
    // Not a path segment prefix, so it does not match /v2.
    ['/v2example', undefined, 'echo-v1'],
    ['/foo/v2/example', undefined, 'echo-v1'],
  ];
  assert.equal(
    backends(table, cases.map(([path, headers]) => ({ path, headers }))),
    cases.map((c) => c[2]),
  );
});

test('MeshHTTPRouteQueryParamMatching: query parameters, alone and ANDed with path and headers, in the spec precedence', () => {
  const table = conformanceTable('httproute-query-param-matching');
  const cases: [string, Record<string, string> | undefined, string][] = [
    ['/?animal=whale', undefined, 'echo-v1'],
    ['/?animal=dolphin', undefined, 'echo-v2'],
    ['/?animal=whale&otherparam=irrelevant', undefined, 'echo-v1'],
    ['/?animal=dolphin&color=yellow', undefined, 'echo-v2'],
    ['/?color=blue', undefined, '404'],
    ['/?animal=dog', undefined, '404'],
    ['/?animal=whaledolphin', undefined, '404'],
    ['/', undefined, '404'],
    ['/path1?animal=whale', undefined, 'echo-v1'],
    ['/?animal=whale', { version: 'one' }, 'echo-v2'],
    ['/path3?animal=shark', undefined, 'echo-v1'],
    ['/path4?animal=kraken', { version: 'three' }, 'echo-v1'],
    ['/?animal=shark', undefined, '404'],
    ['/path4?animal=kraken', undefined, '404'],
    // A longer path prefix wins over a query parameter match.
    ['/path5?animal=hydra', undefined, 'echo-v1'],
  ];
  assert.equal(
    backends(table, cases.map(([path, headers]) => ({ path, headers }))),
    cases.map((c) => c[2]),
  );
});

test('MeshTrafficSplit: Exact paths split one Service between two versions', () => {
  const table = conformanceTable('mesh-split');
  assert.equal(backends(table, [{ path: '/v1' }, { path: '/v2' }, { path: '/v1/' }, { path: '/v3' }]), ['echo-v1', 'echo-v2', '404', '404']);
});

test('MeshHTTPRouteSimpleSameNamespace: a rule without matches sends every request to its backend on the backend port', () => {
  const o = send(conformanceTable('httproute-simple-same-namespace'), { path: '/' });
  assert.equal([o.status, o.backend, o.backendPort], [200, 'echo-v1', 8080]);
});

test('MeshHTTPRouteNamedRule: named and unnamed rules route alike, and the match tells which rule won', () => {
  const table = conformanceTable('httproute-named-rule');
  const named = send(table, { path: '/named' });
  const unnamed = send(table, { path: '/unnamed' });
  assert.equal([named.backend, named.ruleName, named.path], ['echo-v1', 'named-rule', '/named']);
  assert.equal([unnamed.backend, unnamed.ruleName], ['echo-v2', undefined]);
});

const to = (name: string) => [{ name, port: 8080 }];

test('across routes, the oldest route wins a tie, then namespace/name in alphabetical order', () => {
  const spec = (backend: string) => ({ parentRefs: [echoParent], rules: [{ backendRefs: to(backend) }] });
  const older = route('HTTPRoute', 'zeta', spec('echo-v1'), { creationTimestamp: '2024-01-01T00:00:00Z' });
  const newer = route('HTTPRoute', 'alpha', spec('echo-v2'), { creationTimestamp: '2025-01-01T00:00:00Z' });
  assert.is(send(compileRoutes([newer, older], services), {}).backend, 'echo-v1', 'older route wins');
  const sameAgeA = route('HTTPRoute', 'alpha', spec('echo-v2'));
  const sameAgeZ = route('HTTPRoute', 'zeta', spec('echo-v1'));
  assert.is(send(compileRoutes([sameAgeZ, sameAgeA], services), {}).backend, 'echo-v2', 'alphabetical first wins');
});

test('within a route the first rule wins a tie; Exact beats any prefix, a method match beats more headers', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/a' } }], backendRefs: to('echo-v1') },
      { matches: [{ path: { type: 'PathPrefix', value: '/a/' } }], backendRefs: to('echo-v2') },
      { matches: [{ path: { type: 'Exact', value: '/a' } }], backendRefs: to('echo') },
      { matches: [{ path: { type: 'PathPrefix', value: '/m' }, headers: [{ name: 'x-a', value: '1' }, { name: 'x-b', value: '1' }] }], backendRefs: to('echo-v1') },
      { matches: [{ path: { type: 'PathPrefix', value: '/m' }, method: 'POST' }], backendRefs: to('echo-v2') },
    ],
  });
  const table = compileRoutes([r], services);
  assert.equal(backends(table, [{ path: '/a/b' }, { path: '/a' }, { path: '/m', method: 'POST', headers: { 'x-a': '1', 'x-b': '1' } }, { path: '/m', headers: { 'x-a': '1', 'x-b': '1' } }]), [
    'echo-v1',
    'echo',
    'echo-v2',
    'echo-v1',
  ]);
});

test('with path, method and headers equal, more query parameter matches win', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { matches: [{ queryParams: [{ name: 'a', value: '1' }] }], backendRefs: to('echo-v1') },
      { matches: [{ queryParams: [{ name: 'a', value: '1' }, { name: 'b', value: '2' }] }], backendRefs: to('echo-v2') },
    ],
  });
  assert.equal(backends(compileRoutes([r], services), [{ path: '/?a=1&b=2' }, { path: '/?a=1' }]), ['echo-v2', 'echo-v1']);
});

test('when two header matches name the same header, only the first counts', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [{ matches: [{ headers: [{ name: 'x-v', value: 'one' }, { name: 'X-V', value: 'two' }] }], backendRefs: to('echo-v1') }],
  });
  assert.equal(backends(compileRoutes([r], services), [{ path: '/', headers: { 'x-v': 'one' } }, { path: '/', headers: { 'x-v': 'two' } }]), ['echo-v1', '404']);
});

test('RegularExpression paths match the whole path and rank after every PathPrefix, longer patterns first', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { matches: [{ path: { type: 'RegularExpression', value: '/api/v[0-9]+' } }], backendRefs: to('echo-v1') },
      { matches: [{ path: { type: 'RegularExpression', value: '/api/v[0-9]+/users' } }], backendRefs: to('echo-v2') },
      { matches: [{ path: { type: 'PathPrefix', value: '/api/v9' } }], backendRefs: to('echo') },
    ],
  });
  const table = compileRoutes([r], services);
  assert.equal(backends(table, [{ path: '/api/v1' }, { path: '/api/v1/users?x=1' }, { path: '/api/v9' }, { path: '/api/v1/other' }, { path: '/xapi/v1' }]), [
    'echo-v1',
    'echo-v2',
    'echo',
    '404',
    '404',
  ]);
});

test('header names match case-insensitively, values exactly or by whole-value regex; repeated headers are joined', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { matches: [{ headers: [{ name: 'X-Env', value: 'prod' }] }], backendRefs: to('echo-v1') },
      { matches: [{ headers: [{ name: 'x-user', type: 'RegularExpression', value: 'ann|bob' }] }], backendRefs: to('echo-v2') },
    ],
  });
  const table = compileRoutes([r], services);
  assert.equal(backends(table, [{ path: '/', headers: { 'x-env': 'prod' } }, { path: '/', headers: { 'x-env': 'Prod' } }, { path: '/', headers: { 'x-user': 'bob' } }, { path: '/', headers: { 'x-user': 'bobby' } }]), [
    'echo-v1',
    '404',
    'echo-v2',
    '404',
  ]);
  const parent = table.lookup({ namespace: 'gateway-conformance-mesh', name: 'echo' }, 80, 'gateway-conformance-mesh')!;
  assert.is(table.match(parent, { method: 'GET', path: '/', headers: { 'x-env': ['prod', 'canary'] } }), undefined, 'a repeated header is matched as its joined value');
});

test('query parameter values are percent-decoded and the first of repeated parameters counts', () => {
  const r = route('HTTPRoute', 'r', { parentRefs: [echoParent], rules: [{ matches: [{ queryParams: [{ name: 'q', value: 'a b/c' }] }], backendRefs: to('echo-v1') }] });
  const table = compileRoutes([r], services);
  assert.equal(backends(table, [{ path: '/?q=a%20b%2Fc' }, { path: '/?q=a+b/c' }, { path: '/?q=x&q=a%20b%2Fc' }, { path: '/?Q=a%20b%2Fc' }]), ['echo-v1', 'echo-v1', '404', '404']);
});

test('a bad regex drops its rule at compile time; requests never throw and the other rules still route', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { matches: [{ path: { type: 'RegularExpression', value: '/a(' } }], backendRefs: to('echo-v1') },
      { matches: [{ path: { type: 'PathPrefix', value: '/b' } }], backendRefs: to('echo-v2') },
    ],
  });
  const table = compileRoutes([r], services);
  assert.equal(backends(table, [{ path: '/a(' }, { path: '/b' }]), ['404', 'echo-v2']);
  assert.equal(
    table.problems.map((p) => [p.rule, p.field, p.reason]),
    [[0, 'spec.rules[0].matches[0].path.value', 'UnsupportedValue']],
  );
});

test('an absolute-form request-target is matched on its path', () => {
  const table = conformanceTable('httproute-matching');
  assert.equal(backends(table, [{ path: 'http://echo/v2/x?y=1' }, { path: 'http://echo' }]), ['echo-v2', 'echo-v1']);
});

test.run();
