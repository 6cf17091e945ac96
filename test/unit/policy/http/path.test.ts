import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { matchesPath, normalizePath, pathMatcher, type PathMatcher } from '../../../../shared/policy/http/path.js';

function path(url: string): string {
  const n = normalizePath(url);
  if ('error' in n) throw new Error(`${url}: ${n.error}`);
  return n.path;
}

function matcher(text: string): PathMatcher {
  const m = pathMatcher(text);
  if ('error' in m) throw new Error(`${text}: ${m.error}`);
  return m;
}

test('dot segments are removed as RFC 3986 says, trailing ones leave a directory', () => {
  assert.is(path('/a/../b'), '/b');
  assert.is(path('/a/./b'), '/a/b');
  assert.is(path('/public/./data/abc/../xyz'), '/public/data/xyz');
  assert.is(path('/a/b/..'), '/a/');
  assert.is(path('/../../etc'), '/etc');
  assert.is(path('/a/.'), '/a/');
  assert.is(path('/a.b/c..d/.e'), '/a.b/c..d/.e');
});

test('percent-encoded unreserved characters are decoded once, before dot segments are removed', () => {
  assert.is(path('/some/%61%62%63'), '/some/abc');
  assert.is(path('/a/%2e%2E/b'), '/b');
  assert.is(path('/%7Euser/%5F%2D'), '/~user/_-');
  assert.is(path('/a/%252e%252e/b'), '/a/%252e%252e/b');
});

test('encoded slashes and backslashes are kept (BASE), a backslash becomes a slash', () => {
  assert.is(path('/some%2fdata'), '/some%2fdata');
  assert.is(path('/some%5Cdata'), '/some%5Cdata');
  assert.is(path('/some\\data'), '/some/data');
  assert.is(path('\\da'), '/da');
});

test('repeated slashes are kept, as Istio’s default does not merge them', () => {
  assert.is(path('/a//b'), '/a//b');
});

test('the query is split off unchanged and never normalized', () => {
  assert.equal(normalizePath('/a/../b?x=/../%2e&y'), { path: '/b', query: '?x=/../%2e&y' });
  assert.equal(normalizePath('/plain'), { path: '/plain', query: '' });
  assert.equal(normalizePath('/p?'), { path: '/p', query: '?' });
});

test('%00, malformed escapes, control characters, fragments and non-paths are errors (400)', () => {
  for (const bad of ['/a%00b', '/a?x=%00', '/a%zz', '/a%4', '/a%', '/a\u0001b', '/a b', '/a#frag', 'a/b', 'http://h/a', '']) {
    assert.ok('error' in normalizePath(bad), JSON.stringify(bad));
  }
});

test('the asterisk-form of OPTIONS is kept as *', () => {
  assert.equal(normalizePath('*'), { path: '*', query: '' });
});

test('a non-ASCII byte is percent-encoded', () => {
  assert.is(path('/caf\u00e9'), '/caf%E9');
});

test('string paths match exactly, by prefix, by suffix, or any non-empty path', () => {
  assert.ok(matchesPath(matcher('/exact'), '/exact'));
  assert.not.ok(matchesPath(matcher('/exact'), '/exact/'));
  assert.ok(matchesPath(matcher('/prefix/*'), '/prefix/a/b'));
  assert.not.ok(matchesPath(matcher('/prefix/*'), '/prefix'));
  assert.ok(matchesPath(matcher('*/suffix'), '/a/suffix'));
  assert.ok(matchesPath(matcher('*'), '/'));
});

// Istio's integration test TestAuthz_PathTemplating, policy paths and expected answers.
test('path templates match as Istio’s integration tests expect', () => {
  const cases: [string, string, boolean][] = [
    ['/allow/admin/{**}', '/allow/admin/', true],
    ['/allow/admin/{**}', '/allow/admin', false],
    ['/allow/admin/{**}', '/allow/user/', false],
    ['/allow/admin/{**}', '/allow/admin/temp.txt', true],
    ['/allow/admin/{**}', '/allow/admin/foo/temp.txt', true],
    ['/foo/{*}/bar/{**}', '/foo/buzz/bar/bat/fuzz.txt', true],
    ['/foo/{*}/bar/{**}', '/foo/bar/bat.txt', false],
    ['/foo/{*}/bar/{**}', '/foo//bar/bat.txt', false],
    ['/store/{**}/cart', '/store//cart', true],
    ['/store/{**}/cart', '/store/cart', false],
    ['/store/{**}/cart', '/store/foo/bar/cart', true],
  ];
  for (const [template, p, want] of cases) assert.is(matchesPath(matcher(template), p), want, `${template} ${p}`);
});

test('a template segment {*} never spans a slash, and template literals are not wildcards', () => {
  assert.not.ok(matchesPath(matcher('/a/{*}'), '/a/b/c'));
  assert.not.ok(matchesPath(matcher('/a.b/{*}'), '/aXb/c'));
});

test('invalid templates are refused with a reason', () => {
  for (const bad of ['/a/{**}/{*}', '/a/{id}', '/a/b{*}', '/a//{*}', '']) assert.ok('error' in pathMatcher(bad), bad);
  assert.ok(!('error' in pathMatcher('/{**}/path/template')));
});

test.run();
