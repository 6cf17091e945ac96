// Traffic capture on the local cluster, one suite per redirect mode (capture-iptables.test.ts,
// capture-ebpf.test.ts): connections open before enrollment finish as they began; a connection
// from an enrolled pod to a pod on the other node passes through both nodes' agents (their counters
// move, the server gets the bytes); an enrolled pod reaches pods and Services outside the mesh; a
// pod that opts out, and a pod of an unenrolled namespace, connect directly; a restarted agent
// adopts what is in place; unenrolling keeps open connections and then removes every ambit rule or
// program from the pods.

import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { podCgroup } from '../../cluster/kubelet/pods.js';
import { ambit, ambitOk, eventually, leftovers, type PodStatus, sh, stateDir, status } from './helpers.js';

let tmp = '';
type Counter = { workload: string; direction: string; opened: number; sent: number; received: number };
const counters = async (node: string) => JSON.parse(await ambitOk(['query', node, 'connections', '-o', 'json'])) as Counter[];
const opened = (cs: Counter[], workload: string, direction: string) => cs.find((c) => c.workload === workload && c.direction === direction)?.opened ?? 0;

/**
 * What of ambit's capture is in a pod, counted independently of the agent: nftables rules (nft),
 * or eBPF programs on its cgroup (bpftool) and on its interface (tc), and its pin directory.
 */
async function captureIn(mode: Mode, { node, namespace: ns, name: pod, uid }: PodStatus): Promise<number> {
  const net = `nsenter --net=/run/netns/ambit-pod-${ns}.${pod}`;
  if (mode === 'iptables') return Number(await sh(`${net} nft list ruleset 2>/dev/null | grep -c -E 'ambit|redirect' || true`));
  // The pod's cgroup as the kubelet's systemd driver names it, from its uid.
  const cgroup = podCgroup(node, uid);
  const programs = Number(await sh(`bpftool cgroup show ${cgroup} 2>/dev/null | grep -c ambit_ || true`));
  const filters = Number(await sh(`${net} tc filter show dev eth0 ingress 2>/dev/null | grep -c ambit_ || true`));
  const pins = Number(await sh(`ls -d /sys/fs/bpf/ambit/${node}/pods/${ns}_${pod.replace(/\./g, '_')} 2>/dev/null | wc -l`));
  return programs + filters + pins;
}

type Mode = 'iptables' | 'ebpf';

/**
 * Runs a Node script inside a pod until stop() (a file the pod's process sees: pods share the
 * host's mount namespace; the script gets its path as STOP), and returns what it printed as JSON.
 * The script writes its count of work done to STOP.progress; advance() waits for it to grow.
 */
function inPodUntilStopped<T extends { err?: string }>(ns: string, pod: string, script: (stopFile: string) => string) {
  const stopFile = join(tmp, `stop-${Math.random().toString(36).slice(2)}`);
  const run = ambit(['exec', '-n', ns, pod, '--', process.execPath, '-e', script(stopFile)], 90_000);
  const progress = () => {
    try {
      return Number(readFileSync(`${stopFile}.progress`, 'utf8')) || 0;
    } catch {
      return 0;
    }
  };
  return {
    /** Waits until the script has done `by` more of its work (round trips, requests) than now. */
    async advance(by: number, what: string): Promise<void> {
      const target = progress() + by;
      await eventually(what, async () => progress() >= target, 20_000);
    },
    async stop(): Promise<T> {
      writeFileSync(stopFile, '');
      const r = await run;
      try {
        return JSON.parse(r.stdout) as T;
      } catch {
        return { err: `no result: ${r.stdout}${r.stderr}` } as T;
      }
    },
  };
}

/** A TCP connection from inside a pod to an echo server, a round trip every 150 ms until stop(). */
function holdConnection(ns: string, pod: string, host: string, port: number) {
  return inPodUntilStopped<{ rounds: number; err?: string }>(
    ns,
    pod,
    (stop) => `const net=require('net'),fs=require('fs');let rounds=0,err='';const s=net.connect(${port},'${host}');
const finish=()=>{console.log(JSON.stringify({rounds,err}));process.exit(0)};
s.on('error',e=>{err=err||e.code||e.message});s.on('close',()=>{err=err||'closed';finish()});
setTimeout(()=>{err=err||'time limit';finish()},60000);
s.on('connect',()=>{const tick=()=>{if(err||fs.existsSync('${stop}'))return finish();const m='r'+rounds;s.write(m);
s.once('data',d=>{if(String(d)!==m)err='bad answer '+d;else{rounds++;fs.writeFileSync('${stop}.progress',String(rounds))}setTimeout(tick,150)})};tick()});`,
  );
}

/** HTTP requests from inside a pod, one new connection each, back to back, until stop(). */
function requestLoad(ns: string, pod: string, url: string) {
  return inPodUntilStopped<{ ok: number; failed: number; errors: Record<string, number>; err?: string }>(
    ns,
    pod,
    (stop) => `const http=require('http'),fs=require('fs');let ok=0,failed=0;const errors={};
const finish=()=>{console.log(JSON.stringify({ok,failed,errors}));process.exit(0)};setTimeout(finish,60000);
setInterval(()=>fs.writeFileSync('${stop}.progress',String(ok)),100);
const fail=(why)=>{failed++;errors[why]=(errors[why]||0)+1;};
const one=()=>{if(fs.existsSync('${stop}'))return finish();let done=false;const next=(why)=>{if(done)return;done=true;if(why)fail(why);else ok++;one()};
const req=http.get('${url}',{agent:false,timeout:5000},res=>{res.resume();res.on('end',()=>next(res.statusCode===200?'':'status '+res.statusCode));res.on('error',e=>next(e.code||e.message))});
req.on('error',e=>next(e.code||e.message));req.on('timeout',()=>req.destroy(new Error('timeout')))};one();`,
  );
}


export function captureSuite(mode: Mode): void {
  const test = suite(`capture (${mode})`);
  const rulesIn = (pod: PodStatus) => captureIn(mode, pod);

  test.before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-'));
    assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
    await ambitOk(['up', '--redirect', mode]);
    const extra = join(tmp, 'extra.yaml');
    writeFileSync(
      extra,
      `apiVersion: v1
kind: Namespace
metadata: { name: plain }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: outsider, namespace: plain }
spec:
  replicas: 2
  selector: { matchLabels: { app: outsider } }
  template:
    metadata: { labels: { app: outsider } }
    spec:
      containers: [{ name: c, command: [ambit, sample, http-server, --app, outsider, --version, v1, --port, "8080"] }]
---
apiVersion: v1
kind: Service
metadata: { name: outsider, namespace: plain }
spec:
  selector: { app: outsider }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: optout, namespace: client }
spec:
  selector: { matchLabels: { app: optout } }
  template:
    metadata: { labels: { app: optout, ambit.dev/dataplane-mode: none } }
    spec:
      containers: [{ name: c, command: [ambit, sample, http-server, --app, optout, --version, v1, --port, "8080"] }]
`,
    );
    await ambitOk(['apply', '-f', extra]);
    await eventually('every pod running', async () => (await status()).pods.every((p) => p.phase === 'Running'), 20_000);
  });

  test.after(async () => {
    await ambit(['down']);
    rmSync(tmp, { recursive: true, force: true });
  });

  test('connections open before enrollment finish as they began; new ones are captured', async () => {
    const s = await status();
    const client = s.pods.find((p) => p.labels.app === 'client')!;
    const echo = s.services.find((x) => x.name === 'echo')!;
    const held = holdConnection('client', client.name, echo.clusterIP, 9000);
    await held.advance(1, 'the connection open before enrollment');
    await ambitOk(['enroll', 'shop']);
    await ambitOk(['enroll', 'client']);
    await eventually('every pod of shop and client captured', async () => (await status()).pods.filter((p) => p.namespace === 'shop' || p.labels.app === 'client').every((p) => p.capture === 'captured'), 20_000);
    await held.advance(3, 'round trips on it after enrollment');
    const r = await held.stop();
    assert.is(r.err, '', `the connection open before enrollment failed after ${r.rounds} round trips`);
    // It was never captured: the client's agent counts no connection of it.
    const key = `client/${client.name}`;
    assert.is(opened(await counters(client.node), key, 'outbound'), 0);
    // A new one is.
    const fresh = await ambit(['exec', '-n', 'client', client.name, '--', 'curl', '-sS', '--max-time', '5', 'http://web.shop/']);
    assert.is(fresh.code, 0, fresh.stderr);
    assert.is(opened(await counters(client.node), key, 'outbound'), 1);
  });

  test('an enrolled pod reaches pods and Services outside the mesh, on its node and across nodes, and it is counted', async () => {
    const s = await status();
    const client = s.pods.find((p) => p.labels.app === 'client')!;
    const key = `client/${client.name}`;
    const outsiders = s.pods.filter((p) => p.labels.app === 'outsider');
    const optout = s.pods.find((p) => p.labels.app === 'optout')!;
    assert.equal(new Set(outsiders.map((p) => p.node)).size, 2, 'an outsider on each node');
    const targets = [...outsiders.map((p) => `http://${p.ip}:8080/`), `http://${optout.ip}:8080/`, 'http://outsider.plain/'];
    for (const url of targets) {
      const before = opened(await counters(client.node), key, 'outbound');
      const r = await ambit(['exec', '-n', 'client', client.name, '--', 'curl', '-sS', '--max-time', '5', url]);
      assert.is(r.code, 0, `${url}: curl exit ${r.code} ${r.stderr}`);
      assert.match(r.stdout, /^(outsider|optout) v1 /, url);
      // Captured and forwarded in plain TCP, so the client's agent counts it.
      assert.is(opened(await counters(client.node), key, 'outbound'), before + 1, `${url} counted`);
    }
  });

  test('a connection from an enrolled pod to a pod on the other node passes through both agents', async () => {
    const s = await status();
    const client = s.pods.find((p) => p.labels.app === 'client')!;
    const web = s.pods.find((p) => p.labels.app === 'web' && p.node !== client.node)!;
    const clientKey = `client/${client.name}`;
    const webKey = `shop/${web.name}`;
    await eventually('both pods captured', async () => (await counters(client.node)).some((c) => c.workload === clientKey) && (await counters(web.node)).some((c) => c.workload === webKey));
    const before = [opened(await counters(client.node), clientKey, 'outbound'), opened(await counters(web.node), webKey, 'inbound')];
    const r = await ambit(['exec', '-n', 'client', client.name, '--', 'curl', '-sS', '--max-time', '5', `http://${web.ip}:8080/captured`]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, `pod=${web.name}`);
    assert.match(r.stdout, 'path=/captured');
    const after = [opened(await counters(client.node), clientKey, 'outbound'), opened(await counters(web.node), webKey, 'inbound')];
    assert.equal(after, [before[0]! + 1, before[1]! + 1], 'one more connection through each agent');
    const web2 = (await counters(web.node)).find((c) => c.workload === webKey && c.direction === 'inbound')!;
    assert.ok(web2.sent > 0 && web2.received > 0, 'bytes counted both ways');
    // And `ambit status` says which pods are captured.
    const st = await status();
    assert.is(st.pods.find((p) => p.name === web.name)!.capture, 'captured');
    assert.is(st.pods.find((p) => p.labels.app === 'outsider')!.capture, undefined);
  });

  test('a new pod of an enrolled namespace does not start before its agent captures it (fail closed)', async () => {
    // Freeze node-2's agent: alive, but capturing nothing.
    const agentPid = Number(readFileSync(join(stateDir, 'agents', 'node-2', 'pid'), 'utf8'));
    process.kill(agentPid, 'SIGSTOP');
    try {
      const file = join(tmp, 'early.yaml');
      writeFileSync(
        file,
        `apiVersion: apps/v1
kind: Deployment
metadata: { name: early, namespace: shop }
spec:
  selector: { matchLabels: { app: early } }
  template:
    metadata: { labels: { app: early } }
    spec:
      nodeName: node-2
      containers:
        - name: c
          command: [sh, -c, "curl -s -m 5 http://web.shop/ > /dev/null; sleep infinity"]
`,
      );
      await ambitOk(['apply', '-f', file]);
      // Its sandbox waits in the CNI chain: ambit-cni's ADD is not answered while the agent cannot capture.
      const held = await eventually('early created', async () => (await status()).pods.find((p) => p.labels.app === 'early'));
      await new Promise((r) => setTimeout(r, 1500));
      assert.is((await status()).pods.find((p) => p.name === held.name)!.phase, 'Pending', 'still held while the agent cannot capture it');
    } finally {
      process.kill(agentPid, 'SIGCONT');
    }
    // If the plugin gave up on the frozen agent (20 s), the kubelet retries the sandbox after its backoff.
    const pod = await eventually('early running once captured', async () => (await status()).pods.find((p) => p.labels.app === 'early' && p.phase === 'Running'), 90_000);
    // Its first connection, made the moment it started, went through the agent.
    await eventually('its first connection counted', async () => opened(await counters('node-2'), `shop/${pod.name}`, 'outbound') >= 1);
  });

  test('restarting an agent with a long-lived connection open keeps one copy of every rule, and the pod connects through the new agent', async () => {
    const s = await status();
    const client = s.pods.find((p) => p.labels.app === 'client')!;
    const web = s.pods.find((p) => p.labels.app === 'web')!;
    const rulesBefore = await rulesIn(client);
    assert.ok(rulesBefore > 0, 'the client pod is captured');
    // A connection held open across the restart, from inside the client pod.
    const hold = ambit(['exec', '-n', 'client', client.name, '--', process.execPath, '-e', `const s=require('net').connect(8080,'${web.ip}');s.on('error',()=>{});setTimeout(()=>process.exit(0),6000)`], 20_000);
    await eventually('the long-lived connection open', async () => opened(await counters(client.node), `client/${client.name}`, 'outbound') >= 1);
    const pidFile = join(stateDir, 'agents', client.node, 'pid');
    const oldPid = Number(readFileSync(pidFile, 'utf8'));
    process.kill(oldPid, 'SIGKILL');
    // The runtime starts a new agent (as a DaemonSet would); it adopts the pod's rules.
    await eventually('a new agent', async () => Number(readFileSync(pidFile, 'utf8')) !== oldPid, 15_000);
    await eventually('the pod captured again', async () => (await counters(client.node)).some((c) => c.workload === `client/${client.name}`), 15_000);
    assert.is(await rulesIn(client), rulesBefore, 'no rule duplicated');
    const r = await ambit(['exec', '-n', 'client', client.name, '--', 'curl', '-sS', '--max-time', '5', `http://${web.ip}:8080/after-restart`]);
    assert.match(r.stdout, 'path=/after-restart');
    assert.is(opened(await counters(client.node), `client/${client.name}`, 'outbound'), 1, 'counted by the new agent');
    assert.is((await hold).code, 0);
  });

  test('`ambit agents --restart` replaces both agents under load: no request fails, the open connection lives on', async () => {
    const s = await status();
    const client = s.pods.find((p) => p.labels.app === 'client')!;
    const echo = s.services.find((x) => x.name === 'echo')!;
    const load = requestLoad('client', client.name, 'http://web.shop/');
    const held = holdConnection('client', client.name, echo.clusterIP, 9000);
    await Promise.all([load.advance(1, 'the load running'), held.advance(1, 'the long-lived connection open')]);
    const replaced: { node: string; oldPid: number; newPid: number }[] = [];
    for (const node of ['node-1', 'node-2']) {
      replaced.push(JSON.parse(await ambitOk(['agents', '--restart', node, '-o', 'json'])) as { node: string; oldPid: number; newPid: number });
      await Promise.all([load.advance(20, `requests after ${node}'s agent was replaced`), held.advance(2, `round trips after ${node}'s agent was replaced`)]);
    }
    const [requests, kept] = [await load.stop(), await held.stop()];
    assert.is(requests.failed, 0, `failed requests: ${JSON.stringify(requests)}`);
    assert.is(kept.err, '', `the open connection failed after ${kept.rounds} round trips`);
    // The old agents drained: once their last connection ended they exited.
    for (const r of replaced) {
      assert.is.not(r.newPid, r.oldPid);
      await eventually(`the old agent of ${r.node} exits`, async () => !existsSync(`/proc/${r.oldPid}`) || /^\S+ \S+ Z/.test(readFileSync(`/proc/${r.oldPid}/stat`, 'utf8')), 15_000);
    }
    // New connections are the new agents': the client's agent counts this one.
    const before = opened(await counters(client.node), `client/${client.name}`, 'outbound');
    const r = await ambit(['exec', '-n', 'client', client.name, '--', 'curl', '-sS', '--max-time', '5', 'http://web.shop/']);
    assert.is(r.code, 0, r.stderr);
    assert.is(opened(await counters(client.node), `client/${client.name}`, 'outbound'), before + 1);
  });

  test('a pod that opts out, and a pod of an unenrolled namespace, connect directly', async () => {
    const s = await status();
    const web = s.pods.find((p) => p.labels.app === 'web')!;
    const webKey = `shop/${web.name}`;
    for (const [ns, app] of [['client', 'optout'], ['plain', 'outsider']] as const) {
      const pod = s.pods.find((p) => p.labels.app === app)!;
      assert.is(await rulesIn(pod), 0, `${ns}/${pod.name} has no capture rules`);
      const beforeIn = opened(await counters(web.node), webKey, 'inbound');
      const r = await ambit(['exec', '-n', ns, pod.name, '--', 'curl', '-sS', '--max-time', '5', `http://${web.ip}:8080/`]);
      assert.is(r.code, 0, r.stderr);
      assert.match(r.stdout, `pod=${web.name}`);
      // No agent holds the source pod: its connection left it directly.
      assert.not.ok((await counters(pod.node)).some((c) => c.workload === `${ns}/${pod.name}`), `${ns}/${pod.name} is not captured`);
      // The destination is enrolled, so its agent still counts the inbound side.
      assert.is(opened(await counters(web.node), webKey, 'inbound'), beforeIn + 1);
    }
  });

  test('unenrolling keeps open connections, then removes every ambit rule from the pods, and traffic reaches them directly again', async () => {
    const before = await status();
    const client = before.pods.find((p) => p.labels.app === 'client')!;
    const echo = before.services.find((x) => x.name === 'echo')!;
    const held = holdConnection('client', client.name, echo.clusterIP, 9000);
    await held.advance(1, 'the connection open before unenrolling');
    await ambitOk(['unenroll', 'shop']);
    await eventually('shop released', async () => (await status()).pods.filter((p) => p.namespace === 'shop').every((p) => p.capture !== 'captured'), 20_000);
    await held.advance(3, 'round trips on it after unenrolling');
    const kept = await held.stop();
    assert.is(kept.err, '', `the connection open before unenrolling failed after ${kept.rounds} round trips`);
    const s = await status();
    for (const p of s.pods.filter((x) => x.namespace === 'shop')) {
      await eventually(`no rules in ${p.name}`, async () => (await rulesIn(p)) === 0);
    }
    const web = s.pods.find((p) => p.labels.app === 'web')!;
    const outsider = s.pods.find((p) => p.labels.app === 'outsider')!;
    const r = await ambit(['exec', '-n', 'plain', outsider.name, '--', 'curl', '-sS', '--max-time', '5', `http://${web.ip}:8080/`]);
    // Neither side is captured now: the server sees the real client address.
    assert.match(r.stdout, `client=${outsider.ip}`);
  });

  test('ambit down leaves nothing behind', async () => {
    await ambitOk(['down']);
    assert.equal(await leftovers(), []);
  });

  test.run();
}
