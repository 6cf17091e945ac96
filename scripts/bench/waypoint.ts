// The waypoint (ambit's L7 proxy) against an nginx L7 proxy pair doing the same job, side by side in
// one run on the local cluster: a client pod on node-1, a server pod on node-2 (nginx answering 1 KB),
// HTTP/1.1 keep-alive, and the paths alternated per measure: ambit through the namespace's waypoint
// (placed where ambit puts it), ambit at L4 only (the same shape, no waypoint), an nginx `http` proxy
// on node-1 → mutual TLS 1.3 (ECDSA P-256) → an nginx `http` proxy on node-2 (keep-alive upstreams,
// one worker each), and direct. Figures: requests/s at saturation (GET, and POST with a 1 KB body),
// p50/p99 at a fixed 1,000 requests/s, CPU per 1,000 requests and RSS of the proxies on the path,
// against the issue's goals (Istio's waypoint: 0.25 vCPU and 60 MB per 1,000 rps of 1 KB requests;
// at least nginx's requests/s). A fifth path goes through the same waypoint to a Service with L7
// security in force (a RequestAuthentication with an ES256 key, an ALLOW on the token's principal,
// methods and paths, a DENY on paths; every request carries a bearer token): its cost per 1,000
// requests against the waypoint path without them. Prints the tables and writes bench/waypoint.{md,json}.
//
//   node dist/scripts/bench/waypoint.js [--seconds 4] [--rate 1000] [--connections 16] [--rounds 3] [--workers 1]
//   --workers N: the waypoint's event loops and each nginx's worker processes alike (default 1)
//   (as root, no cluster up; about 1 + rounds x 1.2 min)

import { createReadStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { certificates, cpuSeconds, createBench, deploy, f1, machine as describeMachine, node1, node2, parseWrk, rateClient, root, rssMb, sleep, withChildren } from './lib.js';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, rate: { type: 'string' }, connections: { type: 'string' }, rounds: { type: 'string' }, out: { type: 'string' }, workers: { type: 'string' } } });
const secs = Math.max(1, Math.min(30, Number(values.seconds ?? 4)));
const rate = Math.max(1, Math.min(5000, Number(values.rate ?? 1000)));
const connections = Math.max(1, Math.min(256, Number(values.connections ?? 16)));
const rounds = Math.max(1, Math.min(5, Number(values.rounds ?? 3)));
const workers = Math.max(1, Math.min(8, Number(values.workers ?? 1)));
const outDir = values.out ?? join(root, 'bench');
const bench = createBench('ambit-bench-waypoint-', secs);
/** Set when `ambit down` kept failing: the state directory is what takes the cluster down by hand. */
let keepState = false;
const { stateDir, work, ambit, inPod, agentPid, startInNode, peers } = bench;

const securedPath = 'ambit waypoint + L7 security';

/** The issue's goals for the waypoint. */
const goals = { vcpuPer1kRps: 0.25, rssMbPer1kRps: 60, rpsVsNginx: 1.0 };
const body1k = 'x'.repeat(1024);

// ---- the server, the nginx pair ----

function serverConfig(): string {
  const dir = join(work, 'server');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'nginx.conf');
  // The waypoint gives each request an id; echoing it back lets the run check that the waypoint path
  // really went through the waypoint (and the L4 path did not).
  writeFileSync(
    file,
    `worker_processes 1;\nuser root;\npid ${dir}/nginx.pid;\nerror_log stderr;\nevents { worker_connections 20000; }\nhttp {\n  access_log off;\n  default_type text/plain;\n  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n  keepalive_requests 1000000;\n  server { listen 8080 reuseport; location / { add_header x-request-id $http_x_request_id; return 200 "${body1k}"; } }\n}\n`,
  );
  return file;
}

/**
 * The nginx pair: a (node-1) is the L7 proxy in the waypoint's role, b (node-2) terminates mutual TLS
 * in front of the server. Both keep their upstream connections alive (HTTP/1.1, no Connection
 * header), as the waypoint keeps its tunnels. a writes an access line per request, as the waypoint does.
 */
function nginxPairConfig(side: 'a' | 'b', server: string): string {
  const dir = join(work, `nginx-${side}`);
  mkdirSync(dir, { recursive: true });
  const top =
    `worker_processes ${workers};\nuser root;\ndaemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents { worker_connections 8192; }\n` +
    `http {\n  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;\n  keepalive_requests 1000000;\n`;
  const upstreamKeepAlive = 'proxy_http_version 1.1; proxy_set_header Connection "";';
  if (side === 'a')
    return (
      top +
      `  access_log ${dir}/access.log combined buffer=64k flush=1s;\n` +
      `  upstream peer { server ${node2}:28443; keepalive 64; keepalive_requests 1000000; }\n` +
      // nginx checks the upstream's name, not its address: the certificates carry DNS:bench-peer for it.
      `  server { listen ${node1}:28080; location / { proxy_pass https://peer; ${upstreamKeepAlive} proxy_ssl_protocols TLSv1.3; proxy_ssl_certificate ${join(work, 'a.crt')}; proxy_ssl_certificate_key ${join(work, 'a.key')}; proxy_ssl_trusted_certificate ${join(work, 'ca.pem')}; proxy_ssl_verify on; proxy_ssl_name bench-peer; proxy_ssl_session_reuse on; } }\n}\n`
    );
  return (
    top +
    `  access_log off;\n` +
    `  upstream app { server ${server}:8080; keepalive 64; keepalive_requests 1000000; }\n` +
    `  server { listen ${node2}:28443 ssl; ssl_protocols TLSv1.3; ssl_certificate ${join(work, 'b.crt')}; ssl_certificate_key ${join(work, 'b.key')}; ssl_client_certificate ${join(work, 'ca.pem')}; ssl_verify_client on; location / { proxy_pass http://app; ${upstreamKeepAlive} } }\n}\n`
  );
}

// ---- paths and measures ----

/** A proxy of a path whose CPU and memory count, by name ("waypoint", "agent node-1", "nginx a"). */
interface Proxy {
  name: string;
  pids: () => number[];
}

/** One measure's numbers; a path keeps every round's and reports the median. */
type Sample = Record<string, number>;

interface Path {
  name: string;
  ns: string;
  url: string;
  proxies: Proxy[];
  /** Sent with every request, as `Name: value`. */
  headers: string[];
  samples: Record<string, Sample[]>;
  /** The proxies' RSS after each measure (MB), per proxy. */
  rss: Record<string, number[]>;
  /** When the fixed-rate measures ran (epoch ms), to pick their lines from the waypoint's log. */
  rateWindows: [number, number][];
}

const postScript = () => {
  const file = join(work, 'post-1k.lua');
  writeFileSync(file, `wrk.method = "POST"\nwrk.body = string.rep("x", 1024)\nwrk.headers["Content-Type"] = "application/octet-stream"\n`);
  return file;
};

function cpuOf(p: Path): () => Record<string, number> {
  const before = Object.fromEntries(p.proxies.map((x) => [x.name, cpuSeconds(x.pids())]));
  return () => Object.fromEntries(p.proxies.map((x) => [x.name, cpuSeconds(x.pids()) - before[x.name]!]));
}

/** CPU-seconds per 1,000 requests, the path's proxies together and each alone (cpu:NAME). */
function cpuFigures(cpu: Record<string, number>, requests: number): Sample {
  const out: Sample = {};
  let total = 0;
  for (const [name, s] of Object.entries(cpu)) {
    total += s;
    out[`cpu:${name}`] = requests > 0 ? (s / requests) * 1000 : NaN;
  }
  out.cpuPer1k = requests > 0 && Object.keys(cpu).length ? (total / requests) * 1000 : NaN;
  return out;
}

async function saturation(p: Path, extra: string[]): Promise<Sample> {
  const cpu = cpuOf(p);
  const r = parseWrk(await inPod(p.ns, 'client', ['wrk', '-t1', `-c${connections}`, `-d${secs}s`, '--latency', ...p.headers.flatMap((h) => ['-H', h]), ...extra, p.url]));
  return { rps: r.rps, requests: r.requests, p50: r.p50, p99: r.p99, errors: r.errors, ...r.socketErrors, non2xx: r.non2xx, ...cpuFigures(cpu(), r.requests) };
}

const measures: Record<string, (p: Path) => Promise<Sample>> = {
  get: (p) => saturation(p, []),
  post: (p) => saturation(p, ['-s', postScript()]),
  async rate(p) {
    const cpu = cpuOf(p);
    const t0 = Date.now();
    const out = await inPod(p.ns, 'client', [process.execPath, rateClient, p.url, String(rate), String(secs), '16', ...p.headers]);
    p.rateWindows.push([t0, Date.now()]);
    const r = JSON.parse(out.trim().split('\n').pop()!) as { p50: number; p99: number; ok: number; errors: number };
    return { p50: r.p50, p99: r.p99, ok: r.ok, errors: r.errors, ...cpuFigures(cpu(), r.ok + r.errors) };
  },
};

// ---- the cluster ----

interface PodJson {
  metadata: { name: string; namespace: string; labels?: Record<string, string> };
  spec: { nodeName: string };
  status: { podIP?: string; phase: string; containerStatuses?: { pid?: number }[] };
}

const service = (ns: string) => `apiVersion: v1\nkind: Service\nmetadata: { name: server, namespace: ${ns} }\nspec:\n  selector: { app: server }\n  ports: [{ name: http, port: 80, targetPort: 8080 }]\n---\n`;

async function pods(ns: string): Promise<PodJson[]> {
  return (JSON.parse(await ambit(['get', 'pods', '-n', ns, '-o', 'json'])) as { items: PodJson[] }).items;
}

async function clusterIp(ns: string, name = 'server'): Promise<string> {
  return (JSON.parse(await ambit(['get', 'service', name, '-n', ns, '-o', 'json'])) as { spec: { clusterIP: string } }).spec.clusterIP;
}

/** Polls `check` every 200 ms until it returns a value, for at most `ms`. */
async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    const v = await check().catch(() => undefined);
    if (v !== undefined) return v;
    if (performance.now() > deadline) throw new Error(`bench: timed out after ${ms / 1000} s waiting for ${what}`);
    await sleep(200);
  }
}

interface Cluster {
  waypointVip: string;
  /** The same server behind the same waypoint, as a Service with L7 security in force. */
  securedVip: string;
  /** A valid bearer token for it. */
  token: string;
  l4Vip: string;
  plainServer: string;
  waypoint: { pod: string; node: string; pid: number; ip: string };
}

const issuer = 'https://bench.ambit.test';

/**
 * What the secured path has in force at the waypoint: a RequestAuthentication (inline JWKS, one
 * ES256 key) and an ALLOW that needs the token's principal, a method and a path, beside a DENY on
 * paths, all attached to the Service `server-secure`; and a token for it, valid for an hour.
 */
async function security(): Promise<{ yaml: string; token: string }> {
  const { publicKey, privateKey } = await generateKeyPair('ES256');
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'bench', alg: 'ES256', use: 'sig' }] });
  const token = await new SignJWT({ groups: ['bench'] }).setProtectedHeader({ alg: 'ES256', kid: 'bench', typ: 'JWT' }).setIssuer(issuer).setSubject('load').setAudience('bench').setIssuedAt().setExpirationTime('1h').sign(privateKey);
  const target = 'targetRefs: [{ group: "", kind: Service, name: server-secure }]';
  const yaml =
    `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: { name: bench-jwt, namespace: bench-wp }\nspec:\n  ${target}\n  jwtRules: [{ issuer: "${issuer}", audiences: [bench], jwks: '${jwks}' }]\n---\n` +
    `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: bench-allow, namespace: bench-wp }\nspec:\n  ${target}\n  action: ALLOW\n  rules:\n  - from: [{ source: { requestPrincipals: ["${issuer}/*"] } }]\n    to: [{ operation: { methods: [GET, POST], paths: ["/*"] } }]\n    when: [{ key: "request.auth.claims[groups]", values: [bench] }]\n---\n` +
    `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: bench-deny, namespace: bench-wp }\nspec:\n  ${target}\n  action: DENY\n  rules: [{ to: [{ operation: { paths: ["/admin/*", "/internal/{**}"] } }] }]\n---\n`;
  return { yaml, token };
}

async function cluster(): Promise<Cluster> {
  await ambit(['up', '--no-samples'], 180_000);
  const secured = await security();
  const conf = serverConfig();
  const server = `        - { name: nginx, command: [nginx, -c, ${conf}, -g, "daemon off;"] }`;
  const client = `        - { name: c, command: [sleep, infinity] }`;
  const file = join(work, 'bench.yaml');
  const ns = (name: string, ambient: boolean) => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name}${ambient ? ', labels: { ambit.dev/dataplane-mode: ambient }' : ''} }\n---\n`;
  writeFileSync(
    file,
    ns('bench-plain', false) +
      ns('bench-wp', true) +
      ns('bench-l4', true) +
      ['bench-plain', 'bench-wp', 'bench-l4'].map((n) => deploy('client', n, 'node-1', client) + deploy('server', n, 'node-2', server)).join('') +
      service('bench-wp') +
      service('bench-wp').replace('name: server,', 'name: server-secure,') +
      service('bench-l4') +
      secured.yaml,
  );
  await ambit(['apply', '-f', file]);
  await ambit(['waypoint', 'apply', '-n', 'bench-wp', '--enroll-namespace', '--workers', String(workers)]);
  await until('the pods to run, captured where enrolled', 60_000, async () => {
    const all = (JSON.parse(await ambit(['status', '-o', 'json'])) as { pods: { namespace: string; phase: string; labels: Record<string, string>; capture?: string }[] }).pods.filter((p) => p.namespace.startsWith('bench-'));
    const apps = all.filter((p) => p.labels.app);
    const wp = all.filter((p) => p.labels['gateway.networking.k8s.io/gateway-name'] === 'waypoint');
    return apps.length === 6 && apps.every((p) => p.phase === 'Running' && (p.namespace === 'bench-plain' || p.capture === 'captured')) && wp.length === 1 && wp[0]!.phase === 'Running' ? true : undefined;
  });
  const wpPod = (await pods('bench-wp')).find((p) => p.metadata.labels?.['gateway.networking.k8s.io/gateway-name'] === 'waypoint')!;
  const plain = (await pods('bench-plain')).find((p) => p.metadata.labels?.app === 'server')!;
  const c: Cluster = {
    waypointVip: await clusterIp('bench-wp'),
    securedVip: await clusterIp('bench-wp', 'server-secure'),
    token: secured.token,
    l4Vip: await clusterIp('bench-l4'),
    plainServer: plain.status.podIP!,
    waypoint: { pod: wpPod.metadata.name, node: wpPod.spec.nodeName, pid: wpPod.status.containerStatuses![0]!.pid!, ip: wpPod.status.podIP! },
  };
  // Each path answers, and the waypoint path is the only one the waypoint touched (it adds x-request-id).
  const head = (ns: string, url: string) => inPod(ns, 'client', ['curl', '-sS', '-m', '2', '-o', '/dev/null', '-D', '-', url], 10_000);
  await until('the server to answer through the waypoint', 60_000, async () => (/^HTTP\/1.1 200/.test(await head('bench-wp', `http://${c.waypointVip}/`)) ? true : undefined));
  if (!/x-request-id: \S/i.test(await head('bench-wp', `http://${c.waypointVip}/`))) throw new Error('bench: the waypoint path answered without the waypoint (no x-request-id added)');
  if (/x-request-id: \S/i.test(await head('bench-l4', `http://${c.l4Vip}/`))) throw new Error('bench: the L4 path went through a waypoint');
  // The secured path refuses what its policies refuse, so the figures are of policies really in force.
  const code = (args: string[]) => inPod('bench-wp', 'client', ['curl', '-sS', '-m', '2', '-o', '/dev/null', '-w', '%{http_code}', ...args], 10_000);
  const auth = `authorization: Bearer ${c.token}`;
  await until('the secured path to take the token', 60_000, async () => ((await code(['-H', auth, `http://${c.securedVip}/`])) === '200' ? true : undefined));
  const refusals = [await code([`http://${c.securedVip}/`]), await code(['-H', auth, `http://${c.securedVip}/admin/x`]), await code(['-H', 'authorization: Bearer x.y.z', `http://${c.securedVip}/`])];
  if (refusals.join() !== '403,403,401') throw new Error(`bench: the secured path should answer 403 (no token), 403 (denied path), 401 (bad token), not ${refusals.join()}`);
  return c;
}

// ---- what the waypoint said ----

interface LogSummary {
  file: string;
  lines: number;
  /** Access lines: the waypoint's by response code and flags, an agent's by event (closed, denied, failed) and flags. */
  accessByOutcome: Record<string, number>;
  /** The waypoint's request durations (its own view: from the request's arrival to the answer's end), by bucket. */
  durationsMs?: Record<string, number>;
  /** The same, for the requests of the fixed-rate measures alone. */
  durationsAtRateMs?: Record<string, number>;
  /** Warnings and errors (pino level 40 and above), lines that are not JSON (Node's own warnings), and failed or flagged requests, grouped by kind: how many, and the first line of each kind. */
  notable: { count: number; first: string }[];
  notableCount: number;
}

const durationBuckets = [1, 2, 5, 10, 20, 40, 80, 160, 320];

/** Reads a pino log line by line (the waypoint's has one access line per request: streamed, never whole). */
async function summariseLog(file: string, keep = 12, rateWindows: [number, number][] = []): Promise<LogSummary> {
  const s: LogSummary = { file, lines: 0, accessByOutcome: {}, notable: [], notableCount: 0 };
  const kinds = new Map<string, { count: number; first: string }>();
  const note = (line: string, kind: string) => {
    s.notableCount++;
    const k = kinds.get(kind);
    if (k) k.count++;
    else if (kinds.size < keep) kinds.set(kind, { count: 1, first: line.slice(0, 600) });
  };
  const rl = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) {
    s.lines++;
    let j: { level?: number; time?: string; start_time?: string; log?: string; msg?: string; reason?: string; event?: string; response_code?: number; response_flags?: string; duration?: number };
    try {
      j = JSON.parse(line) as typeof j;
    } catch {
      note(line, line.replace(/\(node:\d+\)/, '').slice(0, 120));
      continue;
    }
    if (j.log === 'access' && j.response_code !== undefined) {
      const key = `${j.response_code} ${j.response_flags ?? '-'}`;
      s.accessByOutcome[key] = (s.accessByOutcome[key] ?? 0) + 1;
      if (j.duration !== undefined) {
        const b = durationBuckets.find((x) => j.duration! < x);
        const bucket = b === undefined ? `>= ${durationBuckets.at(-1)}` : `< ${b}`;
        const empty = () => Object.fromEntries([...durationBuckets.map((x) => `< ${x}`), `>= ${durationBuckets.at(-1)}`].map((k) => [k, 0]));
        (s.durationsMs ??= empty())[bucket]!++;
        // An access line carries its request's start (Envoy's start_time), not pino's `time`.
        const t = Date.parse(j.start_time ?? j.time ?? '');
        if (rateWindows.some(([a, z]) => t >= a && t <= z)) (s.durationsAtRateMs ??= empty())[bucket]!++;
      }
      if (j.response_code !== 200 || (j.response_flags ?? '-') !== '-') note(line, `access ${key}`);
    } else if (j.log === 'access') {
      const key = `${j.event ?? '?'} ${j.response_flags ?? '-'}`;
      s.accessByOutcome[key] = (s.accessByOutcome[key] ?? 0) + 1;
      if (j.event !== 'closed') note(line, `access ${key} ${j.reason ?? ''}`.slice(0, 120));
    } else if ((j.level ?? 0) >= 40) note(line, `${j.level} ${j.msg ?? ''} ${j.reason ?? ''}`.slice(0, 120));
  }
  s.notable = [...kinds.values()];
  return s;
}

// ---- report ----

const median = (xs: number[]) => {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return v.length ? v[Math.floor((v.length - 1) / 2)]! : NaN;
};
const fig = (p: Path, measure: string, key: string) => median((p.samples[measure] ?? []).map((s) => s[key] ?? NaN));
const sum = (p: Path, measure: string, key: string) => (p.samples[measure] ?? []).reduce((a, s) => a + (s[key] ?? 0), 0);
/** Each measure's figures, the median over rounds. */
const medians = (p: Path) => Object.fromEntries(Object.entries(p.samples).map(([m, xs]) => [m, Object.fromEntries(Object.keys(xs[0] ?? {}).filter((k) => k !== 'round').map((k) => [k, fig(p, m, k)]))]));
const peakRss = (p: Path, proxy?: string) => (proxy ? Math.max(0, ...(p.rss[proxy] ?? [])) : p.proxies.reduce((a, x) => a + Math.max(0, ...(p.rss[x.name] ?? [])), 0));

function report(paths: Path[], c: Cluster, logs: Record<string, LogSummary>): string {
  const rows: string[] = [];
  const line = (cells: string[]) => rows.push(`| ${cells.join(' | ')} |`);
  /** A column: its title, the figure, its decimals, and the measure and key it is a median of (for the per-round ratios). */
  type Col = [string, (p: Path) => number, number, [string, string]?];
  const col = (title: string, measure: string, key: string, d: number): Col => [title, (p) => fig(p, measure, key), d, [measure, key]];
  const cols: Col[] = [
    col('GET req/s', 'get', 'rps', 0),
    col('GET p50 ms', 'get', 'p50', 2),
    col('GET p99 ms', 'get', 'p99', 2),
    col('POST 1 KB req/s', 'post', 'rps', 0),
    col(`p50 ms at ${rate}/s`, 'rate', 'p50', 2),
    col(`p99 ms at ${rate}/s`, 'rate', 'p99', 2),
    col('CPU s / 1k req (GET, saturated)', 'get', 'cpuPer1k', 3),
    col(`CPU s / 1k req (at ${rate}/s)`, 'rate', 'cpuPer1k', 3),
    ['proxies RSS MB (peak)', (p) => peakRss(p), 0],
    ['errors', (p) => sum(p, 'get', 'errors') + sum(p, 'post', 'errors') + sum(p, 'rate', 'errors'), 0],
  ];
  line(['path', ...cols.map((x) => x[0])]);
  line(['---', ...cols.map(() => '---')]);
  for (const p of paths) line([p.name, ...cols.map((x) => f1(x[1](p), x[2]))]);

  rows.push('', 'Each proxy alone (CPU-seconds per 1,000 requests, which is also vCPU per 1,000 requests/s; RSS at its peak):', '');
  line(['path', 'proxy', 'CPU / 1k (GET, saturated)', 'CPU / 1k (POST, saturated)', `CPU / 1k (at ${rate}/s)`, 'RSS MB']);
  line(['---', '---', '---', '---', '---', '---']);
  for (const p of paths) for (const x of p.proxies) line([p.name, x.name, f1(fig(p, 'get', `cpu:${x.name}`), 3), f1(fig(p, 'post', `cpu:${x.name}`), 3), f1(fig(p, 'rate', `cpu:${x.name}`), 3), f1(peakRss(p, x.name), 0)]);

  const wp = paths.find((p) => p.name === 'ambit waypoint')!;
  const nginx = paths.find((p) => p.name === 'nginx pair')!;
  const ratio = (a: number, b: number) => (Number.isNaN(a) || Number.isNaN(b) || !b ? '-' : `${(a / b).toFixed(2)}x`);
  rows.push('', 'Ratios, ambit through the waypoint / the nginx L7 pair (requests/s: higher is better; the rest: lower):', '');
  // The machine's load drifts between rounds; within a round the paths ran back to back, so a round's own ratio is the steadier figure.
  const perRound = (mk: [string, string] | undefined) => {
    if (!mk || rounds < 2) return '-';
    const [m, k] = mk;
    const at = (p: Path, round: number) => p.samples[m]?.find((x) => x.round === round)?.[k] ?? NaN;
    return Array.from({ length: rounds }, (_, i) => ratio(at(wp, i + 1), at(nginx, i + 1))).join(', ');
  };
  line(['figure', 'ambit waypoint', 'nginx pair', 'ratio', 'each round\'s ratio']);
  line(['---', '---', '---', '---', '---']);
  for (const x of cols.slice(0, -1)) line([x[0], f1(x[1](wp), x[2]), f1(x[1](nginx), x[2]), ratio(x[1](wp), x[1](nginx)), perRound(x[3])]);

  const wpCpu = fig(wp, 'rate', 'cpu:waypoint');
  const wpRss = peakRss(wp, 'waypoint');
  const pathCpu = fig(wp, 'rate', 'cpuPer1k');
  const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
  rows.push('', `Goals (the waypoint landed on ${c.waypoint.node}; Istio's published waypoint figure is 0.25 vCPU and 60 MB per 1,000 requests/s of 1 KB):`, '');
  line(['goal', 'measured', 'verdict']);
  line(['---', '---', '---']);
  line([`waypoint CPU <= ${goals.vcpuPer1kRps} vCPU per 1k rps (at ${rate}/s)`, `${f1(wpCpu, 3)} (whole path with both agents: ${f1(pathCpu, 3)})`, verdict(wpCpu <= goals.vcpuPer1kRps)]);
  line([`waypoint RSS <= ${goals.rssMbPer1kRps} MB per 1k rps`, `${f1(wpRss, 0)} MB at peak`, verdict(wpRss <= goals.rssMbPer1kRps)]);
  for (const m of ['get', 'post']) {
    const r = fig(wp, m, 'rps') / fig(nginx, m, 'rps');
    line([`${m.toUpperCase()} req/s >= ${goals.rpsVsNginx.toFixed(1)}x nginx`, `${f1(r, 2)}x`, verdict(r >= goals.rpsVsNginx)]);
  }

  const secured = paths.find((p) => p.name === securedPath);
  if (secured) {
    rows.push('', 'The cost of L7 security: the same waypoint, to the same server, with a JWT rule (ES256) and an ALLOW and a DENY policy in force and a token on every request, against the waypoint path without them (same run, alternated):', '');
    line(['figure', 'with L7 security', 'without', 'ratio', 'each round\'s ratio']);
    line(['---', '---', '---', '---', '---']);
    const perRoundVs = (mk: [string, string] | undefined) => {
      if (!mk || rounds < 2) return '-';
      const [m, k] = mk;
      const at = (p: Path, round: number) => p.samples[m]?.find((x) => x.round === round)?.[k] ?? NaN;
      return Array.from({ length: rounds }, (_, i) => ratio(at(secured, i + 1), at(wp, i + 1))).join(', ');
    };
    for (const x of cols.slice(0, -2)) line([x[0], f1(x[1](secured), x[2]), f1(x[1](wp), x[2]), ratio(x[1](secured), x[1](wp)), perRoundVs(x[3])]);
    for (const m of ['get', 'rate']) {
      const a = fig(secured, m, 'cpu:waypoint');
      const b = fig(wp, m, 'cpu:waypoint');
      line([`waypoint CPU s / 1k req (${m === 'get' ? 'GET, saturated' : `at ${rate}/s`})`, f1(a, 3), f1(b, 3), ratio(a, b), perRoundVs([m, 'cpu:waypoint'])]);
    }
  }

  rows.push('', 'Errors per path and measure (wrk: connect/read/write/timeout socket errors and non-2xx; rate client: failed requests):', '');
  line(['path', 'measure', 'connect', 'read', 'write', 'timeout', 'non-2xx', 'total']);
  line(['---', '---', '---', '---', '---', '---', '---', '---']);
  for (const p of paths) for (const m of Object.keys(measures)) line([p.name, m, ...['connect', 'read', 'write', 'timeout', 'non2xx'].map((k) => (m === 'rate' ? '-' : String(sum(p, m, k)))), String(sum(p, m, 'errors'))]);

  for (const [who, s] of Object.entries(logs)) {
    rows.push('', `${who} log (${s.lines} lines): access lines by outcome: ${Object.entries(s.accessByOutcome).map(([k, n]) => `${k}: ${n}`).join(', ') || 'none'}; warnings, errors, non-JSON lines and failures: ${s.notableCount}`);
    if (s.durationsMs) rows.push('', `Request durations as the waypoint logged them (ms; its own view, from the request's arrival to the answer's end), all measures: ${Object.entries(s.durationsMs).map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    if (s.durationsAtRateMs) rows.push('', `The same at ${rate}/s only: ${Object.entries(s.durationsAtRateMs).map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    if (s.notable.length) rows.push('', '```', ...s.notable.map((k) => `${k.count} x ${k.first}`), '```');
  }
  return rows.join('\n') + '\n';
}

// ---- the run ----

async function main(): Promise<void> {
  const started = performance.now();
  mkdirSync(outDir, { recursive: true });
  await certificates(bench);
  const paths: Path[] = [];
  const logs: Record<string, LogSummary> = {};
  /** Requests each of the waypoint's event loops handled over the whole run, by thread. */
  const threadRequests: Record<string, number> = {};
  /** When each measure ran, to place what the logs say. */
  const timeline: { round: number; measure: string; path: string; start: string; end: string }[] = [];
  let placed: Cluster | undefined;
  try {
    const c = (placed = await cluster());
    process.stderr.write(`bench: the waypoint ${c.waypoint.pod} runs on ${c.waypoint.node}\n`);
    const nA = join(work, 'nginx-a.conf');
    const nB = join(work, 'nginx-b.conf');
    writeFileSync(nA, nginxPairConfig('a', c.plainServer));
    writeFileSync(nB, nginxPairConfig('b', c.plainServer));
    // The master forks one worker, which does the work: both count (the master is idle).
    const nginxA = startInNode('node-1', ['nginx', '-c', nA, '-e', join(work, 'nginx-a', 'error.log')]);
    const nginxB = startInNode('node-2', ['nginx', '-c', nB, '-e', join(work, 'nginx-b', 'error.log')]);
    const wpPid = c.waypoint.pid;
    const agents: Proxy[] = [
      { name: 'agent node-1', pids: () => [agentPid('node-1')] },
      { name: 'agent node-2', pids: () => [agentPid('node-2')] },
    ];
    const path = (name: string, ns: string, url: string, proxies: Proxy[], headers: string[] = []): Path => ({ name, ns, url, proxies, headers, samples: {}, rss: {}, rateWindows: [] });
    const viaWaypoint: Proxy[] = [{ name: 'waypoint', pids: () => withChildren([wpPid]) }, ...agents];
    paths.push(
      path('ambit waypoint', 'bench-wp', `http://${c.waypointVip}/`, viaWaypoint),
      path(securedPath, 'bench-wp', `http://${c.securedVip}/`, viaWaypoint, [`authorization: Bearer ${c.token}`]),
      path('ambit L4', 'bench-l4', `http://${c.l4Vip}/`, agents),
      path('nginx pair', 'bench-plain', `http://${node1}:28080/`, [
        { name: 'nginx a (node-1)', pids: () => withChildren([nginxA]) },
        { name: 'nginx b (node-2)', pids: () => withChildren([nginxB]) },
      ]),
      path('direct', 'bench-plain', `http://${c.plainServer}:8080/`, []),
    );
    await sleep(1000); // the nginx pair listening
    // A short warm-up per path: the waypoint and the agents are JIT-compiled; nginx is not, and loses nothing.
    for (const p of paths) {
      process.stderr.write(`bench: warm-up over ${p.name}\n`);
      await inPod(p.ns, 'client', ['wrk', '-t1', `-c${connections}`, '-d2s', ...p.headers.flatMap((h) => ['-H', h]), p.url]).catch((err: Error) => process.stderr.write(`bench: warm-up over ${p.name} failed: ${err.message}\n`));
    }
    // Alternate: each measure over every path in turn, so drift hits all of them alike.
    for (let round = 1; round <= rounds; round++) {
      for (const [name, measure] of Object.entries(measures)) {
        for (const p of paths) {
          process.stderr.write(`bench: round ${round}/${rounds}: ${name} over ${p.name}\n`);
          try {
            const t0 = Date.now();
            (p.samples[name] ??= []).push({ round, ...(await measure(p)) });
            timeline.push({ round, measure: name, path: p.name, start: new Date(t0).toISOString(), end: new Date().toISOString() });
          } catch (err) {
            process.stderr.write(`bench: ${name} over ${p.name} failed: ${(err as Error).message}\n`);
          }
          for (const x of p.proxies) (p.rss[x.name] ??= []).push(rssMb(x.pids()));
        }
      }
    }
    const summarise = async (who: string, file: string, keep?: number, windows?: [number, number][]) => {
      logs[who] = await summariseLog(file, keep, windows).catch((err: Error) => ({ file, lines: 0, accessByOutcome: {}, notable: [{ count: 1, first: `could not read: ${err.message}` }], notableCount: 1 }));
    };
    await summarise(`waypoint ${c.waypoint.pod} (\`ambit logs -n bench-wp ${c.waypoint.pod}\`)`, join(stateDir, 'logs', `bench-wp.${c.waypoint.pod}`, 'waypoint.log'), 12, paths[0]!.rateWindows);
    for (const n of ['node-1', 'node-2']) await summarise(`agent ${n}`, join(stateDir, 'agents', n, 'agent.log'), 6);
    // How the waypoint's event loops shared the run's requests (the kernel spreads HBONE sessions, not requests).
    const scraped = await inPod('bench-wp', 'waypoint', ['curl', '-s', 'http://127.0.0.1:15020/metrics']).catch(() => '');
    for (const m of String(scraped).matchAll(/^ambit_waypoint_thread_requests_total\{thread="(\d+)"\} (\d+)/gm)) threadRequests[m[1]!] = Number(m[2]);
  } finally {
    for (const child of peers) child.kill('SIGKILL');
    // Never leave a cluster up: a few tries (a transient failure of the CLI itself has been seen), then
    // keep the state directory and say how to finish by hand.
    for (let i = 1; ; i++) {
      try {
        await ambit(['down'], 180_000);
        break;
      } catch (err) {
        process.stderr.write(`bench: ambit down (try ${i}): ${(err as Error).message}\n`);
        if (i === 3) {
          keepState = true;
          process.stderr.write(`bench: the cluster may still be up: AMBIT_STATE_DIR=${stateDir} ${join(root, 'bin', 'ambit')} down\n`);
          break;
        }
        await sleep(3000);
      }
    }
  }
  const c = placed!;
  const table = report(paths, c, logs);
  const machine = await describeMachine(bench);
  const header =
    `Command: \`node dist/scripts/bench/waypoint.js --seconds ${secs} --rate ${rate} --connections ${connections} --rounds ${rounds} --workers ${workers}\` (${new Date().toISOString().slice(0, 10)}, ${((performance.now() - started) / 1000).toFixed(0)} s)\n` +
    `Machine: ${machine}\n` +
    `Shape: client pod on node-1, server pod (nginx, 1 KB answers) on node-2, HTTP/1.1 keep-alive; wrk -t1 -c${connections} for ${secs} s per saturation measure, ${rate} requests/s for ${secs} s on 16 connections for the fixed rate; ` +
    `the waypoint pod ${c.waypoint.pod} on ${c.waypoint.node}; the nginx pair: node-1 → mutual TLS 1.3 (ECDSA P-256) → node-2, ${workers === 1 ? 'one worker each' : `${workers} workers each (and the waypoint ${workers} event loops)`}, keep-alive upstreams, an access line per request on node-1's as the waypoint writes one.` +
    ` Requests per waypoint event loop over the run: ${Object.entries(threadRequests).map(([t, n]) => `thread ${t} ${n}`).join(', ') || 'not read'}.` +
    (rounds > 1 ? ` Medians of ${rounds} rounds.` : ' One round: differences under about 10% are noise on this machine.') +
    '\n\n';
  process.stdout.write(`\n${header}${table}`);
  writeFileSync(join(outDir, 'waypoint.md'), header + table);
  writeFileSync(
    join(outDir, 'waypoint.json'),
    JSON.stringify(
      {
        date: new Date().toISOString().slice(0, 10),
        workers,
        secs,
        rate,
        connections,
        rounds,
        machine,
        waypoint: { pod: c.waypoint.pod, node: c.waypoint.node, threadRequests },
        goals,
        paths: paths.map((p) => ({ name: p.name, proxies: p.proxies.map((x) => x.name), medians: medians(p), peakRssMb: Object.fromEntries(p.proxies.map((x) => [x.name, peakRss(p, x.name)])), samples: p.samples, rssMb: p.rss })),
        logs,
        timeline,
      },
      null,
      2,
    ),
  );
}

main()
  .catch((err) => {
    process.stderr.write(`${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    if (!keepState) rmSync(stateDir, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });
