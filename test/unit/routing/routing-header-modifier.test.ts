// Request header modifiers, from the conformance tests MeshHTTPRouteRequestHeaderModifier,
// MeshHTTPRouteBackendRequestHeaderModifier (the same table, filters on the backendRef) and
// MeshGRPCRouteRequestHeaderModifier.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { editHeaders } from '../../../shared/routing/index.js';
import { conformanceTable, send } from './routing-helpers.js';

interface Case {
  path: string;
  headers: Record<string, string>;
  expected: Record<string, string>;
  absent?: string[];
}

const httpCases: Case[] = [
  { path: '/set', headers: { 'Some-Other-Header': 'val' }, expected: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } },
  { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' }, expected: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' } },
  { path: '/add', headers: { 'Some-Other-Header': 'val' }, expected: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' } },
  { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' }, expected: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' } },
  { path: '/remove', headers: { 'X-Header-Remove': 'val' }, expected: {}, absent: ['X-Header-Remove'] },
  {
    path: '/multiple',
    headers: { 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val' },
    expected: {
      'X-Header-Set-1': 'header-set-1',
      'X-Header-Set-2': 'header-set-2',
      'X-Header-Add-1': 'header-add-1',
      'X-Header-Add-2': 'add-val-2,header-add-2',
      'X-Header-Add-3': 'header-add-3',
      'Another-Header': 'another-header-val',
    },
    absent: ['X-Header-Remove-1', 'X-Header-Remove-2'],
  },
  {
    path: '/case-insensitivity',
    headers: { 'x-header-set': 'original-val-set', 'x-header-add': 'original-val-add', 'x-header-remove': 'original-val-remove', 'Another-Header': 'another-header-val' },
    expected: { 'X-Header-Set': 'header-set', 'X-Header-Add': 'original-val-add,header-add', 'Another-Header': 'another-header-val' },
    absent: ['x-header-remove', 'X-Header-Remove'],
  },
];

/** Checks what the echo backend would see, as the conformance suite does (names case-insensitive). */
function check(manifest: string, cases: Case[], extra: (c: Case) => { service?: string; port?: number } = () => ({})): void {
  const table = conformanceTable(manifest);
  for (const c of cases) {
    const o = send(table, { path: c.path, headers: c.headers, ...extra(c) });
    assert.is(o.status, 200, `${c.path} is forwarded`);
    assert.is(o.backend, 'echo-v1', `${c.path} reaches echo-v1`);
    for (const [name, value] of Object.entries(c.expected)) assert.is(o.headers[name.toLowerCase()], value, `${c.path}: ${name}`);
    for (const name of c.absent ?? []) assert.is(o.headers[name.toLowerCase()], undefined, `${c.path}: ${name} removed`);
  }
}

test('MeshHTTPRouteRequestHeaderModifier: set overwrites, add appends after a comma, remove deletes, names case-insensitive', () => {
  check('httproute-request-header-modifier', httpCases);
});

test('MeshHTTPRouteBackendRequestHeaderModifier: the same edits written on the backendRef', () => {
  check('httproute-request-header-modifier-backend', httpCases);
});

test('MeshGRPCRouteRequestHeaderModifier: a GRPCRoute matched on a header edits the request headers', () => {
  const grpc = (testCase: string, headers: Record<string, string>, expected: Record<string, string>, absent: string[] = [], backend = 'echo-v1') => ({ testCase, headers, expected, absent, backend });
  const cases = [
    grpc('set', { 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'this-value-should-be-overwritten' }, { 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'set-overwrites-values' }),
    grpc('add', { 'x-header-add': 'this-value-should-be-appended' }, { 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended,add-appends-values' }),
    grpc('remove', { 'x-header-remove': 'this-should-be-removed' }, { 'x-test-case': 'remove' }, ['x-header-remove']),
    grpc(
      'multi',
      { 'x-header-set-2': 'set-header-2', 'x-header-add-2': 'add-header-2', 'x-header-remove-2': 'should-be-removed-2' },
      { 'x-test-case': 'multi', 'x-header-set-1': 'header-set-1', 'x-header-set-2': 'header-set-2', 'x-header-add-1': 'header-add-1', 'x-header-add-2': 'add-header-2,header-add-2' },
      ['x-header-remove-1', 'x-header-remove-2'],
      'echo-v2',
    ),
  ];
  const table = conformanceTable('grpcroute-request-header-modifier');
  for (const c of cases) {
    const o = send(table, {
      port: 7070,
      method: 'POST',
      path: '/grpc.testing.TestService/UnaryCall',
      headers: { 'content-type': 'application/grpc', 'x-test-case': c.testCase, ...c.headers },
    });
    assert.equal([o.status, o.backend, o.backendPort], [200, c.backend, 7070], c.testCase);
    for (const [name, value] of Object.entries(c.expected)) assert.is(o.headers[name], value, `${c.testCase}: ${name}`);
    for (const name of c.absent) assert.is(o.headers[name], undefined, `${c.testCase}: ${name} removed`);
  }
  assert.is(send(table, { port: 7070, method: 'POST', path: '/grpc.testing.TestService/UnaryCall', headers: { 'x-test-case': 'other' } }).status, 404, 'no rule for other requests');
});

test('editHeaders keeps a listed header a list when adding (set-cookie on a response)', () => {
  const headers: Record<string, string | string[] | undefined> = { 'set-cookie': ['a=1'] };
  editHeaders(headers, [{ set: [], add: [['set-cookie', 'b=2']], remove: [] }]);
  assert.equal(headers['set-cookie'], ['a=1', 'b=2']);
});

test.run();
