// Floods against the HBONE server in a process of its own, its RSS measured (after a full GC)
// before, during and after each: TCP connections opened and held without a handshake, mTLS HTTP/2
// sessions opened and held, thousands of CONNECT streams through one session in windows of the
// advertised 100 (each ended cleanly, so nghttp2's rapid-reset guard is not what stops them), and
// raw HEADERS sent far past the stream limit. Each states its bound and fails above it.

import http2 from 'node:http2';
import { connect as tcpConnect, type Socket } from 'node:net';
import { rawSession, web } from '../unit/proxy/helpers.js';
import { type Memory, mb, type Outcome, runs, sleep, Target, TargetCrashed } from './common.js';
import { Flag, frame, FrameType, headerBlock, preface, RawH2, settings } from './h2-frames.js';
import type { HboneTargetInfo } from './hbone-target.js';
import { servesConnect, targetParams } from './hbone.fuzz.js';

async function sampled<T>(target: Target, work: () => Promise<T>): Promise<{ value: T; peak: Memory }> {
  let peak = await target.memory();
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const m = (await target.call('memory', undefined, 10_000)) as Memory | undefined;
      if (m && m.rss > peak.rss) peak = m;
      await sleep(100);
    }
  })();
  try {
    return { value: await work(), peak };
  } finally {
    done = true;
    await sampler;
  }
}

function line(name: string, started: number, count: number, before: Memory, sampledPeak: Memory, after: Memory, bound: number, ok: boolean, extra: string): Outcome {
  // Sampling every 100 ms can miss the top; what is left after counts too.
  const peak = after.rss > sampledPeak.rss ? after : sampledPeak;
  return {
    name,
    runs: count,
    seconds: (Date.now() - started) / 1000,
    ok: ok && peak.rss < bound,
    notes: [`RSS ${mb(before.rss)} MB before, peak ${mb(peak.rss)} MB, ${mb(after.rss)} MB after (bound ${mb(bound)} MB); heap ${mb(before.heapUsed)} -> ${mb(peak.heapUsed)} -> ${mb(after.heapUsed)} MB. ${extra}`],
  };
}

export async function floods(): Promise<Outcome[]> {
  const out: Outcome[] = [];
  const { target, info } = await Target.start<HboneTargetInfo>('./hbone-target.js', targetParams);
  try {
    // 1. TCP connections held without a TLS handshake (the server's handshake timeout is 10 s).
    let started = Date.now();
    const tcpCount = Math.min(9000, runs(5000));
    let before = await target.memory();
    const held: Socket[] = [];
    let { peak } = await sampled(target, async () => {
      for (let i = 0; i < tcpCount; i++) {
        const s = tcpConnect(info.port, '127.0.0.1');
        s.on('error', () => undefined);
        held.push(s);
        if (i % 500 === 499) await sleep(10);
      }
      await sleep(1000);
    });
    for (const s of held) s.destroy();
    await sleep(1000);
    let after = await target.memory();
    out.push(line(`connection flood: ${tcpCount} TCP connections held, no handshake`, started, tcpCount, before, peak, after, before.rss + 64 * 1024 * 1024 + tcpCount * 80 * 1024, target.alive() && (await servesConnect(info)), 'A valid CONNECT is served after. Bound: 64 MB + 80 KiB per connection over the start (TLS state allocated at accept, native memory: the JS heap barely moves).'));

    // 2. mTLS HTTP/2 sessions opened and held (a handshake each, about 300/s on loopback).
    started = Date.now();
    const sessionCount = Math.min(4000, runs(1000));
    before = await target.memory();
    const sessions: http2.ClientHttp2Session[] = [];
    ({ peak } = await sampled(target, async () => {
      for (let i = 0; i < sessionCount; i += 50) await Promise.all(Array.from({ length: Math.min(50, sessionCount - i) }, async () => sessions.push(await rawSession(info.port, web))));
      await sleep(500);
    }));
    const active = ((await target.call('counters')) as { activeSessions: number }).activeSessions;
    for (const s of sessions) s.destroy();
    await sleep(1000);
    after = await target.memory();
    out.push(line(`connection flood: ${sessionCount} mTLS HTTP/2 sessions held`, started, sessionCount, before, peak, after, before.rss + 64 * 1024 * 1024 + sessionCount * 200 * 1024, target.alive() && (await servesConnect(info)), `${active} sessions active at the peak. Bound: 64 MB + 200 KiB per session over the start.`));

    // 3. Thousands of CONNECT streams through one session, 100 at a time, each echoing and ended.
    started = Date.now();
    const streamCount = runs(5000);
    before = await target.memory();
    let opened = 0;
    ({ peak } = await sampled(target, async () => {
      const session = await rawSession(info.port, web);
      for (let i = 0; i < streamCount && !session.destroyed; i += 100) {
        await Promise.all(
          Array.from({ length: Math.min(100, streamCount - i) }, () => {
            const s = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${info.echoPort}` });
            s.on('error', () => undefined);
            s.on('response', (h) => {
              if (h[':status'] === 200) opened++;
            });
            s.end(Buffer.alloc(1024, 1));
            s.resume();
            return new Promise((r) => s.once('close', r));
          }),
        );
      }
      session.destroy();
    }));
    await sleep(500);
    after = await target.memory();
    out.push(line(`stream flood: ${streamCount} CONNECT streams on one session, 100 at a time`, started, streamCount, before, peak, after, before.rss + 128 * 1024 * 1024, target.alive() && opened === streamCount && (await servesConnect(info)), `${opened} tunnels opened and echoed 1 KiB each. Bound: 128 MB over the start.`));

    // 4. Raw HEADERS far past SETTINGS_MAX_CONCURRENT_STREAMS (100), never ended: refused, not queued.
    started = Date.now();
    const rawCount = runs(3000);
    before = await target.memory();
    let seen = { resets: 0, opened: 0, goaway: undefined as number | undefined, closed: false };
    ({ peak } = await sampled(target, async () => {
      const c = await RawH2.open(info.port, web);
      c.write(preface);
      c.write(settings([]));
      const block = headerBlock([[':method', 'CONNECT'], [':authority', `127.0.0.1:${info.echoPort}`]]);
      for (let i = 0, id = 1; i < rawCount; i++, id += 2) c.write(frame(FrameType.HEADERS, Flag.END_HEADERS, id, block));
      await sleep(2000);
      seen = { resets: c.seen.resets.size, opened: c.seen.status200.size, goaway: c.seen.goaway, closed: c.seen.closed };
      c.destroy();
    }));
    await sleep(500);
    after = await target.memory();
    out.push(line(`stream flood: ${rawCount} raw CONNECT HEADERS past the 100-stream limit`, started, rawCount, before, peak, after, before.rss + 128 * 1024 * 1024, target.alive() && seen.opened <= 100 && (await servesConnect(info)), `${seen.opened} tunnels opened, ${seen.resets} streams refused with RST_STREAM, GOAWAY ${seen.goaway ?? 'none'}, connection ${seen.closed ? 'closed by the server' : 'left open'} within 2 s. Bound: 128 MB over the start.`));
    if (!target.alive()) throw new TargetCrashed(target);
  } finally {
    await target.stop();
  }
  return out;
}
