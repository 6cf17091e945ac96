// The node proxy on the local cluster: HBONE (HTTP/2 CONNECT over mutual TLS) between the nodes,
// checked on the wire with tcpdump; the server seeing the client pod's address; AuthorizationPolicy
// and PeerAuthentication decisions; load balancing over a Service's endpoints; Istio's TCP metrics
// checked by promtool; refusals of abusive peers; and traffic flowing while the controller is down.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { podCgroup } from '../../cluster/kubelet/pods.js';
import { ambit, ambitOk, applyAndWait, clusterProcesses, eventually, inSync, leftovers, podOf, scrape, sh, status, sum } from './helpers.js';

let tmp = '';

/** An HTTP request from inside a pod; the body on success, `ERR <curl exit code>` otherwise. */
async function curl(ns: string, app: string, url: string): Promise<string> {
  const pod = await podOf(app);
  const r = await ambit(['exec', '-n', ns, pod.name, '--', 'curl', '-sS', '--max-time', '5', url]);
  return r.code === 0 ? r.stdout : `ERR ${r.code} ${r.stderr.trim()}`;
}

/** The same without asking the controller: into the pod's cgroup and namespace, as `ambit exec` does. */
async function curlInPod(pod: { node: string; uid: string; namespace: string; name: string }, url: string): Promise<string> {
  const cgroup = podCgroup(pod.node, pod.uid);
  return sh(`sh -c 'echo $$ > ${cgroup}/cgroup.procs && exec ip netns exec ambit-pod-${pod.namespace}.${pod.name} curl -sS --max-time 5 ${url}' 2>&1`);
}

const apply = (yaml: string) => applyAndWait(tmp, yaml);

/** Deletes, then waits until every agent holds the controller's new revision. */
async function remove(kind: string, ns: string, name: string): Promise<void> {
  await ambitOk(['delete', kind, name, '-n', ns]);
  await inSync();
}

const deployment = (name: string, ns: string, o: { sa?: string; node?: string; app?: string; server?: boolean }) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${ns} }
spec:
  selector: { matchLabels: { app: ${o.app ?? name}, name: ${name} } }
  template:
    metadata: { labels: { app: ${o.app ?? name}, name: ${name} } }
    spec:
      ${o.sa ? `serviceAccountName: ${o.sa}` : ''}
      ${o.node ? `nodeName: ${o.node}` : ''}
      containers:
        - name: c
          command: ${o.server ? `[ambit, sample, http-server, --app, ${o.app ?? name}, --version, ${name}, --port, "8080"]` : '[sleep, infinity]'}
---
`;

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-proxy-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up', '--no-samples']);
  await apply(`apiVersion: v1
kind: Namespace
metadata: { name: bank, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: callers, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: outside }
---
${['vault', 'teller'].map((sa) => `apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: ${sa}, namespace: bank }\n---\n`).join('')}${['good', 'bad'].map((sa) => `apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: ${sa}, namespace: callers }\n---\n`).join('')}${deployment('vault', 'bank', { sa: 'vault', node: 'node-2', server: true })}${deployment('teller-a', 'bank', { sa: 'teller', app: 'teller', server: true })}${deployment('teller-b', 'bank', { sa: 'teller', app: 'teller', server: true })}${deployment('good', 'callers', { sa: 'good', node: 'node-1' })}${deployment('bad', 'callers', { sa: 'bad', node: 'node-1' })}${deployment('stranger', 'outside', { node: 'node-1' })}apiVersion: v1
kind: Service
metadata: { name: vault, namespace: bank }
spec:
  selector: { app: vault }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: teller, namespace: bank }
spec:
  selector: { app: teller }
  ports: [{ port: 80, targetPort: 8080 }]
`);
  await eventually('every pod running and captured', async () => {
    const s = await status();
    return s.pods.length === 6 && s.pods.every((p) => p.phase === 'Running' && (p.namespace === 'outside' || p.capture === 'captured'));
  }, 30_000);
});

test.after(async () => {
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test('HBONE: a client on node 1 reaches a Service on node 2 over mutual TLS; the wire between the nodes carries no plaintext; the server sees the client pod', async () => {
  const good = await podOf('good');
  const marker = `marker-${Math.random().toString(36).slice(2)}`;
  const plainMarker = `plain-${Math.random().toString(36).slice(2)}`;
  const pcap = join(tmp, 'link.pcap');
  // node-2's link on the fabric, where everything between the nodes passes.
  const dump = spawn('nsenter', ['--net=/run/netns/ambit-fabric', '--', 'tcpdump', '-i', 'ambit-f2', '-U', '-s', '0', '-w', pcap, 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let heard = '';
  dump.stderr.on('data', (d: Buffer) => (heard += d.toString()));
  await eventually('tcpdump listening', async () => heard.includes('listening on'));
  const body = await curl('callers', 'good', `http://vault.bank/${marker}`);
  // The control: a client outside the mesh sends in plaintext, which the capture must see.
  const plain = await curl('outside', 'stranger', `http://vault.bank/${plainMarker}`);
  // tcpdump writes each packet as it comes (-U); wait until the control's packets are in the file.
  await eventually('the plaintext control captured', async () => (await sh(`tcpdump -r ${pcap} -nn -A 2>/dev/null`)).includes(plainMarker), 5000).catch(() => undefined);
  dump.kill('SIGINT');
  await once(dump, 'close');
  assert.match(body, `path=/${marker}`);
  assert.match(body, 'node=node-2');
  assert.match(body, `client=${good.ip}`, 'the app sees the client pod, not the agent');
  assert.match(plain, `path=/${plainMarker}`);
  const wire = await sh(`tcpdump -r ${pcap} -nn -A 2>/dev/null`);
  assert.ok(wire.includes(plainMarker), 'the capture sees plaintext when there is some');
  assert.not.ok(wire.includes(marker), 'the marker crossed the wire in plaintext');
  assert.ok(Number(await sh(`tcpdump -r ${pcap} -nn 'tcp dst port 15008' 2>/dev/null | wc -l`)) > 0, 'HBONE to node-2:15008 on the wire');
});

test('AuthorizationPolicy: ALLOW by service account lets one client in and keeps another out; DENY by namespace wins over ALLOW', async () => {
  await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: allow-good, namespace: bank }
spec:
  selector: { matchLabels: { app: vault } }
  action: ALLOW
  rules: [{ from: [{ source: { principals: [cluster.local/ns/callers/sa/good] } }] }]
`);
  assert.match(await curl('callers', 'good', 'http://vault.bank/'), 'pod=vault');
  assert.match(await curl('callers', 'bad', 'http://vault.bank/'), /^ERR/);
  assert.match(await curl('outside', 'stranger', 'http://vault.bank/'), /^ERR/, 'no identity, no ALLOW match');
  // A connection held open by `good` is closed when a DENY takes its access away.
  const good = await podOf('good');
  const held = ambit(['exec', '-n', 'callers', good.name, '--', process.execPath, '-e', `const s=require('net').connect(80,'vault.bank',()=>console.log('open'));s.on('close',()=>{console.log('closed');process.exit(0)});s.on('error',()=>{});setTimeout(()=>process.exit(3),15000)`], 20_000);
  await new Promise((r) => setTimeout(r, 1500));
  await apply(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-callers, namespace: bank }
spec:
  action: DENY
  rules: [{ from: [{ source: { namespaces: [callers] } }] }]
`);
  assert.match(await curl('callers', 'good', 'http://vault.bank/'), /^ERR/, 'DENY wins over ALLOW');
  const r = await held;
  assert.is(r.code, 0, 'the held connection was closed by the policy change');
  assert.match(r.stdout, 'open\nclosed');
  await remove('authorizationpolicy', 'bank', 'deny-callers');
  await remove('authorizationpolicy', 'bank', 'allow-good');
  assert.match(await curl('callers', 'good', 'http://vault.bank/'), 'pod=vault', 'allowed again without policies');
});

test('PeerAuthentication: STRICT refuses plaintext from a pod outside the mesh, PERMISSIVE lets it in', async () => {
  const stranger = await podOf('stranger');
  const policy = (mode: string) => `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: mtls, namespace: bank }
spec: { mtls: { mode: ${mode} } }
`;
  await apply(policy('STRICT'));
  assert.match(await curl('outside', 'stranger', 'http://vault.bank/'), /^ERR/);
  assert.match(await curl('callers', 'good', 'http://vault.bank/'), 'pod=vault', 'mTLS clients still get in');
  await apply(policy('PERMISSIVE'));
  assert.match(await curl('outside', 'stranger', 'http://vault.bank/'), `client=${stranger.ip}`);
  await remove('peerauthentication', 'bank', 'mtls');
});

test('ambit explain from a pod outside the mesh says plaintext, and from an enrolled one HBONE', async () => {
  const stranger = await podOf('stranger');
  const good = await podOf('good');
  const plain = JSON.parse(await ambitOk(['explain', '-n', 'outside', stranger.name, 'vault.bank:80', '-o', 'json'])) as { outbound: { captured: boolean; destination: { protocol: string; via?: string } } };
  assert.is(plain.outbound.captured, false);
  assert.is(plain.outbound.destination.protocol, 'TCP');
  assert.is(plain.outbound.destination.via, undefined);
  const text = await ambitOk(['explain', '-n', 'outside', stranger.name, 'vault.bank:80']);
  assert.match(text, '= plain TCP to ');
  assert.not.match(text, 'HBONE');
  const meshed = JSON.parse(await ambitOk(['explain', '-n', 'callers', good.name, 'vault.bank:80', '-o', 'json'])) as { outbound: { destination: { protocol: string } } };
  assert.is(meshed.outbound.destination.protocol, 'HBONE');
});

test("a Service's connections spread over its endpoints, and a removed endpoint gets no new ones", async () => {
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const body = await curl('callers', 'good', 'http://teller.bank/');
    seen.add(/pod=(teller-[ab])/.exec(body)?.[1] ?? body);
  }
  assert.equal([...seen].sort(), ['teller-a', 'teller-b']);
  await ambitOk(['delete', 'deployment', 'teller-b', '-n', 'bank']);
  await eventually('teller-b gone from the endpoints', async () => {
    const s = await status();
    return s.services.find((x) => x.name === 'teller')?.ports[0]?.endpoints.length === 1;
  });
  await inSync();
  for (let i = 0; i < 6; i++) assert.match(await curl('callers', 'good', 'http://teller.bank/'), 'pod=teller-a');
});

test("the agents' metrics parse as Prometheus text (promtool) and count connections and bytes as Istio means them", async () => {
  const s = await status();
  const node1 = s.nodes.find((n) => n.name === 'node-1')!;
  const node2 = s.nodes.find((n) => n.name === 'node-2')!;
  const [source1, destination1] = [await scrape('node-1', node1.ip), await scrape('node-2', node2.ip)];
  // Both reporters name the pair alike, though only node-1 holds good's labels and only node-2
  // vault's; the destination names the Service the client addressed, not vault's pod address.
  const pair = {
    source_workload: 'good',
    source_canonical_service: 'good',
    source_canonical_revision: 'latest',
    source_app: 'good',
    source_principal: 'spiffe://cluster.local/ns/callers/sa/good',
    destination_workload: 'vault',
    destination_canonical_service: 'vault',
    destination_canonical_revision: 'latest',
    destination_app: 'vault',
    destination_service: 'vault.bank.svc.cluster.local',
    connection_security_policy: 'mutual_tls',
    response_flags: '-',
  };
  const count = (t: string, metric: string, reporter: string) => sum(t, metric, { reporter, ...pair });
  for (let i = 0; i < 3; i++) assert.match(await curl('callers', 'good', 'http://vault.bank/metrics-test'), 'pod=vault');
  const [source2, destination2] = [await scrape('node-1', node1.ip), await scrape('node-2', node2.ip)];
  const file = join(tmp, 'metrics.txt');
  writeFileSync(file, destination2);
  const check = await sh(`promtool check metrics < ${file}; echo "exit=$?"`);
  assert.match(check, 'exit=0', check);
  assert.is(count(destination2, 'istio_tcp_connections_opened_total', 'destination') - count(destination1, 'istio_tcp_connections_opened_total', 'destination'), 3);
  assert.is(count(source2, 'istio_tcp_connections_opened_total', 'source') - count(source1, 'istio_tcp_connections_opened_total', 'source'), 3);
  // Istio's directions: received is the request (curl's GET), sent the response (headers and body).
  for (const [before, after, reporter] of [[destination1, destination2, 'destination'], [source1, source2, 'source']] as const) {
    assert.ok(count(after, 'istio_tcp_received_bytes_total', reporter) > count(before, 'istio_tcp_received_bytes_total', reporter), `${reporter}: request bytes`);
    assert.ok(count(after, 'istio_tcp_sent_bytes_total', reporter) > count(before, 'istio_tcp_sent_bytes_total', reporter), `${reporter}: response bytes`);
  }
  // The earlier tests' denials are connections too, opened and closed with response_flags DENY:
  // bad by the ALLOW policy, good's held connection by the DENY that came later, stranger's
  // plaintext under STRICT (security unknown, no principal).
  const denied = (match: Record<string, string>) => sum(destination2, 'istio_tcp_connections_closed_total', { reporter: 'destination', destination_workload: 'vault', response_flags: 'DENY', ...match });
  assert.ok(denied({ source_workload: 'bad', connection_security_policy: 'mutual_tls' }) >= 1, 'bad, denied');
  assert.ok(denied({ source_workload: 'good', connection_security_policy: 'mutual_tls' }) >= 1, "good's held connection, ended by a policy change");
  assert.ok(denied({ source_workload: 'stranger', source_principal: 'unknown', connection_security_policy: 'unknown' }) >= 1, 'plaintext under STRICT');
});

test("an agent's workers (two by default) share a pod's connections: both event loops' counts rise under parallel connections", async () => {
  type Load = { worker: number; open: number; opened: number };
  const load = async () => JSON.parse(await ambitOk(['query', 'node-1', 'workers', '-o', 'json'])) as Load[];
  const node1 = (await status()).nodes.find((n) => n.name === 'node-1')!;
  const opened = (t: string) => sum(t, 'istio_tcp_connections_opened_total', { reporter: 'source', source_workload: 'good', destination_workload: 'vault' });
  const scraped = opened(await scrape('node-1', node1.ip));
  const before = await load();
  assert.equal(before.map((w) => w.worker), [0, 1], 'the main thread and one worker thread');
  const pod = await podOf('good');
  // 40 connections at once from one pod: the kernel spreads them over the SO_REUSEPORT group of
  // the pod's 15001 by their ports, so each listener (one per event loop) gets some.
  const r = await ambit(['exec', '-n', 'callers', pod.name, '--', 'sh', '-c', 'for i in $(seq 40); do curl -s -o /dev/null --max-time 5 -w "%{http_code}\\n" http://vault.bank/ & done; wait']);
  assert.is(r.stdout.split('\n').filter((l) => l === '200').length, 40, r.stdout + r.stderr);
  const after = await load();
  const rise = after.map((w, i) => w.opened - before[i]!.opened);
  assert.is(rise.reduce((a, b) => a + b, 0), 40, `every connection counted once: ${JSON.stringify(rise)}`);
  assert.ok(rise.every((n) => n > 0), `each worker took some: ${JSON.stringify(rise)}`);
  // One scrape sums the workers: 40 more opened, whichever event loop carried them.
  assert.is(opened(await scrape('node-1', node1.ip)) - scraped, 40);
});

test("ambit query NODE profile and heap: each event loop's busy time under a pod's traffic, and what each heap holds, kept as files for DevTools", async () => {
  const pod = await podOf('good');
  const out = mkdtempSync(join(tmpdir(), 'ambit-profile-'));
  try {
    // Traffic from the pod over the whole window: it starts before the profile (its first answer is
    // awaited) and stops once the profile is in (a stop file; 60 s at most).
    const started = join(out, 'started');
    const stop = join(out, 'stop');
    const traffic = ambit(['exec', '-n', 'callers', pod.name, '--', 'sh', '-c', `end=$(($(date +%s)+60)); while [ ! -e ${stop} ] && [ $(date +%s) -lt $end ]; do curl -s -o /dev/null --max-time 2 http://vault.bank/ && touch ${started}; done`], 90_000);
    await eventually('the pod\'s traffic flows', async () => existsSync(started) || undefined, 30_000);
    type Summary = { thread: number; ms: number; busyShare: number; areas: { area: string; share: number }[]; functions: { name: string }[]; file: string };
    const profiles = JSON.parse(await ambitOk(['query', 'node-1', 'profile', '--seconds', '3', '--out', out, '-o', 'json'])) as Summary[];
    writeFileSync(stop, '');
    await traffic;
    assert.equal(profiles.map((p) => p.thread), [0, 1], 'one profile per event loop');
    for (const p of profiles) {
      assert.ok(p.ms >= 2500 && p.ms <= 6000, `a 3 s window: ${p.ms} ms`);
      assert.ok(Math.abs(p.areas.reduce((a, b) => a + b.share, 0) - 1) < 1e-6);
      const file = JSON.parse(readFileSync(p.file, 'utf8')) as { nodes: unknown[]; samples: number[] };
      assert.ok(file.nodes.length > 0 && file.samples.length > 0, 'the kept .cpuprofile is V8\'s format');
    }
    assert.ok(profiles.some((p) => p.busyShare > 0.005 && p.functions.length > 0), `busy under traffic: ${JSON.stringify(profiles.map((p) => p.busyShare))}`);
    type Heap = { thread: number; totalBytes: number; groups: { name: string; count: number }[] };
    const heaps = JSON.parse(await ambitOk(['query', 'node-1', 'heap', '-o', 'json'])) as Heap[];
    assert.equal(heaps.map((h) => h.thread), [0, 1]);
    for (const h of heaps) {
      assert.ok(h.totalBytes > 4e6, `a live agent's heap: ${h.totalBytes} bytes`);
      assert.ok(h.groups.some((g) => g.name === '(code)'), 'compiled code among the groups');
    }
    const bad = await ambit(['query', 'node-1', 'profile', '--seconds', '0']);
    assert.is.not(bad.code, 0);
    assert.match(bad.stderr, /--seconds 0: a whole number of seconds from 1 to 60/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('a peer without a client certificate, or speaking plaintext, is refused on 15008, counted, and the agent keeps serving', async () => {
  const s = await status();
  const node2 = s.nodes.find((n) => n.name === 'node-2')!;
  const refusedNoCert = (t: string) => sum(t, 'ambit_agent_proxy_events', { event: 'hbone_server_refused_no-certificate' });
  const refusedTls = (t: string) => sum(t, 'ambit_agent_proxy_events', { event: 'hbone_server_refused_tls-error' });
  const before = await scrape('node-2', node2.ip);
  // Asking for vault's certificate by name (SNI, as agents do) but presenting none.
  const name = 'vault.bank.sa.cluster.local';
  const noCert = await sh(`nsenter --net=/run/netns/ambit-node-node-1 curl -sS -k --http2 --max-time 5 --connect-to ${name}:15008:${node2.ip}:15008 https://${name}:15008/ 2>&1; echo "exit=$?"`);
  assert.not.match(noCert, 'exit=0');
  const plain = await sh(`nsenter --net=/run/netns/ambit-node-node-1 curl -sS --max-time 5 http://${node2.ip}:15008/ 2>&1; echo "exit=$?"`);
  assert.not.match(plain, 'exit=0');
  const after = await scrape('node-2', node2.ip);
  assert.is(refusedNoCert(after) - refusedNoCert(before), 1);
  assert.ok(refusedTls(after) > refusedTls(before));
  assert.match(await curl('callers', 'good', 'http://vault.bank/'), 'pod=vault');
});

test('with the controller stopped, enrolled pods keep connecting on the last configuration and certificates', async () => {
  const good = await podOf('good');
  const controller = clusterProcesses().controllerPids[0]!;
  process.kill(controller, 'SIGTERM');
  await eventually('the controller gone', async () => (await sh(`kill -0 ${controller} 2>/dev/null || echo gone`)).includes('gone'));
  // Long enough for the agents to notice and start reconnecting.
  await new Promise((r) => setTimeout(r, 3000));
  for (let i = 0; i < 3; i++) assert.match(await curlInPod(good, `http://vault.bank/without-controller-${i}`), `path=/without-controller-${i}`);
  await ambitOk(['up', '--no-samples']);
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
