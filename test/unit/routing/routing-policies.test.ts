// What a matched rule carries besides backends: timeouts, retries, mirrors and extension filters,
// and the Gateway API durations they are written in.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes, parseGatewayDuration } from '../../../shared/routing/index.js';
import { echoParent, route, send, services } from './routing-helpers.js';

const backend = [{ name: 'echo-v1', port: 8080 }];

test('Gateway API durations: units h, m, s and ms, up to four parts; 0s is zero', () => {
  assert.equal(
    ['10s', '500ms', '1h2m', '1h2m3s4ms', '0s', '', '1d', '1.5s', '1h2m3s4ms5ms', '100000s', 's'].map(parseGatewayDuration),
    [10_000, 500, 3_720_000, 3_723_004, 0, undefined, undefined, undefined, undefined, undefined, undefined],
  );
});

test('timeouts and retry come with the plan; 0s means no timeout and unset stays unset', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      { matches: [{ path: { type: 'PathPrefix', value: '/t' } }], timeouts: { request: '10s', backendRequest: '500ms' }, retry: { attempts: 3, codes: [503, 504], backoff: '100ms' }, backendRefs: backend },
      { matches: [{ path: { type: 'PathPrefix', value: '/z' } }], timeouts: { request: '0s' }, retry: {}, backendRefs: backend },
      { backendRefs: backend },
    ],
  });
  const table = compileRoutes([r], services);
  const plan = (path: string) => send(table, { path }).plan!;
  assert.equal([plan('/t').timeouts, plan('/t').retry], [{ requestMs: 10_000, backendRequestMs: 500 }, { attempts: 3, codes: [503, 504], backoffMs: 100 }]);
  assert.equal([plan('/z').timeouts, plan('/z').retry], [{ requestMs: 0 }, { attempts: 1, codes: [] }]);
  assert.equal([plan('/').timeouts, plan('/').retry], [{}, undefined]);
});

test('a backendRequest timeout longer than the request timeout drops the rule', () => {
  const r = route('HTTPRoute', 'r', { parentRefs: [echoParent], rules: [{ timeouts: { request: '1s', backendRequest: '2s' }, backendRefs: backend }] });
  const table = compileRoutes([r], services);
  assert.equal(table.problems.map((p) => p.field), ['spec.rules[0].timeouts.backendRequest']);
});

test('RequestMirror: percent and fraction decide how many requests are copied; a mirror to a missing Service is not configured', () => {
  const mirror = (requestMirror: object) => route('HTTPRoute', 'm', { parentRefs: [echoParent], rules: [{ filters: [{ type: 'RequestMirror', requestMirror }], backendRefs: backend }] });
  const count = (requestMirror: object) => {
    const table = compileRoutes([mirror(requestMirror)], services);
    let n = 0;
    for (let i = 0; i < 1000; i++) n += send(table, { random: () => (i + 0.5) / 1000 }).plan!.mirrors.length;
    return n;
  };
  assert.equal(
    [
      count({ backendRef: { name: 'echo-v2', port: 8080 } }),
      count({ backendRef: { name: 'echo-v2', port: 8080 }, percent: 25 }),
      count({ backendRef: { name: 'echo-v2', port: 8080 }, fraction: { numerator: 1, denominator: 8 } }),
      count({ backendRef: { name: 'echo-v2', port: 8080 }, percent: 0 }),
      count({ backendRef: { name: 'missing', port: 8080 } }),
    ],
    [1000, 250, 125, 0, 0],
  );
  const m = send(compileRoutes([mirror({ backendRef: { name: 'echo-v2', port: 8080 } })], services), {}).plan!.mirrors[0]!;
  assert.equal(m.backend, { namespace: 'gateway-conformance-mesh', name: 'echo-v2', port: 8080 });
});

test('ExtensionRef filters reach the plan in order, as written, rule filters before backend filters', () => {
  const r = route('HTTPRoute', 'e', {
    parentRefs: [echoParent],
    rules: [
      {
        filters: [{ type: 'ExtensionRef', extensionRef: { group: 'ambit.dev', kind: 'FaultInjection', name: 'first' } }],
        backendRefs: [{ name: 'echo-v1', port: 8080, filters: [{ type: 'ExtensionRef', extensionRef: { group: 'ambit.dev', kind: 'FaultInjection', name: 'second' } }] }],
      },
    ],
  });
  assert.equal(send(compileRoutes([r], services), {}).plan!.extensions, [
    { group: 'ambit.dev', kind: 'FaultInjection', name: 'first' },
    { group: 'ambit.dev', kind: 'FaultInjection', name: 'second' },
  ]);
});

test('a header named by two actions of one modifier makes the rule invalid, as the spec says', () => {
  const r = route('HTTPRoute', 'h', {
    parentRefs: [echoParent],
    rules: [{ filters: [{ type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'X-A', value: '1' }], remove: ['x-a'] } }], backendRefs: backend }],
  });
  assert.equal(compileRoutes([r], services).problems.map((p) => p.message), ['header x-a is named by more than one action']);
});

test.run();
