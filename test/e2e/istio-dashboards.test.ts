// Istio's own Grafana dashboards (mesh, service, workload: their PromQL, in
// fixtures/istio-dashboard-queries.json) against the local cluster's Prometheus under load, with a
// Service behind a waypoint among the workloads: every query about Istio's TCP metrics returns data;
// every query about its HTTP metrics returns data from the waypoint, as it is where it admits the
// waypoint reporter, and with `reporter="waypoint"` put in where the stock panel asks for a sidecar
// reporter (`destination`, `source`: Istio's own ambient waypoints leave those panels empty too). The
// metrics mean what Istio means (received bytes are the request direction; both reporters agree on
// the service, the canonical labels and the version). The rest are listed with the reason.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, applyAndWait, eventually, leftovers, root, stateDir, status } from './helpers.js';

interface Fixture {
  source: string;
  dashboards: { file: string; title: string; queries: { panel: string; expr: string }[]; variables: { name: string; expr: string }[] }[];
}
type Vector = { metric: Record<string, string>; value: [number, string] }[];

const fixture = JSON.parse(readFileSync(join(root, 'test', 'e2e', 'fixtures', 'istio-dashboard-queries.json'), 'utf8')) as Fixture;
const prometheus = 'http://10.250.0.254:9090/prometheus';
const web = 'web.shop.svc.cluster.local';
const plain = 'plain.outside.svc.cluster.local';
const api = 'api.l7.svc.cluster.local';
let tmp = '';
const load: ChildProcess[] = [];

const outside = `apiVersion: v1
kind: Namespace
metadata: { name: outside }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: plain, namespace: outside }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: plain, namespace: outside }
spec:
  replicas: 1
  selector: { matchLabels: { app: plain } }
  template:
    metadata: { labels: { app: plain } }
    spec:
      serviceAccountName: plain
      containers:
        - name: plain
          command: [ambit, sample, http-server, --app, plain, --version, v1, --port, "8080"]
---
apiVersion: v1
kind: Service
metadata: { name: plain, namespace: outside }
spec:
  selector: { app: plain }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: stranger, namespace: outside }
spec:
  replicas: 1
  selector: { matchLabels: { app: stranger } }
  template:
    metadata: { labels: { app: stranger } }
    spec:
      serviceAccountName: plain
      containers:
        - name: stranger
          command: [sleep, infinity]
---
apiVersion: v1
kind: Namespace
metadata: { name: l7, labels: { istio.io/dataplane-mode: ambient } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: l7 }
spec:
  replicas: 1
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api, version: v1 } }
    spec:
      containers:
        - name: api
          command: [ambit, sample, http-server, --app, api, --version, v1, --port, "8080"]
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: l7 }
spec:
  selector: { app: api }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;

/** Runs PromQL in the control-plane namespace, where Prometheus listens: one Node process for all of them. */
async function queryAll(exprs: string[]): Promise<Vector[]> {
  const script = `const qs=JSON.parse(require('fs').readFileSync(0,'utf8'));(async()=>{const out=[];for(const q of qs){const r=await fetch(${JSON.stringify(prometheus)}+'/api/v1/query?query='+encodeURIComponent(q));const j=await r.json();out.push(j.status==='success'?j.data.result:{error:j.error});}process.stdout.write(JSON.stringify(out));})().catch(e=>{console.error(e);process.exit(1)})`;
  const child = spawn('nsenter', ['--net=/run/netns/ambit-control', '--', process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  child.stdin.end(JSON.stringify(exprs));
  await new Promise((r) => child.on('close', r));
  const results = JSON.parse(text) as (Vector | { error: string })[];
  return results.map((r, i) => {
    if (!Array.isArray(r)) throw new Error(`Prometheus refused ${exprs[i]}: ${r.error}`);
    return r;
  });
}
const query = async (expr: string) => (await queryAll([expr]))[0]!;

/**
 * What a dashboard query is about: ambit's L4 metrics, its waypoint's HTTP metrics (`asked`: the
 * query as the panel runs it, or with the waypoint reporter put in for a sidecar reporter), or
 * something ambit does not have (and why).
 */
function concern(expr: string): { ours: true; asked?: string; expr: string } | { ours: false; why: string } {
  if (/istio_request|istio_response/.test(expr) && !/istio_tcp_/.test(expr)) {
    // Sidecars report HTTP as `source` and `destination`; ambient waypoints (Istio's and ambit's) as
    // `waypoint`. The mesh dashboard's panels admit it; the service and workload dashboards' do not.
    if (/reporter=~"source\|waypoint"/.test(expr) || !/reporter/.test(expr)) return { ours: true, expr };
    const asked = expr.match(/reporter=~?"[^"]*"/)![0];
    return { ours: true, asked, expr: expr.replace(/reporter=~?"[^"]*"/g, 'reporter="waypoint"') };
  }
  if (/istio_build/.test(expr)) return { ours: true, expr };
  if (/istio_tcp_/.test(expr)) return { ours: true, expr };
  return { ours: false, why: 'not an Istio mesh metric' };
}

/** A panel that can only be empty here: plaintext HTTP never reaches a waypoint (the destination's node proxy lets only the waypoint in). */
const plaintextOnly = (expr: string) => /istio_request|istio_response/.test(expr) && /connection_security_policy!="mutual_tls"|principal!~"spiffe/.test(expr);

/** Grafana's variables, each with the values a user would pick on the sample workloads. */
function expand(expr: string, dashboard: string): string[] {
  const base = expr
    .replace(/^query_result\((.*)\)$/, '$1')
    .replace(/\$__rate_interval|\$__interval/g, '1m')
    .replace(/\$(srccluster|dstcluster|srcns|srcwl|dstns|dstwl|dstsvc)\b/g, '.*');
  const choices: Record<string, string>[] = [];
  if (dashboard.includes('service')) {
    for (const service of [web, plain, api]) for (const qrep of ['destination', 'source']) choices.push({ service, qrep });
  } else if (dashboard.includes('workload')) {
    for (const [namespace, workload] of [['shop', 'web-v1'], ['client', 'client'], ['outside', 'plain'], ['outside', 'stranger'], ['l7', 'api']] as const) for (const qrep of ['destination', 'source']) choices.push({ namespace, workload, qrep });
  } else choices.push({});
  return [...new Set(choices.map((c) => base.replace(/\$(service|qrep|namespace|workload)\b/g, (_m, name: string) => c[name] ?? '.*')))];
}

test.before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-dash-'));
});

test.after(async () => {
  for (const p of load) p.kill('SIGKILL');
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('nothing of the project is on the machine before the tests', async () => {
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
});

test('the cluster under mixed load: mutual TLS between enrolled pods, plaintext in and out of the mesh, HTTP through a waypoint', async () => {
  await ambitOk(['up']);
  await ambitOk(['enroll', 'shop']);
  await ambitOk(['enroll', 'client']);
  await applyAndWait(tmp, outside);
  await ambitOk(['waypoint', 'apply', '-n', 'l7', '--enroll-namespace']);
  await eventually('every pod running and the enrolled ones captured', async () => {
    const s = await status();
    // The waypoint's pod speaks HBONE itself and is not captured.
    const waypoint = (p: (typeof s.pods)[number]) => p.labels['gateway.networking.k8s.io/gateway-name'] !== undefined;
    return s.pods.length === 8 && s.pods.every((p) => p.phase === 'Running' && (p.namespace === 'outside' || waypoint(p) || p.capture === 'captured'));
  }, 30_000);
  const upload = join(tmp, 'upload');
  writeFileSync(upload, Buffer.alloc(64 * 1024, 'u'));
  // Bounded: 300 rounds at most, and the test kills them at its end.
  const loop = (ns: string, deploy: string, body: string) => {
    const p = spawn(join(root, 'bin', 'ambit'), ['exec', '-n', ns, `deploy/${deploy}`, '--', 'sh', '-c', `for i in $(seq 1 300); do ${body}; sleep 0.2; done`], { env: { ...process.env, AMBIT_STATE_DIR: stateDir }, stdio: 'ignore' });
    load.push(p);
  };
  loop('client', 'client', `curl -s -o /dev/null http://web.shop/; curl -s -o /dev/null --data-binary @${upload} http://web.shop/upload; curl -s -o /dev/null http://plain.outside/; curl -s -o /dev/null http://api.l7/; curl -s -o /dev/null --data-binary @${upload} http://api.l7/upload`);
  loop('outside', 'stranger', 'curl -s -o /dev/null http://web.shop/');
  // Two scrapes of the load at least, so rates exist.
  await eventually('Prometheus has rates of the load', async () => {
    const r = await query(`sum by (reporter, connection_security_policy) (rate(istio_tcp_connections_opened_total[1m]))`);
    const http = await query(`sum(rate(istio_requests_total{reporter="waypoint"}[1m]))`);
    return r.filter((s) => Number(s.value[1]) > 0).length >= 3 && Number(http[0]?.value[1] ?? 0) > 0;
  }, 60_000);
});

test('every query of Istio\'s mesh, service and workload dashboards returns data: L4 from the node proxies, HTTP from the waypoint', async () => {
  const report: string[] = [];
  const empty: string[] = [];
  let ours = 0;
  let answered = 0;
  let http = 0;
  let rewritten = 0;
  for (const d of fixture.dashboards) {
    for (const q of [...d.queries, ...d.variables.map((v) => ({ panel: `variable $${v.name}`, expr: v.expr }))]) {
      const c = concern(q.expr);
      if (!c.ours) {
        report.push(`n/a   ${d.title} / ${q.panel}: ${c.why}`);
        continue;
      }
      if (plaintextOnly(q.expr)) {
        report.push(`n/a   ${d.title} / ${q.panel}: plaintext HTTP, which never reaches a waypoint`);
        continue;
      }
      ours++;
      if (/istio_request|istio_response/.test(q.expr) && !/istio_tcp_/.test(q.expr)) http++;
      if (c.asked) rewritten++;
      const results = await queryAll(expand(c.expr, d.file));
      const how = c.asked ? ` (with reporter="waypoint" for ${c.asked})` : '';
      if (results.some((r) => r.length > 0)) {
        answered++;
        report.push(`data  ${d.title} / ${q.panel}${how}`);
      } else {
        empty.push(`${d.title} / ${q.panel}${how}: ${c.expr}`);
        report.push(`EMPTY ${d.title} / ${q.panel}${how}`);
      }
    }
  }
  writeFileSync('/tmp/ambit-e2e-istio-dashboards.txt', `${fixture.source}\n${report.join('\n')}\n`);
  process.stdout.write(
    `\n    Istio dashboards: ${answered} of ${ours} queries return data (${http} about HTTP, ${rewritten} of those with the waypoint reporter put in for a sidecar one); ${report.filter((r) => r.startsWith('n/a')).length} not applicable (list: /tmp/ambit-e2e-istio-dashboards.txt)\n`,
  );
  assert.ok(ours - http >= 28, `the fixture holds Istio's L4 queries (${ours - http})`);
  assert.ok(http >= 80, `and its HTTP queries over mutual TLS (${http}; the plaintext variants are listed)`);
  assert.equal(empty, [], 'queries without data');
});

test('received bytes are the request direction, from both reporters (an upload is received, not sent)', async () => {
  for (const reporter of ['source', 'destination']) {
    const sel = `reporter="${reporter}",source_workload="client",destination_service="${web}"`;
    const [received, sent] = await queryAll([`sum(istio_tcp_received_bytes_total{${sel}})`, `sum(istio_tcp_sent_bytes_total{${sel}})`]);
    const r = Number(received![0]?.value[1] ?? 0);
    const s = Number(sent![0]?.value[1] ?? 0);
    assert.ok(r > 4 * s, `${reporter}: received ${r} bytes should be the uploads, sent ${s} the small answers`);
  }
});

test('both reporters give a connection the same service, canonical service and revision, app and version', async () => {
  const labels = ['destination_service', 'destination_service_name', 'destination_service_namespace', 'destination_canonical_service', 'destination_canonical_revision', 'destination_app', 'destination_version', 'source_canonical_service', 'source_canonical_revision', 'source_app'];
  const r = await query(`count by (reporter, ${labels.join(', ')}) (istio_tcp_connections_opened_total{source_workload="client",destination_workload="web-v1"})`);
  const byReporter = new Map(r.map((s) => [s.metric.reporter, labels.map((l) => `${l}=${s.metric[l]}`).join(' ')]));
  assert.equal(byReporter.get('destination'), byReporter.get('source'));
  assert.match(byReporter.get('destination') ?? '', `destination_service=${web} destination_service_name=web destination_service_namespace=shop destination_canonical_service=web destination_canonical_revision=v1 destination_app=web destination_version=v1 source_canonical_service=client source_canonical_revision=latest source_app=client`);
});

test('plaintext connections into the mesh are counted by the destination with connection_security_policy "unknown"', async () => {
  const r = await query(`sum by (connection_security_policy) (istio_tcp_connections_opened_total{reporter="destination",source_workload_namespace!="client",destination_service="${web}"})`);
  assert.equal(r.map((s) => s.metric.connection_security_policy), ['unknown']);
});

test('ambit down leaves nothing behind', async () => {
  for (const p of load) p.kill('SIGKILL');
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
