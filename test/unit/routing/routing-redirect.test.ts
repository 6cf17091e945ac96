// Redirects, from the conformance tests MeshHTTPRoute303Redirect, MeshHTTPRoute307Redirect,
// MeshHTTPRoute308Redirect, MeshHTTPRouteRedirectHostAndStatus, MeshHTTPRouteRedirectPath,
// MeshHTTPRouteRedirectPort and MeshHTTPRouteSchemeRedirect. The suite compares scheme, host, port
// and path of the Location, taking the request's for any it does not name, and accepts no port or the
// scheme's well-known one; these tests pin the whole Location.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileRoutes } from '../../../shared/routing/index.js';
import { conformanceTable, echoParent, route, send, services } from './routing-helpers.js';

function redirects(manifest: string, cases: [path: string, status: number, location: string][]): void {
  const table = conformanceTable(manifest);
  const got = cases.map(([path]) => {
    const o = send(table, { path });
    return [path, o.status, o.location ?? '(none)'];
  });
  assert.equal(got, cases);
}

test('MeshHTTPRoute303Redirect, 307 and 308: the status code is the filter\'s and the path is kept', () => {
  redirects('httproute-303-redirect', [['/redirect', 303, 'http://echo/redirect']]);
  redirects('httproute-307-redirect', [['/temporary', 307, 'http://echo/temporary']]);
  redirects('httproute-308-redirect', [['/permanent', 308, 'http://echo/permanent']]);
});

test('MeshHTTPRouteRedirectHostAndStatus: the hostname replaces the Host, 302 unless the filter says', () => {
  redirects('httproute-redirect-host-and-status', [
    ['/hostname-redirect', 302, 'http://example.org/hostname-redirect'],
    ['/host-and-status', 301, 'http://example.org/host-and-status'],
  ]);
});

test('MeshHTTPRouteRedirectPath: ReplacePrefixMatch and ReplaceFullPath, with hostname and status', () => {
  redirects('httproute-redirect-path', [
    ['/original-prefix/lemon', 302, 'http://echo/replacement-prefix/lemon'],
    ['/full/path/original', 302, 'http://echo/full-path-replacement'],
    ['/path-and-host', 302, 'http://example.org/replacement-prefix'],
    ['/path-and-status', 301, 'http://echo/replacement-prefix'],
    ['/full-path-and-host', 302, 'http://example.org/replacement-full'],
    ['/full-path-and-status', 301, 'http://echo/replacement-full'],
  ]);
});

test('MeshHTTPRouteRedirectPort: the port appears in the Location', () => {
  redirects('httproute-redirect-port', [
    ['/port', 302, 'http://echo:8083/port'],
    ['/port-and-host', 302, 'http://example.org:8083/port-and-host'],
    ['/port-and-status', 301, 'http://echo:8083/port-and-status'],
    ['/port-and-host-and-status', 302, 'http://example.org:8083/port-and-host-and-status'],
  ]);
});

test('MeshHTTPRouteSchemeRedirect: a scheme without a port takes its well-known port, left out of the Location', () => {
  redirects('httproute-redirect-scheme', [
    ['/scheme', 302, 'https://echo/scheme'],
    ['/scheme-and-host', 302, 'https://example.org/scheme-and-host'],
    ['/scheme-and-status', 301, 'https://echo/scheme-and-status'],
    ['/scheme-and-host-and-status', 302, 'https://example.org/scheme-and-host-and-status'],
  ]);
});

test('without scheme or port, a redirect keeps the Service port the request came to; the query is kept', () => {
  const r = route('HTTPRoute', 'r', { parentRefs: [echoParent], rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { hostname: 'example.org' } }] }] });
  const table = compileRoutes([r], services);
  assert.is(send(table, { port: 8080, path: '/a?b=1' }).location, 'http://example.org:8080/a?b=1');
  assert.is(send(table, { port: 80, path: '/a?b=1' }).location, 'http://example.org/a?b=1');
  const toHttps8443 = route('HTTPRoute', 'r', { parentRefs: [echoParent], rules: [{ filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', port: 8443 } }] }] });
  assert.is(send(compileRoutes([toHttps8443], services), { port: 8080, path: '/' }).location, 'https://echo:8443/');
});

test('the Host header\'s port is not carried into the Location', () => {
  const table = conformanceTable('httproute-303-redirect');
  assert.is(send(table, { path: '/redirect', headers: { host: 'echo.gateway-conformance-mesh:80' } }).location, 'http://echo.gateway-conformance-mesh/redirect');
});

test.run();
