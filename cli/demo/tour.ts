// `ambit demo`: a guided tour of the mesh on the sample workloads. Each step prints the command a
// person would type and what it showed: a request crossing nodes in plaintext (seen on the wire),
// the namespaces enrolled, the same request as HBONE with mutual TLS (the wire and the metrics'
// connection_security_policy), an AuthorizationPolicy that denies the caller, the refusal and
// `ambit explain` naming the rule, Prometheus's view, then a waypoint and a 90/10 canary split by an
// HTTPRoute. It puts the cluster back as it found it and says what it changed. The claims it checks are returned, so a test can hold it to them.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AmbitError } from '../../shared/errors.js';
import { enrollLabels } from '../../shared/enrollment.js';
import type { Namespace } from '../../shared/resources/types.js';
import type { ClusterStatus } from '../../cluster/status.js';
import { readState, topologyOf } from '../../cluster/state.js';
import { inNetns } from '../../cluster/kubelet/exec.js';
import { prometheusUrl } from '../../cluster/prometheus.js';
import { defaultDashboardPort } from '../../controller/config.js';
import type { Topology } from '../../cluster/topology.js';
import { defaultMetricsPort } from '../../agent/config.js';
import { ClusterClient } from '../../cluster/api.js';
import { labelNamespace, listResources, withCluster } from '../kube.js';
import { cliEntry, type CliContext } from '../context.js';
import { type Fence, watchWire } from './wire.js';

export interface TourClaims {
  plaintextBefore: boolean;
  plaintextAfter: boolean;
  hboneAfter: boolean;
  mutualTlsInMetrics: boolean;
  deniedWithPolicy: boolean;
  explainedDenial: boolean;
  allowedAgain: boolean;
  /** Prometheus holds the tour's connections, the denied one with response_flags DENY. */
  deniedInPrometheus?: boolean;
  /** Through the waypoint, an HTTPRoute split web between v1 and v2, most to v1, none failed. */
  canarySplit?: boolean;
}

const policyName = 'demo-deny-client';
const namespaces = ['shop', 'client'];

export async function tour(ctx: CliContext, say: (line: string) => void): Promise<TourClaims> {
  const state = readState(ctx.stateDir);
  if (!state) throw new AmbitError('NoCluster', 'no local cluster; run `ambit up` first');
  const t = topologyOf(state);
  const api = new ClusterClient(ctx.stateDir);
  const s = await api.request<ClusterStatus>('GET', '/v1/status');
  const client = s.pods.find((p) => p.namespace === 'client' && p.labels.app === 'client' && p.phase === 'Running');
  const webs = s.pods.filter((p) => p.namespace === 'shop' && p.labels.app === 'web' && p.phase === 'Running');
  if (!client || webs.length === 0) throw new AmbitError('NoSamples', 'the sample workloads are not running; run `ambit up` (without --no-samples)');
  const remote = webs.find((w) => w.node !== client.node) ?? webs[0]!;
  const remoteNode = t.nodes.find((n) => n.name === remote.node)!;
  const run = (args: string[]) => command(ctx, args);
  const show = async (args: string[], o: { quiet?: boolean } = {}) => {
    say(`  $ ambit ${args.join(' ')}`);
    const r = await run(args);
    if (!o.quiet) for (const line of (r.stdout + r.stderr).trimEnd().split('\n')) say(`    ${line}`);
    return r;
  };
  const claims: TourClaims = { plaintextBefore: false, plaintextAfter: true, hboneAfter: false, mutualTlsInMetrics: false, deniedWithPolicy: false, explainedDenial: false, allowedAgain: false };
  const changed: string[] = [];
  const enrolledAtStart = await enrolledNamespaces(ctx);

  say(`The sample client pod ${client.name} (${client.ip}, ${client.node}) calls ${remote.name} (${remote.ip}, ${remote.node}).`);
  // A request whose path is a marker, so the wire can be searched for it.
  const request = async (marker: string) => {
    const url = `http://${remote.ip}:8080/${marker}`;
    say(`  $ ambit exec -n client deploy/client -- curl -s ${url}`);
    const r = await run(['exec', '-n', 'client', 'deploy/client', '--', 'curl', '-sS', '--max-time', '5', url]);
    say(`    ${(r.stdout + r.stderr).trim().split('\n')[0] ?? ''}`);
    return r;
  };

  // 1. Before the mesh.
  say('\n1. Before the mesh: the request crosses the nodes in plaintext.');
  const before = enrolledAtStart.filter((n) => namespaces.includes(n));
  for (const ns of before) {
    if ((await run(['unenroll', ns])).code !== 0) throw new AmbitError('DemoFailed', `could not unenroll ${ns}`);
    changed.push(`unenrolled ${ns} for step 1 (enrolled again at the end)`);
  }
  if (before.length) await waitForCapture(api, false);
  const plainMarker = `demo-plain-${Date.now().toString(36)}`;
  // After the request, a SYN from the client's node to port 1 of the remote node (refused there)
  // crosses the same link: once tcpdump shows it, it has shown the request's packets too.
  const clientNode = t.nodes.find((n) => n.name === client.node)!;
  const fence: Fence = {
    send: () => inNetns(clientNode.netns, 'curl', ['-s', '--max-time', '2', `http://${remoteNode.ip}:1/`]).then(() => undefined, () => undefined),
    seen: (text) => text.includes(` > ${remoteNode.ip}.1: `),
  };
  const plain = await watchWire(t.fabricNetns, remoteNode.fabricLink, async () => void (await request(plainMarker)), fence);
  claims.plaintextBefore = plain.text.includes(`GET /${plainMarker}`);
  say(`  $ ${plain.command}`);
  say(claims.plaintextBefore ? `    the request, readable on the wire: "GET /${plainMarker} HTTP/1.1", ${plain.toPort(8080)} packets to port 8080` : '    (the request was not seen on the wire)');

  // 2. Enrolment.
  say('\n2. Enrol both namespaces: a label; the agents capture their pods without restarting them.');
  for (const ns of namespaces) await show(['enroll', ns]);
  await waitForCapture(api, true);
  if (!enrolledAtStart.includes('shop') || !enrolledAtStart.includes('client')) changed.push('enrolled shop and client (unenrolled again at the end)');
  say('    every pod of shop and client is captured (`ambit status` shows it in CAPTURE)');

  // 3. The same request through the mesh.
  say('\n3. The same request now goes through both agents: HBONE (HTTP/2 CONNECT over mutual TLS 1.3) to the other node\'s 15008.');
  const meshMarker = `demo-mesh-${Date.now().toString(36)}`;
  const mesh = await watchWire(t.fabricNetns, remoteNode.fabricLink, async () => void (await request(meshMarker)), fence);
  claims.plaintextAfter = mesh.text.includes(meshMarker);
  claims.hboneAfter = mesh.toPort(15008) > 0;
  say(`  $ ${mesh.command}`);
  say(`    ${mesh.toPort(15008)} packets to ${remoteNode.ip}:15008, ${mesh.toPort(8080)} to port 8080; the path "/${meshMarker}" ${claims.plaintextAfter ? 'WAS' : 'is not'} readable on the wire`);
  const metricsUrl = `http://${remoteNode.ip}:${defaultMetricsPort}/metrics`;
  say(`  $ ip netns exec ${remoteNode.netns} curl -s ${metricsUrl} | grep istio_tcp_connections_opened_total`);
  const series = tcpSeries(await inNetns(remoteNode.netns, 'curl', ['-sS', '--max-time', '5', metricsUrl]), { reporter: 'destination', source_workload: 'client' });
  for (const line of series) say(`    ${line}`);
  claims.mutualTlsInMetrics = series.some((l) => l.includes('connection_security_policy="mutual_tls"'));
  await show(['explain', '-n', 'client', 'deploy/client', 'web.shop:80']);

  // 4. Policy.
  say('\n4. An AuthorizationPolicy (Istio\'s own kind) that denies the client namespace; the node proxy enforces it.');
  const dir = mkdtempSync(join(tmpdir(), 'ambit-demo-'));
  try {
    const file = join(dir, 'deny-client.yaml');
    writeFileSync(file, denyPolicy);
    say(`  $ cat ${file}`);
    for (const line of denyPolicy.trimEnd().split('\n')) say(`    ${line}`);
    await show(['apply', '-f', file, '--wait']);
    const denied = await request(`demo-denied-${Date.now().toString(36)}`);
    claims.deniedWithPolicy = denied.code !== 0;
    const why = await show(['explain', '-n', 'client', 'deploy/client', `${remote.ip}:8080`]);
    claims.explainedDenial = why.code === 3 && why.stdout.includes(`shop/${policyName}`);
  } finally {
    await show(['delete', 'authorizationpolicy', policyName, '-n', 'shop'], { quiet: true });
    rmSync(dir, { recursive: true, force: true });
  }
  say('    (policy deleted)');
  claims.allowedAgain = (await request(`demo-again-${Date.now().toString(36)}`)).code === 0;

  // 5. Prometheus.
  if (t.prometheus) {
    say('\n5. Prometheus scrapes every agent; the mesh\'s connections by workload, security and outcome:');
    claims.deniedInPrometheus = await prometheusView(t, say);
    say(`    The same, live, in the dashboard: http://127.0.0.1:${defaultDashboardPort}/ (the topology, with the denied edge in red for a minute)`);
  }

  // 6. L7: the waypoint, and a canary split.
  say('\n6. L7: a waypoint for shop (its own pod and identity), and an HTTPRoute that sends 90% of web to web-v1 and 10% to web-v2.');
  const shopLabels = await namespaceLabels(ctx, 'shop');
  const dir6 = mkdtempSync(join(tmpdir(), 'ambit-demo-'));
  try {
    await show(['waypoint', 'apply', '-n', 'shop', '--name', waypointName, '--enroll-namespace']);
    changed.push(`deployed waypoint shop/${waypointName} and pointed shop at it (removed at the end)`);
    await waitForWaypoint(ctx);
    const file = join(dir6, 'canary.yaml');
    writeFileSync(file, canaryRoute);
    say(`  $ cat ${file}`);
    for (const line of canaryRoute.trimEnd().split('\n')) say(`    ${line}`);
    const applied = await show(['apply', '-f', file, '--wait']);
    const revision = Number(/Revision (\d+)/.exec(applied.stdout)?.[1] ?? 0);
    await waitForWaypointVersion(run, revision);
    const web = s.services.find((x) => x.namespace === 'shop' && x.name === 'web');
    const count = 200;
    say(`  $ ambit exec -n client deploy/client -- sh -c 'for i in $(seq ${count}); do curl -s http://${web?.clusterIP}/canary; done' | sort | uniq -c`);
    const r = await run(['exec', '-n', 'client', 'deploy/client', '--', 'sh', '-c', `for i in $(seq ${count}); do curl -s --max-time 5 http://${web?.clusterIP}/canary; done`]);
    const v1 = (r.stdout.match(/^web v1 /gm) ?? []).length;
    const v2 = (r.stdout.match(/^web v2 /gm) ?? []).length;
    say(`    ${v1} answered by web-v1, ${v2} by web-v2, ${count - v1 - v2} failed`);
    claims.canarySplit = v1 + v2 === count && v1 >= 0.75 * count && v2 > 0;
    await show(['explain', '-n', 'client', 'deploy/client', 'web.shop:80']);
  } finally {
    await run(['delete', 'httproute', 'web-canary', '-n', 'shop']);
    await run(['delete', 'service', 'web-v1', 'web-v2', '-n', 'shop']);
    await setNamespaceLabels(ctx, 'shop', shopLabels);
    await run(['waypoint', 'delete', waypointName, '-n', 'shop']);
    rmSync(dir6, { recursive: true, force: true });
  }
  say('    (route, its Services and the waypoint deleted)');

  // Back as it was.
  say('\nPutting the cluster back as it was:');
  for (const ns of namespaces) {
    const wanted = enrolledAtStart.includes(ns);
    if (wanted && before.includes(ns)) await show(['enroll', ns]);
    if (!wanted) await show(['unenroll', ns]);
  }
  say(changed.length ? `  changed and undone: ${changed.join('; ')}` : '  nothing was changed');
  return claims;
}

const denyPolicy = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: ${policyName}
  namespace: shop
spec:
  selector:
    matchLabels:
      app: web
  action: DENY
  rules:
  - from:
    - source:
        namespaces: ["client"]
`;

const waypointName = 'demo-waypoint';
// A Service per version, as a canary is usually written, and the route between them.
const canaryRoute = `apiVersion: v1
kind: Service
metadata:
  name: web-v1
  namespace: shop
spec:
  selector: { app: web, version: v1 }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata:
  name: web-v2
  namespace: shop
spec:
  selector: { app: web, version: v2 }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web-canary
  namespace: shop
spec:
  parentRefs:
  - group: ""
    kind: Service
    name: web
    port: 80
  rules:
  - backendRefs:
    - name: web-v1
      port: 80
      weight: 90
    - name: web-v2
      port: 80
      weight: 10
`;

const namespacesOf = (ctx: CliContext) => withCluster(ctx, (client) => listResources(client, 'Namespace') as Promise<Namespace[]>);

async function namespaceLabels(ctx: CliContext, name: string): Promise<Record<string, string>> {
  return { ...(await namespacesOf(ctx)).find((n) => n.metadata.name === name)?.metadata.labels };
}

/** Puts a namespace's labels back to `labels` (a merge patch: those added since are removed). */
async function setNamespaceLabels(ctx: CliContext, name: string, labels: Record<string, string>): Promise<void> {
  const current = (await namespacesOf(ctx)).find((n) => n.metadata.name === name)?.metadata.labels ?? {};
  const patch: Record<string, string | null> = { ...Object.fromEntries(Object.keys(current).map((k) => [k, null])), ...labels };
  await withCluster(ctx, (client) => labelNamespace(client, name, patch));
}

/** Until the waypoint Gateway is programmed (a waypoint pod runs), at most 30 s. */
async function waitForWaypoint(ctx: CliContext): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const items = (await withCluster(ctx, (client) => listResources(client, 'Gateway', 'shop'))) as { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[];
    if (items.find((g) => g.metadata.name === waypointName)?.status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True')) return;
    if (Date.now() > deadline) throw new AmbitError('DemoFailed', 'the waypoint did not become ready within 30 s: see `ambit get pods -n shop`');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Until the waypoint routes by configuration `revision` or newer (its 15021 says), at most 10 s. */
async function waitForWaypointVersion(run: (args: string[]) => Promise<{ code: number; stdout: string }>, revision: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await run(['exec', '-n', 'shop', `deploy/${waypointName}`, '--', 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:15021/config']);
    try {
      if ((JSON.parse(r.stdout) as { version: number }).version >= revision) return;
    } catch {
      // Not answering yet.
    }
    if (Date.now() > deadline) throw new AmbitError('DemoFailed', `the waypoint did not take revision ${revision} within 10 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function enrolledNamespaces(ctx: CliContext): Promise<string[]> {
  return (await namespacesOf(ctx)).filter((n) => enrollLabels.some((l) => n.metadata.labels?.[l] === 'ambient')).map((n) => n.metadata.name);
}

/** Until every running pod of the sample namespaces is captured (or none is), at most 30 s. */
async function waitForCapture(api: ClusterClient, captured: boolean): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await api.request<ClusterStatus>('GET', '/v1/status');
    const pods = s.pods.filter((p) => namespaces.includes(p.namespace) && p.phase === 'Running');
    if (pods.length && pods.every((p) => (p.capture === 'captured') === captured)) return;
    if (Date.now() > deadline) throw new AmbitError('DemoFailed', `pods not ${captured ? 'captured' : 'released'} after 30 s: see \`ambit status\``);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The lines of istio_tcp_connections_opened_total whose labels include `match`, cut to the labels a person reads first. */
function tcpSeries(scrape: string, match: Record<string, string>): string[] {
  const keep = ['reporter', 'source_workload', 'destination_workload', 'destination_service', 'connection_security_policy', 'response_flags'];
  const out: string[] = [];
  for (const line of scrape.split('\n')) {
    if (!line.startsWith('istio_tcp_connections_opened_total{')) continue;
    const labels = Object.fromEntries([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
    if (!Object.entries(match).every(([k, v]) => labels[k] === v)) continue;
    out.push(`istio_tcp_connections_opened_total{${keep.filter((k) => k in labels).map((k) => `${k}="${labels[k]}"`).join(',')}} ${line.slice(line.lastIndexOf(' ') + 1)}`);
  }
  return out;
}

/** Prometheus's answer once its scrapes hold the tour's denied connection (5 s scrapes; at most 20 s); whether they do. */
async function prometheusView(t: Topology, say: (line: string) => void): Promise<boolean> {
  const query = 'sum by (source_workload, destination_workload, connection_security_policy, response_flags) (istio_tcp_connections_opened_total{reporter="destination"})';
  const url = `${prometheusUrl(t)}/api/v1/query`;
  say(`  $ ip netns exec ${t.control.netns} curl -s ${url} --data-urlencode 'query=${query}'`);
  type Answer = { data?: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  let rows: string[] = [];
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const text = await inNetns(t.control.netns, 'curl', ['-sS', '--max-time', '5', url, '--data-urlencode', `query=${query}`]).catch(() => '');
    let answer: Answer = {};
    try {
      answer = JSON.parse(text) as Answer;
    } catch {
      // Not up yet.
    }
    const result = answer.data?.result ?? [];
    rows = result.map((r) => `${r.metric.source_workload} -> ${r.metric.destination_workload}  security=${r.metric.connection_security_policy}  flags=${r.metric.response_flags}  connections=${r.value[1]}`);
    if (result.some((r) => r.metric.source_workload === 'client' && r.metric.response_flags === 'DENY')) {
      for (const row of rows) say(`    ${row}`);
      return true;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  for (const row of rows.length ? rows : ['(no series yet: Prometheus scrapes every 5 s)']) say(`    ${row}`);
  return false;
}

function command(ctx: CliContext, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return collect(process.execPath, [cliEntry, ...args], { ...process.env, AMBIT_STATE_DIR: ctx.stateDir });
}

function collect(file: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
