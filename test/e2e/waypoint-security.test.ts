// The waypoint's L7 security on the local cluster, through curl in a pod of the mesh: an
// AuthorizationPolicy DENY on a path enforced at the waypoint (with the normalized path the backend
// sees), while the same rules with a selector only warn at apply; JWTs checked against a JWKS served
// by a pod in the mesh; a LocalRateLimit answering 429 past its budget, counted in the metrics; and
// `ambit explain --http` naming the policy and JWT rule that decided. The waypoint runs two event
// loops, which spend one rate-limit budget together.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, applyAndWait, eventually, leftovers, sum } from './helpers.js';
import { inClient, ns, statuses, tally, waypointCurrent, waypointMetrics, upBehindWaypoint } from './waypoint-helpers.js';
import type { Resource } from '../../shared/resources/types.js';

let vips = new Map<string, string>();
const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-security-'));
const issuer = 'https://issuer.ambit.test';
const jwksUri = `http://issuer.${ns}.svc.cluster.local:8000/jwks.json`;

/** One request's status code and body from the client pod. */
async function get(url: string, curlArgs = ''): Promise<{ code: number; body: string }> {
  const r = await inClient(`curl -s -m 10 -w '\\n%{http_code}' ${curlArgs} '${url}'`);
  const lines = r.stdout.trimEnd().split('\n');
  return { code: Number(lines.pop()), body: lines.join('\n') };
}

/** A token from the issuer pod, signed as asked. */
async function token(query: string): Promise<string> {
  const r = await get(`http://${vips.get('issuer')}:8000/token?${query}`);
  assert.is(r.code, 200, `the issuer signs a token: ${r.body}`);
  return r.body.trim();
}

const echoedHeaders = (body: string) => (JSON.parse(body) as { headers: Record<string, string[]> }).headers;

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('set-up: the conformance namespace and a token issuer behind a waypoint', async () => {
  vips = await upBehindWaypoint(['mesh.yaml', 'issuer.yaml'], { workers: 2 });
  await eventually('the backends and the issuer to answer through the waypoint', async () => (await inClient(`curl -sf -m 2 http://${vips.get('echo-v1')}/ && curl -sf -m 2 http://${vips.get('echo-v2')}/ && curl -sf -m 2 http://${vips.get('issuer')}:8000/jwks.json`)).code === 0, 30_000);
});

test('a backend that closes idle keep-alive connections (the issuer: Node default, 5 s) still answers through the waypoint after 7 s idle', async () => {
  const url = `http://${vips.get('issuer')}:8000/jwks.json`;
  assert.is((await get(url)).code, 200);
  await new Promise((r) => setTimeout(r, 7000));
  // The waypoint's tunnel to it was half-closed by the backend; reused, the request hung until curl gave up.
  assert.is((await get(url)).code, 200);
});

const denyAdmin = (attach: string) => `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-admin, namespace: ${ns} }
spec:
  ${attach}
  action: DENY
  rules:
  - to: [{ operation: { methods: [GET, POST], paths: ["/admin/*", "/internal"] } }]
`;

test('the same DENY on paths, attached by a selector, only warns that a node proxy cannot enforce it', async () => {
  const file = join(dir, 'deny-selector.yaml');
  writeFileSync(file, denyAdmin('selector: { matchLabels: { app: echo-v1 } }'));
  const out = await ambitOk(['apply', '--dry-run', '-f', file]);
  assert.match(out, /warning: rule 0: .*(paths|methods)/, `apply warns that the node proxy cannot enforce paths: ${out}`);
});

test('an AuthorizationPolicy DENY on paths, attached to a Service, is enforced at the waypoint on the normalized path', async () => {
  const before = await get(`http://${vips.get('echo-v1')}/admin/users`);
  assert.is(before.code, 200, 'reachable before the policy');
  await applyAndWait(dir, denyAdmin('targetRefs: [{ group: "", kind: Service, name: echo-v1 }]'));
  await waypointCurrent();
  const denied = await get(`http://${vips.get('echo-v1')}/admin/users`);
  assert.is(denied.code, 403);
  assert.match(denied.body, 'RBAC: access denied');
  assert.is((await get(`http://${vips.get('echo-v1')}/public`)).code, 200, 'other paths still pass');
  assert.is((await get(`http://${vips.get('echo-v1')}/admin/users`, '-X DELETE')).code, 200, 'other methods still pass');
  assert.is((await get(`http://${vips.get('echo-v2')}/admin/users`)).code, 200, 'another Service is not affected');
  // The backend sees the path the policy saw: a dot-segment cannot walk around the DENY.
  assert.is((await get(`http://${vips.get('echo-v1')}/public/../admin/users`, '--path-as-is')).code, 403);
  assert.is((await get(`http://${vips.get('echo-v1')}/%2e%2e/internal`, '--path-as-is')).code, 403, 'percent-encoded dots are normalized too');
  assert.is((await get(`http://${vips.get('echo-v1')}/public%00/admin`, '--path-as-is')).code, 400, 'a NUL in the path is a bad request');
  const normalized = await get(`http://${vips.get('echo-v1')}/a/./b/../public`, '--path-as-is');
  assert.is(normalized.code, 200);
  assert.is((JSON.parse(normalized.body) as { path: string }).path, '/a/public', 'the backend gets the normalized path');
  const metrics = await waypointMetrics();
  assert.match(metrics, new RegExp(`ambit_waypoint_policy_refusals_total\\{[^}]*kind="authz"[^}]*policy="${ns}/deny-admin"[^}]*response_code="403"`));
});

test('explain --http walks the waypoint decision and names the DENY policy and rule', async () => {
  const e = await ambit(['explain', '-n', ns, 'deploy/client', `echo-v1.${ns}:80`, '--http', 'GET', '/admin/users']);
  assert.is(e.code, 3, `explain exits 3 for a denied request: ${e.stdout}${e.stderr}`);
  assert.match(e.stdout, `${ns}/deny-admin`);
  assert.match(e.stdout, /security:/);
  const ok = await ambit(['explain', '-n', ns, 'deploy/client', `echo-v1.${ns}:80`, '--http', 'GET', '/public']);
  assert.is(ok.code, 0, `the same request to another path is allowed: ${ok.stdout}${ok.stderr}`);
});

test('a policy the waypoint cannot honour is refused with the field named, and nothing is stored', async () => {
  const file = join(dir, 'custom.yaml');
  writeFileSync(
    file,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: ext-authz, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: echo-v1 }]
  action: CUSTOM
  provider: { name: my-ext-authz }
  rules: [{ to: [{ operation: { paths: ["/x"] } }] }]
`,
  );
  const r = await ambit(['apply', '-f', file]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr + r.stdout, /spec\.action/);
  assert.is.not((await ambit(['get', 'authorizationpolicy', 'ext-authz', '-n', ns])).code, 0, 'nothing stored');
});

test('the policy status says the waypoint enforces it', async () => {
  const p = await eventually('the WaypointAccepted condition', async () => {
    const r = JSON.parse(await ambitOk(['get', 'authorizationpolicy', 'deny-admin', '-n', ns, '-o', 'json'])) as Resource;
    const s = r.status as { enforcedBy?: string; conditions?: { type: string; status: string; message: string }[] } | undefined;
    return s?.conditions?.some((c) => c.type === 'WaypointAccepted') ? s : undefined;
  });
  assert.is(p.enforcedBy, 'waypoints (L7)');
  const c = p.conditions!.find((x) => x.type === 'WaypointAccepted')!;
  assert.is(c.status, 'True');
  assert.match(c.message, `${ns}/waypoint`);
});

test('a Service protected by RequestAuthentication (JWKS from a pod in the mesh) and an ALLOW on request principals', async () => {
  await applyAndWait(
    dir,
    `apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: { name: echo-v2-jwt, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: echo-v2 }]
  jwtRules:
  - issuer: ${issuer}
    jwksUri: ${jwksUri}
    audiences: [shop]
    outputClaimToHeaders: [{ header: x-jwt-sub, claim: sub }]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: echo-v2-require-jwt, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: echo-v2 }]
  action: ALLOW
  rules:
  - from: [{ source: { requestPrincipals: ["${issuer}/*"] } }]
    when: [{ key: "request.auth.claims[groups]", values: [dev] }]
`,
  );
  await waypointCurrent();
  const url = `http://${vips.get('echo-v2')}/orders`;
  const alice = await token('sub=alice&aud=shop&groups=dev');
  // The first request may wait for the JWKS fetch; it must not fail open.
  const ok = await eventually('a valid token to be accepted', async () => {
    const r = await get(url, `-H 'authorization: Bearer ${alice}'`);
    return r.code === 200 ? r : undefined;
  }, 15_000);
  const headers = echoedHeaders(ok.body);
  assert.is(headers.authorization, undefined, 'the token is stripped before the backend');
  assert.equal(headers['x-jwt-sub'], ['alice'], 'the subject claim is copied to a header');

  assert.is((await get(url)).code, 403, 'no token: the ALLOW on request principals refuses');
  const forged = await get(url, `-H 'x-jwt-sub: mallory' -H 'authorization: Bearer ${alice}'`);
  assert.equal(echoedHeaders(forged.body)['x-jwt-sub'], ['alice'], 'a client cannot forge the claim header');
  const [h, p, s] = alice.split('.') as [string, string, string];
  const tampered = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' })).toString('base64url')}.${s}`;
  const t = await get(url, `-H 'authorization: Bearer ${tampered}'`);
  assert.is(t.code, 401, 'a tampered token is 401');
  assert.is((await get(url, `-H 'authorization: Bearer ${await token('sub=alice&aud=billing&groups=dev')}'`)).code, 403, 'wrong audience is 403');
  assert.is((await get(url, `-H 'authorization: Bearer ${await token('sub=alice&aud=shop&groups=dev&exp=-300')}'`)).code, 401, 'expired (past the 60 s skew) is 401');
  assert.is((await get(url, `-H 'authorization: Bearer ${await token('sub=bob&aud=shop&groups=ops')}'`)).code, 403, 'a valid token without the claim the policy wants is 403');
  assert.is((await get(`${url}?access_token=${alice}`)).code, 200, 'a token in the access_token query parameter is read too');
  const none = `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`;
  assert.is((await get(url, `-H 'authorization: Bearer ${none}'`)).code, 401, 'alg none is refused');

  const e = await ambit(['explain', '-n', ns, 'deploy/client', `echo-v2.${ns}:80`, '--http', 'GET', '/orders', '--jwt', alice]);
  assert.is(e.code, 0, `explain with the token allows: ${e.stdout}${e.stderr}`);
  assert.match(e.stdout, `${ns}/echo-v2-jwt`);
  assert.match(e.stdout, `${issuer}/alice`);
  const denied = await ambit(['explain', '-n', ns, 'deploy/client', `echo-v2.${ns}:80`, '--http', 'GET', '/orders']);
  assert.is(denied.code, 3, `explain without a token is denied: ${denied.stdout}`);
  assert.match(denied.stdout, `${ns}/echo-v2-require-jwt`);
});

test('a LocalRateLimit of 5 per minute answers 429 with retry-after past its budget, counted in the metrics', async () => {
  await applyAndWait(
    dir,
    `apiVersion: ambit.dev/v1alpha1
kind: LocalRateLimit
metadata: { name: echo-v3-budget, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: echo-v3 }]
  tokenBucket: { maxTokens: 5, tokensPerFill: 5, fillInterval: 60s }
`,
  );
  await waypointCurrent();
  const url = `http://${vips.get('echo-v3')}/`;
  const codes = await statuses(url, 10);
  assert.equal(tally(codes), { 200: 5, 429: 5 }, `5 pass, 5 are limited: ${JSON.stringify(codes)}`);
  const limited = await inClient(`curl -s -D - -o /dev/null -m 10 '${url}'`);
  assert.match(limited.stdout, /^HTTP\/1\.1 429/);
  assert.match(limited.stdout, /retry-after: \d+/i);
  assert.match(limited.stdout, /x-ratelimit-limit: 5/i);
  assert.match(limited.stdout, /x-ratelimit-remaining: 0/i);
  assert.is((await get(`http://${vips.get('echo-v1')}/public`)).code, 200, 'another Service has its own budget (none)');
  const metrics = await waypointMetrics();
  assert.is(sum(metrics, 'istio_requests_total', { destination_service_name: 'echo-v3', response_code: '429', response_flags: 'RL' }), 6, 'each 429 is in the request metrics with flag RL');
  assert.is(sum(metrics, 'ambit_waypoint_policy_refusals_total', { kind: 'ratelimit', policy: `${ns}/echo-v3-budget` }), 6);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leftovers(), []);
});

test.run();
