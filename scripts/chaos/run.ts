// The fault suite (`npm run chaos`): on a real local cluster, a constant load of HTTP requests
// from an enrolled client pod to the enrolled web Service (pods on both nodes, so across nodes)
// and one long-lived TCP connection to the echo Service, while faults are injected one after the
// other: the controller killed for a while, both agents upgraded (`ambit agents --restart`), an
// agent killed (-9), a node restarted (its agent and pod processes killed together), the CA root
// rotated, a DENY applied with `apply --wait`. Meanwhile tcpdump on every node's pod bridge counts
// packets that enrolled pods send uncaptured (any IPv4 packet from their address: captured traffic
// leaves the node as HBONE from the node's own address). Prints a table per capture mode and writes
// it into RELIABILITY.md between the chaos markers. Bounded in time: about 2.5 minutes per mode.
//
//   node dist/scripts/chaos/run.js [--modes iptables,ebpf] [--outage 60] [--out RELIABILITY.md]   (as root, no cluster up)

import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ClusterStatus } from '../../cluster/status.js';
import { cgroup2Mount } from '../../shared/host/cgroup.js';

const { values } = parseArgs({ options: { modes: { type: 'string' }, outage: { type: 'string' }, out: { type: 'string' } } });
const modes = (values.modes ?? 'iptables,ebpf').split(',') as ('iptables' | 'ebpf')[];
const outageSeconds = Math.min(300, Number(values.outage ?? 60));
const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const report = values.out ?? join(root, 'RELIABILITY.md');
const stateDir = '/tmp/ambit-chaos-state';
const work = mkdtempSync(join(tmpdir(), 'ambit-chaos-'));
const env = { ...process.env, AMBIT_STATE_DIR: stateDir };

function run(file: string, args: string[], timeoutMs = 120_000): Promise<string> {
  return new Promise((done, fail) => execFile(file, args, { env, maxBuffer: 64 * 1024 * 1024, timeout: timeoutMs }, (err, stdout, stderr) => (err ? fail(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : done(stdout))));
}
const ambit = (args: string[], timeoutMs?: number) => run(join(root, 'bin', 'ambit'), args, timeoutMs);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const status = async () => JSON.parse(await ambit(['status', '-o', 'json'])) as ClusterStatus;

async function until(what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    try {
      if (await fn()) return Date.now() - started;
    } catch {
      // Not yet (the controller may be away).
    }
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * What runs in the client pod: two request loops (a new connection per request) to web.shop, and a
 * connection to echo.shop with a round trip every 200 ms, reopened if it drops. Every failure and
 * drop is a JSON line with its time; successes are counted in a line every 100 ms. Stops when the
 * stop file appears (pods share the host's mount namespace), or after 15 minutes.
 */
const loadScript = (events: string, stop: string) => `
const http=require('http'),net=require('net'),fs=require('fs');
const log=(o)=>fs.appendFileSync(${JSON.stringify(events)},JSON.stringify({t:Date.now(),...o})+'\\n');
let ok=0,rounds=0,stopped=false;
const tick=setInterval(()=>{log({ok,rounds});if(fs.existsSync(${JSON.stringify(stop)})){stopped=true;clearInterval(tick);setTimeout(()=>process.exit(0),300)}},100);
setTimeout(()=>process.exit(0),15*60*1000);
const loop=()=>{if(stopped)return;let done=false;const started=Date.now();const next=(why)=>{if(done)return;done=true;if(why)log({fail:why,started});else ok++;setImmediate(loop)};
const req=http.get('http://web.shop/',{agent:false,timeout:5000},res=>{res.resume();res.on('end',()=>next(res.statusCode===200?'':'HTTP '+res.statusCode));res.on('error',e=>next(e.code||e.message))});
req.on('error',e=>next(e.code||e.message));req.on('timeout',()=>req.destroy(Object.assign(new Error('timeout'),{code:'ETIMEDOUT'})))};
loop();loop();
const hold=()=>{const s=net.connect(9000,'echo.shop');let open=false,timer;const m=()=>'r'+rounds;
s.on('connect',()=>{open=true;const go=()=>{if(stopped)return s.end();s.write(m());};s.on('data',d=>{if(String(d)===m()){rounds++;timer=setTimeout(go,200)}});go()});
s.on('error',e=>{if(!stopped)log({drop:e.code||e.message,wasOpen:open})});
s.on('close',()=>{clearTimeout(timer);if(!stopped){log({drop:'closed',wasOpen:open});setTimeout(hold,100)}})};
hold();
`;

interface Event {
  t: number;
  /** When the failed request started. */
  started?: number;
  ok?: number;
  rounds?: number;
  fail?: string;
  drop?: string;
}

interface Phase {
  name: string;
  start: number;
  end: number;
  note: string;
  /** Requests are expected to fail in this phase (the DENY): they are reported, not counted as lost. */
  expectFailures?: boolean;
  /** Not a fault: the check that uncaptured packets are seen when there are some. */
  control?: boolean;
}

interface PhaseResult extends Phase {
  ok: number;
  failed: number;
  failures: Record<string, number>;
  failingMs: number;
  drops: number;
  uncaptured: number;
}

/** tcpdump on a node's pod bridge: every IPv4 packet sent from an enrolled pod's address, with its time. */
function capture(node: string, ips: string[]): { stop(): Promise<number[]> } {
  const filter = `ip and (${ips.map((ip) => `src host ${ip}`).join(' or ')})`;
  const child = spawn('nsenter', [`--net=/run/netns/ambit-node-${node}`, '--', 'tcpdump', '-i', 'br0', '-nn', '-tt', '-l', filter], { stdio: ['ignore', 'pipe', 'ignore'] });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  const closed = new Promise((r) => child.once('close', r));
  return {
    async stop() {
      child.kill('SIGINT');
      await closed;
      return text.split('\n').filter(Boolean).map((l) => Number(l.split(' ')[0]) * 1000);
    },
  };
}

/** What the node's agent counted as failed or refused since it started, as `reason=N` (its metrics). */
async function agentFailures(node: string): Promise<string> {
  const text = await run('nsenter', [`--net=/run/netns/ambit-node-${node}`, '--', 'curl', '-s', '--max-time', '2', 'http://127.0.0.1:15020/metrics']).catch(() => '');
  const counted = text
    .split('\n')
    .filter((l) => /^ambit_(connection_failures|connections_denied)_total\{/.test(l) && !/ 0$/.test(l))
    .map((l) => `${/reason="([^"]+)"/.exec(l)?.[1] ?? '?'}${/direction="([^"]+)"/.exec(l) ? ` (${/direction="([^"]+)"/.exec(l)![1]})` : ''} ${l.split(' ').at(-1)}`);
  return counted.length ? counted.join(', ') : 'none';
}

async function runMode(mode: 'iptables' | 'ebpf'): Promise<PhaseResult[]> {
  console.log(`\n== ${mode}: bringing up the cluster`);
  await ambit(['up', '--redirect', mode]);
  await ambit(['enroll', 'shop']);
  await ambit(['enroll', 'client']);
  await until('every pod captured', async () => (await status()).pods.every((p) => p.phase === 'Running' && p.capture === 'captured'));
  const s = await status();
  const client = s.pods.find((p) => p.labels.app === 'client')!;
  const enrolled = s.pods.map((p) => p.ip);
  const events = join(work, `${mode}-events.jsonl`);
  const stop = join(work, `${mode}-stop`);
  writeFileSync(join(work, `${mode}-load.js`), loadScript(events, stop));
  const tcpdumps = s.nodes.map((n) => capture(n.name, enrolled));
  const load = ambit(['exec', '-n', 'client', client.name, '--', process.execPath, join(work, `${mode}-load.js`)], 20 * 60 * 1000).catch((err: Error) => err.message);
  const phases: Phase[] = [];
  const phase = async (name: string, fn: () => Promise<string>, opts: { expectFailures?: boolean; control?: boolean } = {}) => {
    const start = Date.now();
    console.log(`-- ${name}`);
    const note = await fn();
    phases.push({ name, start, end: Date.now(), note, ...opts });
  };
  const inSync = async () => {
    const a = JSON.parse(await ambit(['agents', '-o', 'json'])) as { revision: number; agents: { connected: boolean; ackedVersion: number }[] };
    return a.agents.length === s.nodes.length && a.agents.every((x) => x.connected && x.ackedVersion >= a.revision);
  };
  try {
    await until('the load running', async () => existsSync(events));
    await phase('steady load', async () => {
      await sleep(5000);
      return 'no fault';
    });
    await phase(`controller killed (-9) for ${outageSeconds} s, then started again`, async () => {
      const pid = (JSON.parse(readFileSync(join(stateDir, 'cluster.json'), 'utf8')) as { controllerPids: number[] }).controllerPids[0]!;
      process.kill(pid, 'SIGKILL');
      await sleep(outageSeconds * 1000);
      const back = Date.now();
      await ambit(['up']);
      const syncMs = await until('agents connected and in sync', inSync);
      return `agents back in sync ${((Date.now() - back) / 1000).toFixed(1)} s after the controller was started again (${syncMs} ms after \`ambit up\` returned)`;
    });
    await phase('both agents upgraded (`ambit agents --restart`)', async () => {
      const notes: string[] = [];
      for (const n of s.nodes) {
        const r = JSON.parse(await ambit(['agents', '--restart', n.name, '-o', 'json'])) as { readyMs: number };
        notes.push(`${n.name} ready in ${r.readyMs} ms`);
        await sleep(2000);
      }
      await until('agents in sync', inSync);
      await sleep(1000);
      for (const n of s.nodes) notes.push(`failures counted by the new agent of ${n.name}: ${await agentFailures(n.name)}`);
      return notes.join('; ');
    });
    await phase(`agent of ${client.node} killed (-9); the cluster starts a new one`, async () => {
      const pidFile = join(stateDir, 'agents', client.node, 'pid');
      const old = Number(readFileSync(pidFile, 'utf8'));
      const killed = Date.now();
      process.kill(old, 'SIGKILL');
      await until('a new agent', async () => Number(readFileSync(pidFile, 'utf8')) !== old);
      await until('pods captured by the new agent', async () => (await status()).pods.every((p) => p.capture === 'captured'));
      const back = Date.now() - killed;
      await sleep(3000);
      return `new agent serving ${(back / 1000).toFixed(1)} s after the kill`;
    });
    const other = s.nodes.find((n) => n.name !== client.node)!;
    await phase(`${other.name} restarted (its agent and every pod process killed at once)`, async () => {
      const pidFile = join(stateDir, 'agents', other.name, 'pid');
      const old = Number(readFileSync(pidFile, 'utf8'));
      const nodeCgroup = join(cgroup2Mount(), 'ambit', other.name);
      const cgroups = readdirSync(nodeCgroup, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(nodeCgroup, e.name));
      for (const dir of cgroups) writeFileSync(join(dir, 'cgroup.kill'), '1');
      await until('a new agent', async () => Number(readFileSync(pidFile, 'utf8')) !== old);
      await until('its pods running and captured again', async () => (await status()).pods.every((p) => p.phase === 'Running' && p.capture === 'captured'), 60_000);
      await sleep(3000);
      return `${cgroups.length} cgroups killed; pods restarted behind their capture`;
    });
    await phase('CA root rotated (overlap 1 h)', async () => {
      await ambit(['ca', 'rotate', '--overlap', '1h']);
      await until('agents in sync', inSync);
      await sleep(5000);
      return 'old and new roots trusted during the overlap';
    });
    const policy = join(work, 'deny.yaml');
    writeFileSync(policy, 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: { name: chaos-deny, namespace: shop }\nspec:\n  action: DENY\n  rules: [{ from: [{ source: { namespaces: [client] } }] }]\n');
    let appliedAt = 0;
    await phase(
      'DENY of the client applied with `apply --wait`, then deleted',
      async () => {
        const out = await ambit(['apply', '-f', policy, '--wait']);
        appliedAt = Date.now();
        const ms = / in (\d+) ms\./.exec(out)?.[1];
        if (!ms) throw new Error(`apply --wait did not report every agent in force: ${out}`);
        await sleep(3000);
        await ambit(['delete', 'authorizationpolicy', 'chaos-deny', '-n', 'shop']);
        await until('agents in sync', inSync);
        await sleep(2000);
        return `in force on every node when apply --wait returned, after ${ms} ms`;
      },
      { expectFailures: true },
    );
    // The control: the same traffic uncaptured must show on the wire, or the count above means nothing.
    await phase(
      'control: the client namespace unenrolled',
      async () => {
        await ambit(['unenroll', 'client']);
        await until('the client released', async () => (await status()).pods.find((p) => p.name === client.name)?.capture !== 'captured');
        await sleep(2000);
        return 'its requests now leave the pod in plaintext, as the packet count shows';
      },
      { control: true },
    );
    writeFileSync(stop, '');
    await load;
    const packets = (await Promise.all(tcpdumps.map((t) => t.stop()))).flat();
    const results = analyse(phases, readEvents(events), packets);
    const control = results.at(-1)!;
    if (control.uncaptured === 0) throw new Error('the control phase saw no uncaptured packet: the wire count does not work');
    // The DENY in force: no request may succeed after apply --wait returned (until the delete).
    const deny = results.at(-2)!;
    const allowedAfter = readEvents(events).filter((e) => e.t > appliedAt + 50 && e.t < appliedAt + 2500 && e.ok !== undefined);
    const okAfter = (allowedAfter.at(-1)?.ok ?? 0) - (allowedAfter[0]?.ok ?? 0);
    deny.note += `; requests that succeeded after it returned: ${okAfter}; the open connection ${deny.drops > 0 ? 'was closed' : 'was NOT closed'}`;
    return results;
  } finally {
    // The agents' and controller's logs go with the cluster: keep them for whoever reads the figures.
    const kept = join(tmpdir(), `ambit-chaos-logs-${mode}`);
    rmSync(kept, { recursive: true, force: true });
    cpSync(join(stateDir, 'agents'), kept, { recursive: true });
    cpSync(join(stateDir, 'logs', 'controller.log'), join(kept, 'controller.log'));
    console.log(`agent and controller logs kept in ${kept}`);
    writeFileSync(stop, '');
    await Promise.all(tcpdumps.map((t) => t.stop()));
    await ambit(['down']).catch((err: Error) => console.error(err.message));
  }
}

function readEvents(file: string): Event[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Event);
}

function analyse(phases: Phase[], events: Event[], packetTimes: number[]): PhaseResult[] {
  return phases.map((p) => {
    // A reset or a refusal happens when its cause does; a timeout was caused when its request began.
    const at = (e: Event) => (e.fail === 'ETIMEDOUT' ? (e.started ?? e.t) : e.t);
    const inside = events.filter((e) => at(e) >= p.start && at(e) < p.end);
    const counts = inside.filter((e) => e.ok !== undefined);
    const failures: Record<string, number> = {};
    const failTimes: number[] = [];
    for (const e of inside) {
      if (!e.fail) continue;
      failures[e.fail] = (failures[e.fail] ?? 0) + 1;
      failTimes.push(e.t);
    }
    return {
      ...p,
      ok: (counts.at(-1)?.ok ?? 0) - (counts[0]?.ok ?? 0),
      failed: failTimes.length,
      failures,
      failingMs: failTimes.length ? Math.max(...failTimes) - Math.min(...failTimes) : 0,
      drops: inside.filter((e) => e.drop).length,
      uncaptured: packetTimes.filter((t) => t >= p.start && t < p.end).length,
    };
  });
}

function table(mode: string, results: PhaseResult[]): string {
  const rows = results.map((r) => {
    const failed = r.failed ? `${r.failed} (${Object.entries(r.failures).map(([k, v]) => `${k} ${v}`).join(', ')}; over ${(r.failingMs / 1000).toFixed(2)} s)` : '0';
    return `| ${r.name} | ${((r.end - r.start) / 1000).toFixed(1)} s | ${r.ok} | ${r.expectFailures ? `${r.failed} denied (expected)` : failed} | ${r.drops} | ${r.uncaptured} | ${r.note} |`;
  });
  return [`### Capture mode: ${mode}`, '', '| fault | length | requests ok | requests failed | open connection dropped | packets sent uncaptured | notes |', '| --- | --- | --- | --- | --- | --- | --- |', ...rows, ''].join('\n');
}

async function main(): Promise<void> {
  const sections: string[] = [];
  const started = new Date();
  for (const mode of modes) sections.push(table(mode, await runMode(mode)));
  const text = [
    '<!-- chaos:begin (written by npm run chaos; edits here are replaced) -->',
    `Run on ${started.toISOString().slice(0, 16)} UTC, \`npm run chaos\` (controller outage ${outageSeconds} s). Load: two loops of HTTP requests, a new connection each, from the enrolled client pod to the web Service (one pod per node), and one TCP connection to the echo Service with a round trip every 200 ms (reopened if dropped). "Packets sent uncaptured": IPv4 packets from an enrolled pod's address seen by tcpdump on the nodes' pod bridges (captured traffic leaves as HBONE from the node's address).`,
    '',
    ...sections,
    '<!-- chaos:end -->',
  ].join('\n');
  const current = existsSync(report) ? readFileSync(report, 'utf8') : '# Reliability\n\n## Faults under load\n\n<!-- chaos:begin -->\n<!-- chaos:end -->\n';
  const updated = current.replace(/<!-- chaos:begin[\s\S]*?<!-- chaos:end -->/, text);
  writeFileSync(report, updated);
  console.log(`\n${sections.join('\n')}\nwritten to ${report}`);
  rmSync(work, { recursive: true, force: true });
}

main().catch((err: Error) => {
  console.error(`chaos: ${err.message}`);
  process.exit(1);
});
