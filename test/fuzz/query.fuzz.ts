// Fuzzes the agent's query API (a WebSocket on 15000) in a process of its own: malformed JSON, wrong
// types, unknown methods, `explain` with odd params, binary frames, messages of several MB, and
// subscribers that never read. Properties: every message is answered ({id, result} or {id, error})
// or the connection is closed (1009 above maxPayload), the process never dies, and its memory
// stays bounded while slow subscribers are fed events.

import { WebSocket } from 'ws';
import fc from 'fast-check';
import { budget, type Memory, mb, type Outcome, sleep, Target, TargetCrashed, within } from './common.js';

const methods = ['workloads', 'services', 'policies', 'certs', 'connections', 'version', 'config_dump', 'events', 'subscribe', 'explain-outbound', 'explain-inbound'];

const explainParams = fc.record(
  { sourceIp: fc.oneof(fc.constantFrom('10.0.0.7', '10.0.0.9', '', '::1'), fc.anything({ maxDepth: 1 })), ip: fc.oneof(fc.constantFrom('10.0.0.9', '10.0.0.7', '10.96.0.1'), fc.anything({ maxDepth: 1 })), port: fc.oneof(fc.integer(), fc.constantFrom(NaN, -1, 70000, '80', null)), sourcePrincipal: fc.anything({ maxDepth: 1 }), mtls: fc.anything({ maxDepth: 0 }) },
  { requiredKeys: [] },
);

type Message = { kind: 'text'; text: string; expectReply: boolean } | { kind: 'binary'; bytes: Uint8Array } | { kind: 'huge'; bytes: number };

const message: fc.Arbitrary<Message> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ id: fc.anything({ maxDepth: 1 }), method: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...methods) }, fc.anything({ maxDepth: 1 })), params: fc.oneof(explainParams, fc.record({ topics: fc.anything({ maxDepth: 1 }) }), fc.anything({ maxDepth: 2 })) }, { requiredKeys: [] }).map((r) => ({ kind: 'text' as const, text: JSON.stringify(r) ?? 'null', expectReply: true })) },
  fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('{', '{"id":1', '[]', 'null', '1', '"x"', '{"method":"subscribe","params":{"topics":"config"}}', '{"method":"__proto__"}', '{"__proto__":{"method":"workloads"}}')).map((text) => ({ kind: 'text' as const, text, expectReply: true })),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => ({ kind: 'binary' as const, bytes })),
  fc.constantFrom(64 * 1024 - 200, 64 * 1024 + 1, 1024 * 1024, 4 * 1024 * 1024).map((bytes) => ({ kind: 'huge' as const, bytes })),
);

async function open(port: number): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { maxPayload: 256 * 1024 * 1024 });
  ws.on('error', () => undefined);
  await new Promise((res, rej) => (ws.once('open', res), ws.once('error', rej)));
  return ws;
}

export async function fuzzQuery(): Promise<Outcome[]> {
  const { target, info } = await Target.start<{ port: number }>('./query-target.js', {});
  const out: Outcome[] = [];
  try {
    let started = Date.now();
    const tally = { messages: 0, results: 0, errors: new Map<string, number>(), closes: new Map<number, number>() };
    const property = fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 6 }), async (msgs) => {
      const ws = await open(info.port);
      const replies: { id?: unknown; result?: unknown; error?: { code: string } }[] = [];
      ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
      const closed = new Promise<number>((res) => ws.once('close', (code) => res(code)));
      try {
        for (const m of msgs) {
          tally.messages++;
          if (ws.readyState !== WebSocket.OPEN) break;
          const want = replies.length + 1;
          if (m.kind === 'text') ws.send(m.text);
          else if (m.kind === 'binary') ws.send(m.bytes, { binary: true });
          else ws.send(Buffer.alloc(m.bytes, 0x7b));
          const code = await within(Promise.race([closed, (async () => { while (replies.length < want) await sleep(2); return -1; })()]), 5000, -2);
          if (code === -2) throw new Error(`no answer and no close within 5 s to ${JSON.stringify(m).slice(0, 300)}`);
          if (code >= 0) {
            tally.closes.set(code, (tally.closes.get(code) ?? 0) + 1);
            if (m.kind !== 'huge' || m.bytes <= 64 * 1024) throw new Error(`closed (${code}) on ${JSON.stringify(m).slice(0, 300)}`);
            break;
          }
          const r = replies[want - 1]!;
          if (r.error) tally.errors.set(r.error.code, (tally.errors.get(r.error.code) ?? 0) + 1);
          else if ('result' in r) tally.results++;
          else throw new Error(`an answer that is neither result nor error: ${JSON.stringify(r).slice(0, 300)}`);
        }
      } finally {
        ws.terminate();
      }
      if (!target.alive()) throw new TargetCrashed(target);
    });
    const details = await fc.check(property, budget(400, 45));
    const errors = [...tally.errors].map(([c, n]) => `${c} x${n}`).join(', ');
    const closes = [...tally.closes].map(([c, n]) => `${c} x${n}`).join(', ');
    out.push({
      name: 'query API messages',
      runs: details.numRuns,
      seconds: (Date.now() - started) / 1000,
      ok: !details.failed && target.alive(),
      notes: [`${tally.messages} messages: ${tally.results} results, errors ${errors || 'none'}, closes ${closes || 'none'} (1009: over maxPayload 64 KiB)`, ...(details.failed ? [`FAILED (seed ${details.seed}, path ${details.counterexamplePath}): ${String(details.errorInstance ?? details.error).slice(0, 2000)}`] : [])],
    });

    // Slow subscribers: clients that subscribe to everything and never read, fed events.
    started = Date.now();
    const clients = Math.round(100 * Math.min(2, Math.max(1, Number(process.env.FUZZ_SCALE ?? 1))));
    const before = await target.memory();
    const subs: WebSocket[] = [];
    for (let i = 0; i < clients; i++) {
      const ws = await open(info.port);
      ws.send(JSON.stringify({ id: 1, method: 'subscribe' }));
      await new Promise((r) => ws.once('message', r));
      (ws as unknown as { _socket: { pause(): void } })._socket.pause();
      subs.push(ws);
    }
    let peak: Memory = before;
    for (let round = 0; round < 20; round++) {
      await target.call('publish', { count: 50, bytes: 16 * 1024 });
      const m = await target.memory();
      if (m.rss > peak.rss) peak = m;
    }
    for (const s of subs) s.terminate();
    await sleep(500);
    const after = await target.memory();
    const bound = 256 * 1024 * 1024 + clients * 6 * 1024 * 1024;
    out.push({
      name: 'query API slow subscribers',
      runs: clients,
      seconds: (Date.now() - started) / 1000,
      ok: target.alive() && peak.rss < bound,
      notes: [
        `${clients} subscribers that never read, 1,000 events of 16 KiB published (16 MB to each): RSS ${mb(before.rss)} MB before, peak ${mb(peak.rss)} MB, ${mb(after.rss)} MB after (bound ${mb(bound)} MB: 256 MB + 6 MB per subscriber)`,
      ],
    });
  } finally {
    await target.stop();
  }
  return out;
}
