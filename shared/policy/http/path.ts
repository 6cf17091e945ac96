// The request path as the waypoint's L7 policies see it: Istio's default (BASE) normalization of the
// request-target, and the matchers of `paths`/`notPaths` (Istio's string match and path templates).
// Answering 400 for a path that cannot be normalized is the waypoint's concern.

import { type StringMatch, matchesString, stringMatch } from '../match.js';

/**
 * Normalizes a request-target (`req.url`) as Istio's default mesh config does, BASE ("Authorization
 * Policy Normalization", istio.io/latest/docs/reference/config/security/normalization, and
 * meshConfig.pathNormalization: "DEFAULT: currently BASE"; Envoy's normalize_path):
 *  - a percent-encoded unreserved character (RFC 3986 §2.3: ALPHA DIGIT - . _ ~) is decoded, once
 *    (`%252e` stays as written); `%2F` and `%5C` are kept (decoding them is DECODE_AND_MERGE_SLASHES);
 *  - a backslash becomes `/`;
 *  - dot segments are removed (RFC 3986 §5.2.4), after decoding, so `/a/%2e%2e/b` is `/b`;
 *  - repeated slashes are kept (merging them is MERGE_SLASHES, not the default);
 *  - a non-ASCII byte (Node reads the target as latin1) is percent-encoded, as Envoy's canonicalizer does;
 *  - the query is not normalized, and is left out of `path` ("remove anything after the question mark
 *    when comparing with the path. Note the backend application will still see the query").
 * Errors, which the waypoint answers with 400: `%00` (Istio: "always rejected with HTTP code 400"), a
 * malformed percent-encoding (stricter than Envoy, which passes it through), a control character or
 * space, a fragment (`#`, which Envoy rejects by default), and a target that is neither origin-form
 * (`/...`) nor the asterisk-form `*` of `OPTIONS *` (RFC 9112 §3.2).
 */
export function normalizePath(url: string): { path: string; query: string } | { error: string } {
  if (url === '*') return { path: '*', query: '' };
  const first = url.charCodeAt(0);
  if (first !== 0x2f && first !== 0x5c) return { error: 'the request target must be a path starting with /' };
  let q = url.indexOf('?');
  if (q < 0) q = url.length;
  const query = url.slice(q);
  for (let i = 0; i < query.length; i++) {
    const bad = invalidAt(query, i);
    if (bad) return { error: `the query ${bad}` };
  }
  const raw = q === url.length ? url : url.slice(0, q);
  let clean = true;
  for (let i = 0; i < raw.length && clean; i++) {
    const c = raw.charCodeAt(i);
    clean = c > 0x20 && c < 0x7f && c !== 0x25 && c !== 0x5c && c !== 0x23;
  }
  // The common case, a plain path, is returned as it came.
  let path = raw;
  if (!clean) {
    const decoded = decode(raw);
    if (typeof decoded !== 'string') return decoded;
    path = decoded;
  }
  if (path.includes('/.')) path = removeDotSegments(path);
  return { path, query };
}

const hex = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

// RFC 3986 §2.3.
function unreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/** What is wrong with the character at `i` (a request-target character or a percent-encoding), or ''. */
function invalidAt(s: string, i: number): string {
  const c = s.charCodeAt(i);
  if (c <= 0x20 || c === 0x7f) return `has a control character or space at ${i}`;
  if (c === 0x23) return 'has a fragment (#)';
  if (c > 0xff) return `has a character that is not a byte at ${i}`;
  if (c === 0x25) {
    const high = i + 2 < s.length ? hexValue(s.charCodeAt(i + 1)) : -1;
    const low = i + 2 < s.length ? hexValue(s.charCodeAt(i + 2)) : -1;
    if (high < 0 || low < 0) return `has a malformed percent-encoding at ${i}`;
    if (high === 0 && low === 0) return 'has %00';
  }
  return '';
}

function decode(raw: string): string | { error: string } {
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const bad = invalidAt(raw, i);
    if (bad) return { error: `the path ${bad}` };
    const c = raw.charCodeAt(i);
    if (c === 0x25) {
      const v = hexValue(raw.charCodeAt(i + 1)) * 16 + hexValue(raw.charCodeAt(i + 2));
      out += unreserved(v) ? String.fromCharCode(v) : raw.slice(i, i + 3);
      i += 2;
    } else if (c === 0x5c) out += '/';
    else if (c >= 0x80) out += '%' + hex[c >> 4] + hex[c & 15];
    else out += raw[i];
  }
  return out;
}

/** RFC 3986 §5.2.4 on an absolute path: `.` segments go, `..` removes the segment before it. */
function removeDotSegments(path: string): string {
  const input = path.split('/');
  const out: string[] = [''];
  for (let i = 1; i < input.length; i++) {
    const s = input[i]!;
    const last = i === input.length - 1;
    if (s === '.' || s === '..') {
      if (s === '..' && out.length > 1) out.pop();
      // `/a/.` and `/a/b/..` end in a directory: `/a/`.
      if (last) out.push('');
      continue;
    }
    out.push(s);
  }
  return out.length === 1 ? '/' : out.join('/');
}

/** One `paths`/`notPaths` value: Istio's string match, or a path template (`{*}`, `{**}`). */
export type PathMatcher = { kind: 'string'; match: StringMatch } | { kind: 'template'; template: string; regex: RegExp };

export const matchOneTemplate = '{*}';
export const matchAnyTemplate = '{**}';

// Envoy's uri_template literal characters, RFC 3986's pchar without `*` (istiod's validLiteral).
const literal = /^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/;
const segmentChars = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=]";

/**
 * Why a `paths` value is not one Istio accepts, or undefined (istiod's CheckValidPathTemplate). Every
 * value may hold `{` or `}` only as a template operator; in a template, `{**}` is the last operator
 * (literal segments may follow it: `/store/{**}/cart`) and every literal segment is made of pchars.
 */
export function pathProblem(text: string): string | undefined {
  if (text === '') return 'must not be empty';
  const template = isTemplate(text);
  let any = false;
  for (const glob of text.replace(/^\/+|\/+$/g, '').split('/')) {
    if (glob === matchOneTemplate || glob === matchAnyTemplate) {
      if (any) return `${matchAnyTemplate} must be the last operator of a path template`;
      any = glob === matchAnyTemplate;
      continue;
    }
    if (glob.includes('{') || glob.includes('}')) return `has { or } beyond a path template operation (${matchOneTemplate} or ${matchAnyTemplate} as a whole segment)`;
    if (template && !literal.test(glob)) return `has segment ${JSON.stringify(glob)}, which is not a literal a path template may hold`;
  }
  return undefined;
}

function isTemplate(text: string): boolean {
  return text.includes(matchOneTemplate) || text.includes(matchAnyTemplate);
}

/**
 * The matcher of a `paths` value, or the reason it is invalid. A value with a template operator is a
 * template, matched as Envoy's uri_template matches (`{*}`: one or more pchars, one segment; `{**}`:
 * any run of pchars and `/`, possibly empty: `/store/{**}/cart` matches `/store//cart`, and
 * `/allow/admin/{**}` matches `/allow/admin/` but not `/allow/admin`). Any other value is a string
 * match: exact, `abc*` prefix, `*abc` suffix, `*` any non-empty path.
 */
export function pathMatcher(text: string): PathMatcher | { error: string } {
  const problem = pathProblem(text);
  if (problem) return { error: problem };
  if (!isTemplate(text)) return { kind: 'string', match: stringMatch(text) };
  let source = '^';
  for (const part of text.split(/(\{\*\*?\})/)) {
    if (part === matchAnyTemplate) source += `(?:${segmentChars}|/)*`;
    else if (part === matchOneTemplate) source += `${segmentChars}+`;
    else source += part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return { kind: 'template', template: text, regex: new RegExp(source + '$') };
}

export function matchesPath(m: PathMatcher, path: string): boolean {
  return m.kind === 'string' ? matchesString(m.match, path) : m.regex.test(path);
}
