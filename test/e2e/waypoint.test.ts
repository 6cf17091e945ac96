// The waypoint on the local cluster: `ambit waypoint apply` deploys it, the Services of a namespace
// labelled to use it are served through it (HTTP/1.1, h2c and plain TCP), a pod behind it cannot be
// dialled around it, and its routing follows the Gateway API (the mesh conformance suite's cases:
// see waypoint-routing.test.ts for those). Real clients (curl) in a pod of the mesh, a real echo backend.
// The waypoint here runs two event loops (`--workers 2`: its main thread and a worker thread), so
// every test below passes through either; two tests spread sessions over both: each request is
// counted and logged once, and a rate limit is one budget for both.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { ambit, ambitOk, applyAndWait, eventually, leftovers, root, sh, stateDir, sum } from './helpers.js';
import { waypointCurrent } from './waypoint-helpers.js';
import type { Resource } from '../../shared/resources/types.js';
import { CertificateAuthority } from '../../controller/ca/authority.js';
import { sign } from '../../controller/ca/issuer.js';
import { caDir } from '../../controller/config.js';

interface Echo {
  path: string;
  host: string;
  method: string;
  proto: string;
  headers: Record<string, string[]>;
  pod: string;
  version: string;
  client: string;
}

/** The conformance suite's namespace, so that its mesh manifests apply unchanged. */
const ns = 'gateway-conformance-mesh';
const vips = new Map<string, string>();
const dir = mkdtempSync(join(tmpdir(), 'ambit-e2e-waypoint-'));
let waypointIp = '';
let waypointPod = '';
let waypointNode = '';

/** Runs a shell command in the test's client pod. */
const inClient = (cmd: string, timeoutMs = 60_000) => ambit(['exec', 'deploy/client', '-n', ns, '--', 'sh', '-c', cmd], timeoutMs);

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('ambit waypoint apply deploys a waypoint with its own identity, and its Gateway says it is programmed', async () => {
  await ambitOk(['up', '--no-samples']);
  await ambitOk(['apply', '-f', join(root, 'test/e2e/fixtures/waypoint/mesh.yaml')]);
  const bad = await ambit(['waypoint', 'apply', '-n', ns, '--workers', '0']);
  assert.is(bad.code, 1);
  assert.match(bad.stderr, '--workers must be a whole number from 1 to 64');
  const out = await ambitOk(['waypoint', 'apply', '-n', ns, '--workers', '2']);
  assert.match(out, `Gateway ${ns}/waypoint created`);
  const gw = await eventually(
    'the waypoint Gateway to be programmed',
    async () => {
      const g = JSON.parse(await ambitOk(['get', 'gateway', 'waypoint', '-n', ns, '-o', 'json'])) as Resource;
      const s = g.status as { conditions?: { type: string; status: string }[]; addresses?: { value: string }[] } | undefined;
      return s?.conditions?.find((c) => c.type === 'Programmed')?.status === 'True' ? s : undefined;
    },
    30_000,
  );
  const { items } = JSON.parse(await ambitOk(['get', 'services', '-n', ns, '-o', 'json'])) as { items: Resource<string, { clusterIP: string }>[] };
  for (const s of items) vips.set(s.metadata.name, s.spec!.clusterIP);
  assert.is(gw.addresses?.[0]?.value, vips.get('waypoint'), 'the Gateway address is the waypoint Service');
  const list = await ambitOk(['waypoint', 'list']);
  assert.match(list, new RegExp(`${ns}\twaypoint\tTrue\t10\\.96\\.\\d+\\.\\d+\tservice\n`));
  const pods = JSON.parse(await ambitOk(['get', 'pods', '-n', ns, '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> }; spec: { serviceAccountName: string; nodeName: string }; status: { podIP: string; phase: string } }[] };
  const wp = pods.items.find((p) => p.metadata.labels['gateway.networking.k8s.io/gateway-name'] === 'waypoint')!;
  assert.is(wp.spec.serviceAccountName, 'waypoint', 'the waypoint runs as its own ServiceAccount');
  waypointIp = wp.status.podIP;
  waypointPod = wp.metadata.name;
  waypointNode = wp.spec.nodeName;
  // Every backend answers through the waypoint before the tests begin.
  await eventually('every echo pod to answer', async () => (await inClient(`curl -sf -m 2 http://${vips.get('echo-v1')}/ && curl -sf -m 2 http://${vips.get('echo-v2')}/ && curl -sf -m 2 http://${vips.get('echo-v3')}/`)).code === 0, 30_000);
});

test('a request to a Service that uses the waypoint goes through it, over HTTP/1.1 and h2c', async () => {
  for (const flag of ['', '--http2-prior-knowledge']) {
    const r = await inClient(`curl -sS -m 5 ${flag} http://${vips.get('echo-v1')}/hello?x=1`);
    assert.is(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout) as Echo;
    assert.is(e.path, '/hello?x=1');
    assert.is(e.version, 'v1');
    assert.is(e.client, waypointIp, 'the backend was called by the waypoint');
    assert.ok(e.headers['x-request-id']?.[0], 'the waypoint gives the request an id');
  }
});

test('plain TCP to a Service behind the waypoint passes through it at L4', async () => {
  const r = await inClient(`printf 'ping-through-waypoint\\n' | timeout 5 bash -c 'exec 3<>/dev/tcp/${vips.get('tcp-echo')}/9000; cat >&3; read -t 3 line <&3; echo "$line"'`);
  assert.is(r.stdout.trim(), 'ping-through-waypoint', r.stderr);
});

test('a direct dial to a pod behind the waypoint is refused, and explain says why', async () => {
  const pods = JSON.parse(await ambitOk(['get', 'pods', '-n', ns, '-o', 'json'])) as { items: { metadata: { labels: Record<string, string> }; status: { podIP: string } }[] };
  const ip = pods.items.find((p) => p.metadata.labels.app === 'echo')!.status.podIP;
  const r = await inClient(`curl -sS -m 5 http://${ip}:8080/around-the-waypoint`);
  assert.is.not(r.code, 0, 'the pod answered a client that went around its waypoint');
  const e = await ambit(['explain', '-n', ns, 'deploy/client', `${ip}:8080`]);
  assert.is(e.code, 3, e.stdout);
  assert.match(e.stdout, new RegExp(`denied: pod ${ns}/echo-v\\d-\\S+ port 8080 is behind waypoint ${ns}/waypoint \\(Service ${ns}/echo(-v\\d)? uses it\\): only the waypoint may connect`));
  const via = await ambitOk(['explain', '-n', ns, 'deploy/client', `echo.${ns}:80`]);
  assert.match(via, new RegExp(`service ${ns}/echo uses waypoint ${ns}/waypoint: HBONE to waypoint pod ${ns}/waypoint-\\S+ \\(\\d+\\.\\d+\\.\\d+\\.\\d+:15008\\)`));
});

test('explain walks the waypoint hop: the route a request matches, its backends and filters, and the destination agent\'s decision for the waypoint', async () => {
  const file = join(dir, 'explain-route.yaml');
  writeFileSync(
    file,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: explain-me, namespace: ${ns} }
spec:
  parentRefs: [{ group: "", kind: Service, name: echo, port: 80 }]
  rules:
  - matches: [{ headers: [{ name: x-canary, value: "true" }] }]
    filters: [{ type: RequestHeaderModifier, requestHeaderModifier: { set: [{ name: x-explained, value: "yes" }] } }]
    backendRefs: [{ name: echo-v2, port: 80 }]
  - backendRefs: [{ name: echo-v1, port: 80, weight: 90 }, { name: echo-v3, port: 80, weight: 10 }]
`,
  );
  await ambitOk(['apply', '-f', file, '--wait']);
  const listed = await ambitOk(['explain', '-n', ns, 'deploy/client', `echo.${ns}:80`]);
  assert.match(listed, `routes attached to ${ns}/echo:80 (producer routes): HTTPRoute ${ns}/explain-me`);
  const canary = await ambitOk(['explain', '-n', ns, 'deploy/client', `echo.${ns}:80`, '--http', 'GET', '/x', '-H', 'x-canary: true']);
  assert.match(canary, `GET /x matches HTTPRoute ${ns}/explain-me rule 0`);
  assert.match(canary, `backends: ${ns}/echo-v2:80 100%`);
  assert.match(canary, 'filters: request headers set x-explained: yes');
  assert.match(canary, new RegExp(`sent over HBONE as cluster.local/ns/${ns}/sa/waypoint to \\d+\\.\\d+\\.\\d+\\.\\d+:8080 \\(${ns}/echo-v2-`));
  assert.match(canary, /at the destination \(agent of node-\d\):[\s\S]*allowed/);
  const split = await ambitOk(['explain', '-n', ns, 'deploy/client', `echo.${ns}:80`, '--http', 'GET', '/y']);
  assert.match(split, `backends: ${ns}/echo-v1:80 90%, ${ns}/echo-v3:80 10%`);
  await ambitOk(['delete', 'httproute', 'explain-me', '-n', ns]);
});

const sessions = 16;
const perSession = 5;
/** The 16 sessions' 80 requests to echo-v1, paths starting with `prefix`: each 'ok', '429' or what came instead. */
const sessionsFrom = async (prefix: string) => JSON.parse(await sh(`nsenter --net=/run/netns/ambit-node-${waypointNode} ${process.execPath} ${join(dir, 'sessions.cjs')} ${prefix}`)) as string[];
/** The waypoint's requests by event loop, its HTTP requests and rate-limit refusals, and the scrape. */
const counts = async () => {
  const m = (await ambitOk(['exec', '-n', ns, 'deploy/waypoint', '--', 'curl', '-s', 'http://127.0.0.1:15020/metrics'])).toString();
  return {
    threads: [0, 1].map((t) => sum(m, 'ambit_waypoint_thread_requests_total', { thread: String(t) })),
    requests: sum(m, 'istio_requests_total', { reporter: 'waypoint', request_protocol: 'http' }),
    limited: sum(m, 'ambit_waypoint_policy_refusals_total', { kind: 'ratelimit' }),
    text: m,
  };
};

test("both of the waypoint's event loops carry traffic: 16 HBONE sessions, every request answered, counted once in its metrics and logged once", async () => {
  // HBONE sessions straight to the waypoint's 15008 from a stock HTTP/2 client with a mesh SVID, as a
  // node proxy's would come: the kernel spreads sessions (not requests) over the event loops'
  // listeners, and 16 all landing on one of two has a chance of 1 in 32,768.
  const ca = CertificateAuthority.open(caDir(stateDir), 'cluster.local');
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const issued = sign({ ca, trustDomain: 'cluster.local', maxTtlSeconds: 3600, defaultTtlSeconds: 3600 }, { trustDomain: 'cluster.local', namespace: ns, serviceAccount: 'client' }, keys.publicKey.export({ type: 'spki', format: 'der' }));
  writeFileSync(join(dir, 'key.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(join(dir, 'cert.pem'), issued.chain.join(''));
  writeFileSync(join(dir, 'ca.pem'), ca.trustBundle().join(''));
  writeFileSync(
    join(dir, 'sessions.cjs'),
    `
const http2 = require('node:http2'); const fs = require('node:fs'); const dir = ${JSON.stringify(dir)};
const tls = { key: fs.readFileSync(dir + '/key.pem'), cert: fs.readFileSync(dir + '/cert.pem'), ca: fs.readFileSync(dir + '/ca.pem'), servername: 'waypoint.${ns}.sa.cluster.local', minVersion: 'TLSv1.3', checkServerIdentity: () => undefined };
const get = (session, path) => new Promise((resolve) => {
  const stream = session.request({ ':method': 'CONNECT', ':authority': '${vips.get('echo-v1')}:80' });
  let body = '';
  let status = '';
  stream.on('response', (h) => (status = String(h[':status'])));
  stream.setEncoding('utf8').on('data', (d) => (body += d));
  stream.on('end', () => stream.end());
  // 'ok' for the echo's answer to this path, the code of a 429, else what came.
  stream.on('end', () => resolve(body.startsWith('HTTP/1.1 200') && body.includes(path) ? 'ok' : body.startsWith('HTTP/1.1 429') ? '429' : 'CONNECT ' + status + ': ' + body.slice(0, 80)));
  stream.on('error', (e) => resolve('error ' + e.message));
  // Written, not ended: a node proxy never half-closes a tunnel, and the waypoint's HTTP/1.1 server
  // takes the end of the stream for the client going away. 'Connection: close' ends the answer.
  stream.write('GET ' + path + ' HTTP/1.1\\r\\nHost: echo-v1\\r\\nConnection: close\\r\\n\\r\\n');
});
(async () => {
  const results = await Promise.all(Array.from({ length: ${sessions} }, async (_, s) => {
    const session = http2.connect('https://${waypointIp}:15008', tls);
    session.on('error', () => undefined);
    const out = [];
    for (let r = 0; r < ${perSession}; r++) out.push(await get(session, process.argv[2] + s + '-' + r));
    session.close();
    return out;
  }));
  console.log(JSON.stringify(results.flat()));
  process.exit(0);
})();
setTimeout(() => { console.log('timeout'); process.exit(3); }, 20000).unref();
`,
  );
  const before = await counts();
  assert.match(before.text, 'ambit_waypoint_thread_requests_total{thread="1"}', 'the worker thread reports its own count');
  const results = await sessionsFrom('/workers-');
  assert.equal(results, Array(sessions * perSession).fill('ok'));
  const after = await counts();
  const byThread = after.threads.map((n, i) => n - before.threads[i]!);
  assert.ok(byThread.every((n) => n > 0), `each event loop handled some of the requests: ${byThread.join(', ')}`);
  assert.is(byThread[0]! + byThread[1]!, sessions * perSession, 'each request counted once, by the event loop that handled it');
  assert.is(after.requests - before.requests, sessions * perSession, "istio_requests_total sums both event loops'");
  const lines = (await ambit(['logs', '-n', ns, waypointPod])).stdout.split('\n').filter((l) => l.includes('"path":"/workers-'));
  assert.is(lines.length, sessions * perSession, 'one access line per request, from either event loop');
  for (const l of lines) JSON.parse(l);
});

test('a LocalRateLimit is one budget for both event loops: of 80 requests over 16 sessions, exactly its 30 tokens pass', async () => {
  await applyAndWait(
    dir,
    `apiVersion: ambit.dev/v1alpha1
kind: LocalRateLimit
metadata: { name: echo-v1-budget, namespace: ${ns} }
spec:
  targetRefs: [{ group: "", kind: Service, name: echo-v1 }]
  tokenBucket: { maxTokens: 30, tokensPerFill: 30, fillInterval: 1h }
`,
  );
  await waypointCurrent();
  const before = await counts();
  const results = await sessionsFrom('/budget-');
  const after = await counts();
  assert.equal(results.filter((r) => r === 'ok').length, 30, `passed: ${JSON.stringify(results)}`);
  assert.equal(results.filter((r) => r === '429').length, sessions * perSession - 30, 'the rest refused with 429');
  const byThread = after.threads.map((n, i) => n - before.threads[i]!);
  assert.ok(byThread.every((n) => n > 0), `each event loop handled some of the requests: ${byThread.join(', ')}`);
  assert.is(after.limited - before.limited, sessions * perSession - 30, 'refusals counted once, over both loops');
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  rmSync(dir, { recursive: true, force: true });
  assert.equal(await leftovers(), []);
});

test.run();
