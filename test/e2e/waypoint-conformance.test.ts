// The Gateway API conformance suite's HTTP tests, replayed through the waypoint on the local cluster:
// each test applies the suite's manifest (its mesh manifests unchanged; its gateway-only ones moved to
// the mesh, see fixtures/waypoint/conformance/README.md), waits until the route is in force, sends the
// suite's requests with curl from a client pod in the mesh to the echo backend, checks what the suite
// checks (backend, status, headers seen by the backend and by the client, redirect targets, weights
// and mirror shares within its tolerances), and deletes the manifest. One test per conformance test,
// named after it. gRPC is left out: there is no gRPC client in the pods.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, eventually, leftovers, root } from './helpers.js';
import { manifests } from '../unit/routing/routing-manifests.js';
import type { Resource } from '../../shared/resources/types.js';

/** The suite's namespaces, so that its manifests apply unchanged. */
const ns = 'gateway-conformance-mesh';
const consumerNs = 'gateway-conformance-mesh-consumer';
const fixtures = join(root, 'test/e2e/fixtures/waypoint');
const moved = (name: string) => readFileSync(join(fixtures, 'conformance', `${name}.yaml`), 'utf8');
/** `namespace/name` -> cluster IP. */
const vips = new Map<string, string>();
let work = '';

interface Echo {
  path: string;
  host: string;
  method: string;
  headers: Record<string, string[]>;
  pod: string;
  served: number;
}

/** A request as the suite writes it: the Host is what the client dials (`echo` by default). */
interface Request {
  path?: string;
  host?: string;
  method?: string;
  headers?: Record<string, string>;
}

/** The suite's ExpectedResponse, in the parts a mesh client can see. */
interface Expected {
  request: Request;
  status?: number | number[];
  /** The prefix of the name of the pod that answered. */
  backend?: string;
  /** What the backend saw. */
  path?: string;
  host?: string;
  requestHeaders?: Record<string, string>;
  absentRequestHeaders?: string[];
  /** What the client saw. */
  responseHeaders?: Record<string, string>;
  absentResponseHeaders?: string[];
  redirect?: { scheme?: string; host?: string; port?: string; path?: string };
}

interface Answer {
  status: number;
  exit: number;
  headers: Record<string, string[]>;
  body: string;
  echo?: Echo;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The curl command for a request, sent `times` times over one connection; the Host's name is resolved to its Service's cluster IP, so the Host header stays the suite's. */
function curl(r: Request, format: string, times = 1): string {
  const host = r.host ?? 'echo';
  const [name, portText] = host.split(':') as [string, string | undefined];
  const [svc, svcNs = ns] = name.split('.') as [string, string | undefined];
  // A name that is no Service (the suite's rewrite.example) is sent to `echo`, as a gateway's hostname is.
  const vip = vips.get(`${svcNs}/${svc}`) ?? vips.get(`${ns}/echo`)!;
  const args = ['curl', '-s', '-m', '5', '--resolve', `${name}:${portText ?? 80}:${vip}`];
  if (r.method === 'HEAD') args.push('-I');
  else if (r.method) args.push('-X', r.method);
  for (const [k, v] of Object.entries(r.headers ?? {})) args.push('-H', q(`${k}: ${v}`));
  args.push('-w', q(format));
  for (let i = 0; i < times; i++) args.push(q(`http://${host}${r.path ?? '/'}`));
  return args.join(' ');
}

const record = '~~W~~{"status":%{http_code},"exit":%{exitcode},"headers":%{header_json}}~~E~~\n';

/** Sends the requests one after another from a client pod, in one exec, and returns each answer. */
async function send(requests: Request[], from = ns): Promise<Answer[]> {
  const r = await ambit(['exec', 'deploy/client', '-n', from, '--', 'sh', '-c', requests.map((x) => curl(x, record)).join('\n')], 120_000);
  if (r.code !== 0) throw new Error(`exec in ${from}/client exited ${r.code}: ${r.stderr}`);
  const answers = r.stdout.split('~~E~~\n').slice(0, -1).map((chunk) => {
    const i = chunk.lastIndexOf('~~W~~');
    const body = chunk.slice(0, i);
    const a = { ...(JSON.parse(chunk.slice(i + 5)) as Omit<Answer, 'body'>), body } as Answer;
    try {
      a.echo = JSON.parse(body) as Echo;
    } catch {
      // Not the echo backend's answer: a redirect, a 404 or a 504 from the waypoint.
    }
    return a;
  });
  if (answers.length !== requests.length) throw new Error(`sent ${requests.length} requests, read ${answers.length} answers: ${r.stdout.slice(0, 500)}`);
  return answers;
}

/** What differs between the answer and what the suite expects; empty when it passes. */
function problems(e: Expected, a: Answer): string[] {
  const out: string[] = [];
  const statuses = [e.status ?? 200].flat();
  if (!statuses.includes(a.status)) out.push(`status ${a.status} (curl exit ${a.exit}), want ${statuses.join(' or ')}: ${a.body.slice(0, 120)}`);
  if (e.backend && a.status < 300 && !a.echo?.pod.startsWith(`${e.backend}-`)) out.push(`answered by ${a.echo?.pod}, want ${e.backend}`);
  if (e.path !== undefined && a.echo) {
    const seen = e.path.includes('?') ? a.echo.path : a.echo.path.split('?')[0];
    if (seen !== e.path) out.push(`backend saw path ${a.echo.path}, want ${e.path}`);
  }
  if (e.host !== undefined && a.echo && a.echo.host !== e.host) out.push(`backend saw host ${a.echo.host}, want ${e.host}`);
  for (const [k, v] of Object.entries(e.requestHeaders ?? {})) {
    const seen = a.echo?.headers[k.toLowerCase()]?.join(',');
    if (seen !== v) out.push(`backend saw ${k}: ${seen}, want ${v}`);
  }
  for (const k of e.absentRequestHeaders ?? []) if (a.echo?.headers[k.toLowerCase()]) out.push(`backend saw ${k}, want it absent`);
  for (const [k, v] of Object.entries(e.responseHeaders ?? {})) {
    const seen = a.headers[k.toLowerCase()]?.join(',');
    if (seen !== v) out.push(`response ${k}: ${seen}, want ${v}`);
  }
  for (const k of e.absentResponseHeaders ?? []) if (a.headers[k.toLowerCase()]) out.push(`response has ${k}, want it absent`);
  if (e.redirect) {
    const location = a.headers.location?.[0];
    if (!location) out.push('no Location');
    else {
      // The suite's defaults (conformance/utils/http setRedirectRequestDefaults): the request's scheme
      // and path; the host the request named (the spec's default); no port or the scheme's own.
      const u = new URL(location);
      const want = { scheme: e.redirect.scheme ?? 'http', host: e.redirect.host ?? (e.request.host ?? 'echo').split(':')[0], path: e.redirect.path ?? (e.request.path ?? '/').split('?')[0] };
      if (u.protocol !== `${want.scheme}:`) out.push(`Location ${location}: scheme, want ${want.scheme}`);
      if (u.hostname !== want.host) out.push(`Location ${location}: host, want ${want.host}`);
      if (u.pathname !== want.path) out.push(`Location ${location}: path, want ${want.path}`);
      const wellKnown = want.scheme === 'https' ? '443' : '80';
      if (e.redirect.port ? u.port !== e.redirect.port : u.port !== '' && u.port !== wellKnown) out.push(`Location ${location}: port, want ${e.redirect.port ?? `none or ${wellKnown}`}`);
    }
  }
  return out;
}

/** The suite's "eventually consistent" answer: every case passes `rounds` times in a row. */
async function expectTable(cases: Expected[], rounds = 3, from = ns): Promise<void> {
  const requests = Array.from({ length: rounds }, () => cases.map((c) => c.request)).flat();
  const answers = await send(requests, from);
  const failed: string[] = [];
  answers.forEach((a, i) => {
    const c = cases[i % cases.length]!;
    const p = problems(c, a);
    if (p.length) failed.push(`${c.request.method ?? 'GET'} ${c.request.host ?? 'echo'}${c.request.path ?? '/'} ${JSON.stringify(c.request.headers ?? {})}: ${p.join('; ')}`);
  });
  assert.equal(failed, [], `${failed.length} of ${answers.length} requests failed`);
}

/** Whether the waypoint routes by a manifest: a request that only its route answers so, `times` times in a row (one whose answer without the route is random cannot pass by chance). */
type Probe = () => Promise<boolean>;
const holds =
  (e: Expected | (() => Expected), from = ns, times = 6): Probe =>
  async () => {
    const list = Array.from({ length: times }, () => (typeof e === 'function' ? e() : e));
    const answers = await send(list.map((x) => x.request), from);
    return answers.every((a, i) => problems(list[i]!, a).length === 0);
  };

/** Applies a manifest, waits until the waypoint routes by it, runs `body`, deletes it. */
async function withManifest(yaml: string, probe: Probe, body: () => Promise<void>): Promise<void> {
  const file = join(work, `m${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, yaml);
  await ambitOk(['apply', '-f', file, '--wait']);
  try {
    await eventually('the route to be in force in the waypoint', probe, 20_000);
    await body();
  } finally {
    // The next test's probe waits for its own route, which the waypoint gets after this deletion.
    await ambitOk(['delete', '-f', file]);
  }
}

/** `count` requests from the mesh's client pod in one curl (one connection, as the suite's batch client): each one's status, and the pod that answered. */
async function batch(r: Request, count: number): Promise<{ status: number; pod: string }[]> {
  const out = await ambit(['exec', 'deploy/client', '-n', ns, '--', 'sh', '-c', curl(r, '~~S~~%{http_code}\n', count)], 120_000);
  if (out.code !== 0) throw new Error(`exec exited ${out.code}: ${out.stderr}`);
  const parts = out.stdout.split(/~~S~~(\d{3})\n/);
  const answers: { status: number; pod: string }[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) answers.push({ status: Number(parts[i + 1]), pod: /"pod":"([^"]*)"/.exec(parts[i]!)?.[1] ?? '' });
  return answers;
}

/** How many requests a pod of `service` has served (echo counts them; this read is one more). */
const served = async (service: string) => (await send([{ host: service, path: '/' }]))[0]!.echo!.served;

/** Requests `service` received since it had served `before`, once the count stops growing (mirrors are sent on the side, not awaited). */
async function receivedSince(service: string, before: number): Promise<number> {
  let reads = 0;
  let last = -1;
  while (reads < 20) {
    const now = await served(service);
    reads++;
    const got = now - before - reads;
    if (got === last) return got;
    last = got;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${service} kept receiving requests: ${last} since the count was read`);
}

let started = 0;
test.before.each(() => void (started = Date.now()));
test.after.each((ctx) => console.log(`${ctx.__test__}: ${Date.now() - started} ms`));

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('the mesh namespace, its consumer namespace and the waypoint are up, and every echo pod answers', async () => {
  work = mkdtempSync(join(tmpdir(), 'ambit-conformance-'));
  await ambitOk(['up', '--no-samples']);
  await ambitOk(['apply', '-f', join(fixtures, 'mesh.yaml')]);
  await ambitOk(['apply', '-f', join(fixtures, 'consumer.yaml')]);
  await ambitOk(['waypoint', 'apply', '-n', ns]);
  await eventually(
    'the waypoint Gateway to be programmed',
    async () => {
      const g = JSON.parse(await ambitOk(['get', 'gateway', 'waypoint', '-n', ns, '-o', 'json'])) as Resource;
      return (g.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True');
    },
    30_000,
  );
  const { items } = JSON.parse(await ambitOk(['get', 'services', '-n', ns, '-o', 'json'])) as { items: Resource<string, { clusterIP: string }>[] };
  for (const s of items) vips.set(`${ns}/${s.metadata.name}`, s.spec!.clusterIP);
  const all: Request[] = ['echo-v1', 'echo-v2', 'echo-v3', 'echo-v1:8080', 'echo-v2:8080'].map((host) => ({ host }));
  await eventually('every echo pod to answer through the waypoint', async () => (await send(all)).every((a) => a.status === 200), 30_000);
  await eventually('the consumer namespace client to reach echo-v1', async () => (await send([{ host: `echo-v1.${ns}` }], consumerNs))[0]!.status === 200, 30_000);
});

test('MeshBasic', async () => {
  await expectTable([{ request: { host: 'echo', method: 'GET' }, status: 200 }]);
});

test('MeshHTTPRouteSimpleSameNamespace', async () => {
  const c: Expected = { request: { path: '/', host: 'echo' }, status: 200, backend: 'echo-v1' };
  await withManifest(manifests['httproute-simple-same-namespace']!, holds({ ...c, request: { ...c.request, path: '/?probe' } }), () => expectTable([c]));
});

test('MeshHTTPRouteMatching', async () => {
  const cases: Expected[] = [
    { request: { path: '/' }, backend: 'echo-v1' },
    { request: { path: '/example' }, backend: 'echo-v1' },
    { request: { path: '/', headers: { Version: 'one' } }, backend: 'echo-v1' },
    { request: { path: '/v2' }, backend: 'echo-v2' },
    { request: { path: '/v2/example' }, backend: 'echo-v2' },
    { request: { path: '/', headers: { Version: 'two' } }, backend: 'echo-v2' },
    { request: { path: '/v2/' }, backend: 'echo-v2' },
    { request: { path: '/v2example' }, backend: 'echo-v1' },
    { request: { path: '/foo/v2/example' }, backend: 'echo-v1' },
  ];
  await withManifest(manifests['httproute-matching']!, holds(cases[3]!), () => expectTable(cases));
});

test('MeshHTTPRouteQueryParamMatching', async () => {
  const cases: Expected[] = [
    { request: { path: '/?animal=whale' }, backend: 'echo-v1' },
    { request: { path: '/?animal=dolphin' }, backend: 'echo-v2' },
    { request: { path: '/?animal=whale&otherparam=irrelevant' }, backend: 'echo-v1' },
    { request: { path: '/?animal=dolphin&color=yellow' }, backend: 'echo-v2' },
    { request: { path: '/?color=blue' }, status: 404 },
    { request: { path: '/?animal=dog' }, status: 404 },
    { request: { path: '/?animal=whaledolphin' }, status: 404 },
    { request: { path: '/' }, status: 404 },
    { request: { path: '/path1?animal=whale' }, backend: 'echo-v1' },
    { request: { headers: { version: 'one' }, path: '/?animal=whale' }, backend: 'echo-v2' },
    { request: { path: '/path3?animal=shark' }, backend: 'echo-v1' },
    { request: { headers: { version: 'three' }, path: '/path4?animal=kraken' }, backend: 'echo-v1' },
    { request: { path: '/?animal=shark' }, status: 404 },
    { request: { path: '/path4?animal=kraken' }, status: 404 },
    { request: { path: '/path5?animal=hydra' }, backend: 'echo-v1' },
  ];
  await withManifest(manifests['httproute-query-param-matching']!, holds(cases[1]!), () => expectTable(cases));
});

test('HTTPRouteMethodMatching', async () => {
  const cases: Expected[] = [
    { request: { method: 'POST', path: '/' }, backend: 'echo-v1' },
    { request: { method: 'GET', path: '/' }, backend: 'echo-v2' },
    { request: { method: 'HEAD', path: '/' }, status: 404 },
  ];
  await withManifest(moved('httproute-method-matching'), holds(cases[2]!), () => expectTable(cases));
});

test('MeshHTTPRouteNamedRule', async () => {
  // The suite also lists path /named as what the backend of /unnamed sees, which no rule rewrites;
  // its mesh client never checks paths, so neither do we for that case.
  const cases: Expected[] = [
    { request: { path: '/named' }, path: '/named', backend: 'echo-v1' },
    { request: { path: '/unnamed' }, backend: 'echo-v2' },
  ];
  await withManifest(manifests['httproute-named-rule']!, holds(cases[1]!), () => expectTable(cases));
});

test('MeshTrafficSplit', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo', method: 'GET', path: '/v1' }, status: 200, backend: 'echo-v1' },
    { request: { host: 'echo', method: 'GET', path: '/v2' }, status: 200, backend: 'echo-v2' },
  ];
  await withManifest(manifests['mesh-split']!, holds(cases[1]!), () => expectTable(cases));
});

test('MeshHTTPRouteWeight', async () => {
  // In force once echo-v3 (weight 0: not named) answers none of ten requests; by chance, (2/3)^10.
  const neverV3: Probe = async () => (await send(Array.from({ length: 10 }, () => ({ path: '/', host: 'echo' })))).every((a) => a.status === 200 && !a.echo?.pod.startsWith('echo-v3-'));
  // The suite's test: 500 requests, each backend's share within 5 points of its weight; up to 10 tries.
  const want: Record<string, number> = { 'echo-v1': 0.7, 'echo-v2': 0.3 };
  await withManifest(manifests['httproute-weight']!, neverV3, async () => {
    const errors: string[] = [];
    for (let attempt = 0; attempt < 3; attempt++) {
      const answers = await batch({ path: '/', host: 'echo' }, 500);
      const seen: Record<string, number> = {};
      for (const a of answers) {
        const backend = a.pod.replace(/-[^-]+-[^-]+$/, '');
        seen[backend] = (seen[backend] ?? 0) + 1;
      }
      errors.length = 0;
      if (answers.length !== 500 || answers.some((a) => a.status !== 200)) errors.push(`${answers.filter((a) => a.status === 200).length} of 500 answered 200`);
      if (Object.keys(seen).length !== 2) errors.push(`backends seen: ${JSON.stringify(seen)}`);
      for (const [b, w] of Object.entries(want)) if (Math.abs((seen[b] ?? 0) / 500 - w) > 0.05) errors.push(`${b} got ${seen[b] ?? 0} of 500, want ${w * 500} ± 25`);
      console.log(`MeshHTTPRouteWeight try ${attempt + 1}: ${JSON.stringify(seen)}`);
      if (!errors.length) return;
    }
    assert.equal(errors, []);
  });
});

const headerModifierCases: Expected[] = [
  { request: { path: '/set', headers: { 'Some-Other-Header': 'val' } }, path: '/set', requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' }, backend: 'echo-v1' },
  { request: { path: '/set', headers: { 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' } }, path: '/set', requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' }, backend: 'echo-v1' },
  { request: { path: '/add', headers: { 'Some-Other-Header': 'val' } }, path: '/add', requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' }, backend: 'echo-v1' },
  { request: { path: '/add', headers: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' } }, path: '/add', requestHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' }, backend: 'echo-v1' },
  { request: { path: '/remove', headers: { 'X-Header-Remove': 'val' } }, path: '/remove', absentRequestHeaders: ['X-Header-Remove'], backend: 'echo-v1' },
  {
    request: { path: '/multiple', headers: { 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val' } },
    path: '/multiple',
    requestHeaders: { 'X-Header-Set-1': 'header-set-1', 'X-Header-Set-2': 'header-set-2', 'X-Header-Add-1': 'header-add-1', 'X-Header-Add-2': 'add-val-2,header-add-2', 'X-Header-Add-3': 'header-add-3', 'Another-Header': 'another-header-val' },
    absentRequestHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2'],
    backend: 'echo-v1',
  },
  {
    request: { path: '/case-insensitivity', headers: { 'x-header-set': 'original-val-set', 'x-header-add': 'original-val-add', 'x-header-remove': 'original-val-remove', 'Another-Header': 'another-header-val' } },
    path: '/case-insensitivity',
    requestHeaders: { 'X-Header-Set': 'header-set', 'X-Header-Add': 'original-val-add,header-add', 'Another-Header': 'another-header-val' },
    absentRequestHeaders: ['x-header-remove', 'X-Header-Remove'],
    backend: 'echo-v1',
  },
];

test('MeshHTTPRouteRequestHeaderModifier', async () => {
  await withManifest(manifests['httproute-request-header-modifier']!, holds(headerModifierCases[0]!), () => expectTable(headerModifierCases));
});

test('HTTPRouteResponseHeaderModifier', async () => {
  // The suite's BackendSetResponseHeaders: the echo backend sets what X-Echo-Set-Header lists.
  const set = (h: Record<string, string>) => ({ 'X-Echo-Set-Header': Object.entries(h).map(([k, v]) => `${k}:${v}`).join(',') });
  const cases: Expected[] = [
    { request: { path: '/set', headers: set({ 'Some-Other-Header': 'val' }) }, responseHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' }, backend: 'echo-v1' },
    { request: { path: '/set', headers: set({ 'Some-Other-Header': 'val', 'X-Header-Set': 'some-other-value' }) }, responseHeaders: { 'Some-Other-Header': 'val', 'X-Header-Set': 'set-overwrites-values' }, backend: 'echo-v1' },
    { request: { path: '/add', headers: set({ 'Some-Other-Header': 'val' }) }, responseHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'add-appends-values' }, backend: 'echo-v1' },
    { request: { path: '/add', headers: set({ 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value' }) }, responseHeaders: { 'Some-Other-Header': 'val', 'X-Header-Add': 'some-other-value,add-appends-values' }, backend: 'echo-v1' },
    { request: { path: '/remove', headers: set({ 'X-Header-Remove': 'val' }) }, absentResponseHeaders: ['X-Header-Remove'], backend: 'echo-v1' },
    {
      request: { path: '/multiple', headers: set({ 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val', 'X-Header-Remove-1': 'val' }) },
      responseHeaders: { 'X-Header-Set-1': 'header-set-1', 'X-Header-Set-2': 'header-set-2', 'X-Header-Add-1': 'header-add-1', 'X-Header-Add-2': 'add-val-2,header-add-2', 'X-Header-Add-3': 'header-add-3', 'Another-Header': 'another-header-val' },
      absentResponseHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2'],
      backend: 'echo-v1',
    },
    {
      request: { path: '/case-insensitivity', headers: set({ 'x-header-set': 'original-val-set', 'x-header-add': 'original-val-add', 'x-header-remove': 'original-val-remove', 'Another-Header': 'another-header-val' }) },
      responseHeaders: { 'X-Header-Set': 'header-set', 'X-Header-Add': 'original-val-add,header-add', 'X-Lowercase-Add': 'lowercase-add', 'X-Mixedcase-Add-1': 'mixedcase-add-1', 'X-Mixedcase-Add-2': 'mixedcase-add-2', 'X-Uppercase-Add': 'uppercase-add', 'Another-Header': 'another-header-val' },
      absentResponseHeaders: ['x-header-remove', 'X-Header-Remove'],
      backend: 'echo-v1',
    },
    {
      request: {
        path: '/response-and-request-header-modifiers',
        headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Echo': 'echo', ...set({ 'X-Header-Set-2': 'set-val-2', 'X-Header-Add-2': 'add-val-2', 'X-Header-Remove-2': 'remove-val-2', 'Another-Header': 'another-header-val', 'X-Header-Remove-1': 'remove-val-1', 'X-Header-Echo': 'echo' }) },
      },
      path: '/response-and-request-header-modifiers',
      requestHeaders: { 'X-Header-Add': 'header-val-1', 'X-Header-Set': 'set-overwrites-values', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Echo': 'echo' },
      absentRequestHeaders: ['X-Header-Remove'],
      responseHeaders: { 'X-Header-Set-1': 'header-set-1', 'X-Header-Set-2': 'header-set-2', 'X-Header-Add-1': 'header-add-1', 'X-Header-Add-2': 'add-val-2,header-add-2', 'Another-Header': 'another-header-val', 'X-Header-Echo': 'echo' },
      absentResponseHeaders: ['X-Header-Remove-1', 'X-Header-Remove-2'],
      backend: 'echo-v1',
    },
  ];
  await withManifest(moved('httproute-response-header-modifier'), holds(cases[0]!), () => expectTable(cases));
});

test('MeshHTTPRouteBackendRequestHeaderModifier', async () => {
  await withManifest(manifests['httproute-request-header-modifier-backend']!, holds(headerModifierCases[0]!), () => expectTable(headerModifierCases));
});

test('MeshHTTPRoute303Redirect', async () => {
  const c: Expected = { request: { path: '/redirect' }, status: 303, redirect: { path: '/redirect' } };
  await withManifest(manifests['httproute-303-redirect']!, holds(c), () => expectTable([c]));
});

test('MeshHTTPRoute307Redirect', async () => {
  const c: Expected = { request: { path: '/temporary' }, status: 307, redirect: { path: '/temporary' } };
  await withManifest(manifests['httproute-307-redirect']!, holds(c), () => expectTable([c]));
});

test('MeshHTTPRoute308Redirect', async () => {
  const c: Expected = { request: { path: '/permanent' }, status: 308, redirect: { path: '/permanent' } };
  await withManifest(manifests['httproute-308-redirect']!, holds(c), () => expectTable([c]));
});

test('MeshHTTPRouteRedirectHostAndStatus', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo', path: '/hostname-redirect' }, status: 302, redirect: { host: 'example.org' } },
    { request: { host: 'echo', path: '/host-and-status' }, status: 301, redirect: { host: 'example.org' } },
  ];
  await withManifest(manifests['httproute-redirect-host-and-status']!, holds(cases[0]!), () => expectTable(cases));
});

test('MeshHTTPRouteRedirectPath', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo', path: '/original-prefix/lemon' }, status: 302, redirect: { path: '/replacement-prefix/lemon' } },
    { request: { host: 'echo', path: '/full/path/original' }, status: 302, redirect: { path: '/full-path-replacement' } },
    { request: { host: 'echo', path: '/path-and-host' }, status: 302, redirect: { host: 'example.org', path: '/replacement-prefix' } },
    { request: { host: 'echo', path: '/path-and-status' }, status: 301, redirect: { path: '/replacement-prefix' } },
    { request: { host: 'echo', path: '/full-path-and-host' }, status: 302, redirect: { host: 'example.org', path: '/replacement-full' } },
    { request: { host: 'echo', path: '/full-path-and-status' }, status: 301, redirect: { path: '/replacement-full' } },
  ];
  await withManifest(manifests['httproute-redirect-path']!, holds(cases[0]!), () => expectTable(cases));
});

test('MeshHTTPRouteRedirectPort', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo', path: '/port' }, status: 302, redirect: { port: '8083' } },
    { request: { host: 'echo', path: '/port-and-host' }, status: 302, redirect: { host: 'example.org', port: '8083' } },
    { request: { host: 'echo', path: '/port-and-status' }, status: 301, redirect: { port: '8083' } },
    { request: { host: 'echo', path: '/port-and-host-and-status' }, status: 302, redirect: { port: '8083', host: 'example.org' } },
  ];
  await withManifest(manifests['httproute-redirect-port']!, holds(cases[0]!), () => expectTable(cases));
});

test('MeshHTTPRouteSchemeRedirect', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo', path: '/scheme' }, status: 302, redirect: { scheme: 'https' } },
    { request: { host: 'echo', path: '/scheme-and-host' }, status: 302, redirect: { host: 'example.org', scheme: 'https' } },
    { request: { host: 'echo', path: '/scheme-and-status' }, status: 301, redirect: { scheme: 'https' } },
    { request: { host: 'echo', path: '/scheme-and-host-and-status' }, status: 302, redirect: { scheme: 'https', host: 'example.org' } },
  ];
  await withManifest(manifests['httproute-redirect-scheme']!, holds(cases[0]!), () => expectTable(cases));
});

test('MeshHTTPRouteRewritePath', async () => {
  const modified = { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1', 'X-Header-Set': 'set-val' };
  const edits = { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' };
  const cases: Expected[] = [
    { request: { path: '/prefix/one/two', host: 'echo' }, path: '/one/two', backend: 'echo-v1' },
    { request: { path: '/strip-prefix/three', host: 'echo' }, path: '/three', backend: 'echo-v1' },
    { request: { path: '/strip-prefix', host: 'echo' }, path: '/', backend: 'echo-v1' },
    { request: { path: '/full/one/two', host: 'echo' }, path: '/one', backend: 'echo-v1' },
    { request: { host: 'echo', path: '/full/rewrite-path-and-modify-headers/test', headers: modified }, path: '/test', requestHeaders: edits, absentRequestHeaders: ['X-Header-Remove'], backend: 'echo-v1' },
    { request: { host: 'echo', path: '/prefix/rewrite-path-and-modify-headers/one', headers: modified }, path: '/prefix/one', requestHeaders: edits, absentRequestHeaders: ['X-Header-Remove'], backend: 'echo-v1' },
  ];
  await withManifest(manifests['httproute-rewrite-path']!, holds(cases[0]!), () => expectTable(cases));
});

test('HTTPRouteRewriteHost', async () => {
  const cases: Expected[] = [
    { request: { path: '/one', host: 'rewrite.example' }, path: '/one', host: 'one.example.org', backend: 'echo-v1' },
    { request: { path: '/two', host: 'rewrite.example' }, path: '/two', host: 'example.org', backend: 'echo-v2' },
    {
      request: { path: '/rewrite-host-and-modify-headers', host: 'rewrite.example', headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' } },
      path: '/rewrite-host-and-modify-headers',
      host: 'test.example.org',
      requestHeaders: { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' },
      absentRequestHeaders: ['X-Header-Remove'],
      backend: 'echo-v2',
    },
  ];
  await withManifest(moved('httproute-rewrite-host'), holds(cases[0]!), () => expectTable(cases));
});

test('MeshPorts', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo-v1', method: 'GET' }, status: 200, responseHeaders: { 'X-Header-Set': 'v1' }, backend: 'echo-v1' },
    { request: { host: 'echo-v1:8080', method: 'GET' }, status: 200, absentResponseHeaders: ['X-Header-Set'], backend: 'echo-v1' },
    { request: { host: 'echo-v2', method: 'GET' }, status: 200, responseHeaders: { 'X-Header-Set': 'v2' }, backend: 'echo-v2' },
    { request: { host: 'echo-v2:8080', method: 'GET' }, status: 200, responseHeaders: { 'X-Header-Set': 'v2' }, backend: 'echo-v2' },
  ];
  await withManifest(manifests['mesh-ports']!, holds(cases[3]!), () => expectTable(cases));
});

test('MeshFrontend', async () => {
  // The suite's second case (a client dialling the pod's IP gets no route) is not replayed: ambit
  // refuses a direct dial to a pod behind its waypoint (waypoint.test.ts), where Istio passes it.
  const c: Expected = { request: { host: 'echo-v2', method: 'GET' }, status: 200, responseHeaders: { 'X-Header-Set': 'set' }, backend: 'echo-v2' };
  await withManifest(manifests['mesh-frontend']!, holds(c), () => expectTable([c]));
});

test('MeshFrontendHostname', async () => {
  const cases: Expected[] = [
    { request: { host: 'echo-v2', headers: { Host: 'echo-v1' }, method: 'GET' }, status: 200, responseHeaders: { 'X-Header-Set': 'set' }, backend: 'echo-v2' },
    { request: { host: 'echo-v1', headers: { Host: 'echo-v2' }, method: 'GET' }, status: 200, absentResponseHeaders: ['X-Header-Set'], backend: 'echo-v1' },
  ];
  await withManifest(manifests['mesh-frontend']!, holds(cases[0]!), () => expectTable(cases));
});

test('MeshConsumerRoute', async () => {
  const consumer: Expected = { request: { host: `echo-v1.${ns}`, method: 'GET', path: '/' }, status: 200, responseHeaders: { 'X-Header-Set': 'set' }, backend: 'echo-v1' };
  const producer: Expected = { request: { host: `echo-v1.${ns}`, method: 'GET', path: '/' }, status: 200, absentResponseHeaders: ['X-Header-Set'], backend: 'echo-v1' };
  await withManifest(manifests['mesh-consumer-route']!, holds(consumer, consumerNs), async () => {
    await expectTable([consumer], 3, consumerNs);
    await expectTable([producer], 3, ns);
  });
});

test('HTTPRouteTimeoutRequest', async () => {
  const cases: Expected[] = [
    { request: { path: '/request-timeout' }, status: 200 },
    { request: { path: '/request-timeout?delay=1s' }, status: 504 },
    { request: { path: '/disable-request-timeout?delay=1s' }, status: 200 },
  ];
  await withManifest(moved('httproute-timeout-request'), holds(cases[1]!, ns, 1), () => expectTable(cases, 2));
});

test('HTTPRouteTimeoutBackendRequest', async () => {
  const cases: Expected[] = [
    { request: { path: '/backend-timeout' }, status: 200 },
    { request: { path: '/backend-timeout?delay=1s' }, status: 504 },
    { request: { path: '/disable-backend-timeout?delay=1s' }, status: 200 },
  ];
  await withManifest(moved('httproute-timeout-backend-request'), holds(cases[1]!, ns, 1), () => expectTable(cases, 2));
});

/** The suite's mirror tests: each request reaches its backend, and a copy of it each mirror. */
async function expectMirrored(cases: Expected[], mirrors: string[]): Promise<void> {
  const before = await Promise.all(mirrors.map(served));
  await expectTable(cases);
  for (const [i, m] of mirrors.entries()) assert.is(await receivedSince(m, before[i]!), cases.length * 3, `requests mirrored to ${m}`);
}

const mirrorCases = (paths: [string, string]): Expected[] => [
  { request: { path: paths[0] }, path: paths[0], backend: 'echo-v1' },
  {
    request: { path: paths[1], headers: { 'X-Header-Remove': 'remove-val', 'X-Header-Add-Append': 'append-val-1' } },
    path: paths[1],
    requestHeaders: { 'X-Header-Add': 'header-val-1', 'X-Header-Add-Append': 'append-val-1,header-val-2', 'X-Header-Set': 'set-overwrites-values' },
    absentRequestHeaders: ['X-Header-Remove'],
    backend: 'echo-v1',
  },
];

test('HTTPRouteRequestMirror', async () => {
  const cases = mirrorCases(['/mirror', '/mirror-and-modify-headers']);
  await withManifest(moved('httproute-request-mirror'), holds(cases[1]!), () => expectMirrored(cases, ['echo-v2']));
});

test('HTTPRouteRequestMultipleMirrors', async () => {
  const cases = mirrorCases(['/multi-mirror', '/multi-mirror-and-modify-request-headers']);
  await withManifest(moved('httproute-request-multiple-mirrors'), holds(cases[1]!), () => expectMirrored(cases, ['echo-v2', 'echo-v3']));
});

test('HTTPRouteRequestPercentageMirror', async () => {
  // The suite's: 500 requests a case, the mirror's count within 3 binomial standard deviations.
  const total = 500;
  const cases: [string, number][] = [
    ['/percent-mirror', 20],
    ['/percent-mirror-fraction', 50],
    ['/percent-mirror-and-modify-headers', 35],
  ];
  await withManifest(moved('httproute-request-percentage-mirror'), holds({ request: { path: '/percent-mirror' }, path: '/percent-mirror', backend: 'echo-v1' }), async () => {
    for (const [path, percent] of cases) {
      const before = await served('echo-v2');
      const answers = await batch({ path }, total);
      assert.is(answers.filter((a) => a.status === 200 && a.pod.startsWith('echo-v1-')).length, total, `every request to ${path} answered by echo-v1`);
      const got = await receivedSince('echo-v2', before);
      const p = percent / 100;
      const margin = 3 * Math.sqrt(total * p * (1 - p));
      console.log(`HTTPRouteRequestPercentageMirror ${path}: ${got} of ${total} mirrored, want ${total * p} ± ${margin.toFixed(1)}`);
      assert.ok(Math.abs(got - total * p) <= margin, `${path}: ${got} of ${total} mirrored, want ${total * p} ± ${margin.toFixed(1)}`);
    }
  });
});

/** The suite's retry cases: each try of a request carries its own id, so echo-v3 fails its first `succeedAfter` tries. */
function retryCases(rows: [path: string, params: Record<string, string>, status: number | number[]][]): Expected[] {
  return rows.map(([path, params, status]) => ({ request: { path: `${path}?${new URLSearchParams({ ...params, uuid: randomUUID() }).toString()}` }, status, backend: 'echo-v3' }));
}

/** Like expectTable, but each round's requests have fresh ids (the suite's new UUID per probe). */
async function expectRetries(rows: Parameters<typeof retryCases>[0], rounds = 2): Promise<void> {
  for (let i = 0; i < rounds; i++) await expectTable(retryCases(rows), 1);
}

test('HTTPRouteRetry', async () => {
  const a3 = '/retry/code-500-attempts-3';
  const all = '/retry/code-all-attempts-2';
  const rows: Parameters<typeof retryCases>[0] = [
    [a3, { responseCode: '500', succeedAfter: '2' }, 200],
    [a3, { responseCode: '500', succeedAfter: '4' }, 500],
    [a3, { responseCode: '503', succeedAfter: '2' }, 503],
    [all, { responseCode: '500', succeedAfter: '1' }, 200],
    [all, { responseCode: '500', succeedAfter: '3' }, 500],
    [all, { responseCode: '502', succeedAfter: '1' }, 200],
    [all, { responseCode: '502', succeedAfter: '3' }, 502],
    [all, { responseCode: '503', succeedAfter: '1' }, 200],
    [all, { responseCode: '503', succeedAfter: '3' }, 503],
    [all, { responseCode: '504', succeedAfter: '1' }, 200],
    [all, { responseCode: '504', succeedAfter: '3' }, 504],
  ];
  await withManifest(moved('httproute-retry'), holds(() => retryCases(rows)[0]!, ns, 2), () => expectRetries(rows));
});

test('HTTPRouteRetryWithTimeouts', async () => {
  const rows: Parameters<typeof retryCases>[0] = [
    ['/retry/backend-request-timeout-200ms', { responseCode: '500', succeedAfter: '2', delayRetry: '300ms' }, 200],
    ['/retry/backend-request-timeout-200ms', { responseCode: '500', succeedAfter: '3', delayRetry: '300ms' }, 504],
    ['/retry/request-timeout-200ms', { responseCode: '500', succeedAfter: '1' }, 200],
    ['/retry/request-timeout-200ms', { responseCode: '500', succeedAfter: '4', delayRetry: '100ms' }, 504],
  ];
  await withManifest(moved('httproute-retry-with-timeouts'), holds(() => retryCases(rows)[2]!, ns, 2), () => expectRetries(rows));
});

test('HTTPRouteRetryConnectionError', async () => {
  const rows: Parameters<typeof retryCases>[0] = [
    ['/retry/no-status-code-attempts-3', { succeedAfter: '2' }, 200],
    ['/retry/no-status-code-attempts-3', { succeedAfter: '4' }, [500, 503]],
  ];
  await withManifest(moved('httproute-retry-connection-error'), holds(() => retryCases(rows)[0]!, ns, 2), () => expectRetries(rows));
});

test('a retry on 503 makes a flaky backend answer (GEP-1731)', async () => {
  // flaky answers half its requests 503. Without a route the waypoint retries none of them; with
  // three retries on 503 a request fails only when four tries do (1/16). Bounds: 4 standard
  // deviations (3 failed once in a clean-clone CI: 124 of 200), and the statuses of the
  // failures are in the messages, so that a failure other than flaky's 503 shows for what it is.
  const n = 200;
  const failures = async () => {
    const failed = (await batch({ host: 'flaky', path: '/' }, n)).filter((a) => a.status !== 200);
    const tally: Record<string, number> = {};
    for (const a of failed) tally[String(a.status)] = (tally[String(a.status)] ?? 0) + 1;
    return { count: failed.length, tally: JSON.stringify(tally) };
  };
  const without = await failures();
  let withRetry = { count: 0, tally: '{}' };
  await withManifest(moved('flaky-retry'), holds({ request: { host: 'flaky', path: '/' }, status: [200, 503], responseHeaders: { 'X-Route': 'flaky-retry' } }), async () => {
    withRetry = await failures();
  });
  console.log(`flaky: ${without.count} of ${n} failed without a retry ${without.tally}, ${withRetry.count} with three retries on 503 ${withRetry.tally}`);
  assert.ok(Math.abs(without.count - n / 2) <= 4 * Math.sqrt(n / 4), `${without.count} of ${n} failed without a retry (${without.tally}), want about half`);
  assert.ok(withRetry.count <= n / 16 + 4 * Math.sqrt((n * 15) / 256), `${withRetry.count} of ${n} failed with three retries on 503 (${withRetry.tally}), want about ${n / 16}`);
});

test('ambit down leaves nothing behind', async () => {
  if (work) rmSync(work, { recursive: true, force: true });
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
