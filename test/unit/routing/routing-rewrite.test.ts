// URL rewrites, from the conformance test MeshHTTPRouteRewritePath, and the spec's table for
// ReplacePrefixMatch (HTTPPathModifier.replacePrefixMatch).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes, modifyPath } from '../../../shared/routing/index.js';
import { conformanceTable, echoParent, route, send, services } from './routing-helpers.js';

test('MeshHTTPRouteRewritePath: prefix and full-path rewrites reach echo-v1 with the new path', () => {
  const table = conformanceTable('httproute-rewrite-path');
  const cases: [string, string][] = [
    ['/prefix/one/two', '/one/two'],
    ['/strip-prefix/three', '/three'],
    ['/strip-prefix', '/'],
    ['/full/one/two', '/one'],
  ];
  assert.equal(
    cases.map(([path]) => {
      const o = send(table, { path });
      return [path, o.backend ? o.path : `status ${o.status}`];
    }),
    cases,
  );
});

test('MeshHTTPRouteRewritePath: a rewrite and header edits in one rule both apply', () => {
  const table = conformanceTable('httproute-rewrite-path');
  const headers = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' };
  for (const [path, want] of [
    ['/full/rewrite-path-and-modify-headers/test', '/test'],
    ['/prefix/rewrite-path-and-modify-headers/one', '/prefix/one'],
  ] as const) {
    const o = send(table, { path, headers });
    assert.equal(
      [o.backend, o.path, o.headers['x-header-add'], o.headers['x-header-add-append'], o.headers['x-header-set'], o.headers['x-header-remove']],
      ['echo-v1', want, 'header-val-1', 'append-val-1,header-val-2', 'set-overwrites-values', undefined],
      path,
    );
  }
});

test('ReplacePrefixMatch follows the spec table, trailing slashes included', () => {
  const table: [path: string, prefix: string, replacement: string, result: string][] = [
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
    ['/prefix/one/three', '/prefix/one', '/', '/three'],
  ];
  for (const [path, prefix, replacement, result] of table) {
    const r = route('HTTPRoute', 'r', {
      parentRefs: [echoParent],
      rules: [{ matches: [{ path: { type: 'PathPrefix', value: prefix } }], filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: replacement } } }], backendRefs: [{ name: 'echo-v1', port: 8080 }] }],
    });
    assert.is(send(compileRoutes([r], services), { path }).path, result, `${path} with ${prefix} -> ${JSON.stringify(replacement)}`);
  }
  assert.is(modifyPath('/a/b', { type: 'ReplaceFullPath', value: '/c', prefix: '' }), '/c');
});

test('a rewrite keeps the query and can replace the Host', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [{ matches: [{ path: { type: 'PathPrefix', value: '/old' } }], filters: [{ type: 'URLRewrite', urlRewrite: { hostname: 'new.example', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' } } }], backendRefs: [{ name: 'echo-v1', port: 8080 }] }],
  });
  const o = send(compileRoutes([r], services), { path: '/old/x?y=1&z=2' });
  assert.equal([o.path, o.headers.host], ['/new/x?y=1&z=2', 'new.example']);
});

test('ReplacePrefixMatch on a rule without exactly one PathPrefix match is dropped, as the spec requires', () => {
  const r = route('HTTPRoute', 'r', {
    parentRefs: [echoParent],
    rules: [
      {
        matches: [{ path: { type: 'Exact', value: '/a' } }],
        filters: [{ type: 'URLRewrite', urlRewrite: { path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/b' } } }],
        backendRefs: [{ name: 'echo-v1', port: 8080 }],
      },
    ],
  });
  const table = compileRoutes([r], services);
  assert.is(table.lookup({ namespace: 'gateway-conformance-mesh', name: 'echo' }, 80, 'x'), undefined, 'a route with no valid rule is not attached');
  assert.match(table.problems[0]!.message, /exactly one PathPrefix match/);
});

test.run();
