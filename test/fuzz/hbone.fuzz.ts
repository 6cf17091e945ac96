// Fuzzes the HBONE server (port 15008) in a process of its own, over real mutual TLS on loopback:
// first through node:http2 (methods, authorities, header sets, :protocol, resets and data at odd
// moments, sessions ended three ways), then with raw frames node:http2 would never send. Properties:
// the server process never dies, never answers 200 to anything but a CONNECT to the pod's address
// without a Forwarded header, answers every request it accepted (a status or a reset) within
// seconds, and still serves a valid CONNECT after each case.

import http2 from 'node:http2';
import { once } from 'node:events';
import fc from 'fast-check';
import { api, rawSession, root, web } from '../unit/proxy/helpers.js';
import { toPem } from '../../shared/identity/x509.js';
import { budget, type Outcome, sleep, Target, TargetCrashed, within } from './common.js';
import { Flag, frame, FrameType, headerBlock, preface, RawH2, settings, u32 } from './h2-frames.js';
import type { HboneTargetInfo, HboneTargetParams } from './hbone-target.js';

export const targetParams: HboneTargetParams = { keyPem: api.keyPem, certPem: api.certPem, rootsPem: [toPem(root.der, 'CERTIFICATE')] };

/** A CONNECT to the echo "pod" on a new session, answered 200 and echoing: the server still serves. */
export async function servesConnect(info: HboneTargetInfo): Promise<boolean> {
  const session = await rawSession(info.port, web);
  try {
    const s = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${info.echoPort}` });
    s.on('error', () => undefined);
    const headers = await within(new Promise<http2.IncomingHttpHeaders>((res) => s.once('response', res)), 5000, {} as http2.IncomingHttpHeaders);
    if (Number(headers[':status']) !== 200) return false;
    s.end('still serving');
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    await within(new Promise((res) => s.once('end', res)), 5000, undefined);
    return got === 'still serving';
  } finally {
    session.destroy();
  }
}

const huge = (n: number) => fc.constant('a'.repeat(n));

const method = fc.oneof(fc.constantFrom('CONNECT', 'GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PRI', 'connect', 'CONNECT ', 'CONNECTX'), fc.string({ maxLength: 20 }));

function authority(echo: string) {
  return fc.oneof(
    { weight: 4, arbitrary: fc.constant(echo) },
    fc.constantFrom('127.0.0.1', '127.0.0.1:', '127.0.0.1:0', '127.0.0.1:65536', '127.0.0.01:80', '0.0.0.0:80', '[::1]:80', '::1', 'shop.example:80', '10.0.0.8:80', '10.9.9.9:8080', '', ' ', `${echo} `, `${echo}:1`, '127.0.0.1:99999999999999999999'),
    fc.tuple(fc.ipV4(), fc.integer({ min: 0, max: 70000 })).map(([ip, p]) => `${ip}:${p}`),
    fc.ipV6().map((ip) => `[${ip}]:80`),
    fc.fullUnicodeString({ maxLength: 30 }),
    huge(20_000),
  );
}

const forwarded = fc.oneof(
  fc.constantFrom('for=10.0.0.8', 'for="10.0.0.8"', 'for=10.0.0.7', 'for=1.2.3.4', 'for=[::1]', 'for="[2001:db8::1]:80"', 'for=unknown', 'for=_hidden', 'for=10.0.0.8;proto=https', 'for=10.0.0.8, for=1.2.3.4', 'by=10.0.0.1', 'for=', '', 'for=999.1.1.1', ' for=10.0.0.8 '),
  fc.string({ maxLength: 40 }).map((s) => `for=${s}`),
  huge(10_000).map((s) => `for=${s}`),
);

const headerName = fc.oneof(fc.constantFrom('forwarded', 'x-forwarded-for', 'baggage', 'traceparent', 'x-ambit-node', 'connection', 'te', 'upgrade', 'host', 'content-length', 'transfer-encoding', 'keep-alive', 'proxy-connection'), { weight: 6, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,20}$/) }, fc.string({ minLength: 1, maxLength: 20 }));
// Mostly headers node:http2 will send, so one case's requests are not all lost with the session
// its first invalid header destroys; the raw-frame fuzzer sends the invalid ones.
const extraHeaders = fc.array(fc.tuple(headerName, fc.oneof({ weight: 3, arbitrary: forwarded }, { weight: 3, arbitrary: fc.string({ maxLength: 50 }) }, fc.fullUnicodeString({ maxLength: 10 }), huge(40_000))), { maxLength: 4 });

type Behaviour = 'wait' | 'reset-now' | 'data-early' | 'end-now' | 'reset-after-response';

interface Req {
  method: string;
  authority: string | undefined;
  headers: [string, string][];
  forwardedHeader: string | undefined;
  protocol: string | undefined;
  pathAndScheme: boolean;
  behaviour: Behaviour;
}

function request(echo: string): fc.Arbitrary<Req> {
  return fc.record({
    method,
    authority: fc.oneof({ weight: 8, arbitrary: authority(echo) }, fc.constant(undefined)),
    headers: extraHeaders,
    forwardedHeader: fc.oneof({ weight: 2, arbitrary: fc.constant(undefined) }, forwarded),
    protocol: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, fc.constantFrom('websocket', 'connect-udp', 'connect-ip', '')),
    pathAndScheme: fc.constantFrom(false, false, false, true),
    behaviour: fc.constantFrom<Behaviour>('wait', 'wait', 'reset-now', 'data-early', 'end-now', 'reset-after-response'),
  });
}

/** Only this may be answered 200: the inbound handler refuses every Forwarded header here (no workload has the client's identity). */
function mayOpen(r: Req, echo: string): boolean {
  const names = r.headers.map(([n]) => n.toLowerCase());
  return r.method === 'CONNECT' && r.authority === echo && r.protocol === undefined && !r.pathAndScheme && r.forwardedHeader === undefined && !names.includes('forwarded');
}

interface Answer {
  status?: number;
  rstCode?: number;
  /** node:http2 would not send it (an invalid header, say); the raw-frame fuzzer sends such things. */
  clientRefused?: string;
  hung?: boolean;
}

async function send(session: http2.ClientHttp2Session, r: Req): Promise<Answer> {
  const headers: http2.OutgoingHttpHeaders = { ':method': r.method };
  if (r.authority !== undefined) headers[':authority'] = r.authority;
  if (r.protocol !== undefined) headers[':protocol'] = r.protocol;
  if (r.pathAndScheme) Object.assign(headers, { ':path': '/', ':scheme': 'https' });
  for (const [n, v] of r.headers) headers[n] = headers[n] === undefined ? v : [headers[n] as string, v].flat();
  if (r.forwardedHeader !== undefined) headers.forwarded = r.forwardedHeader;
  let s: http2.ClientHttp2Stream;
  try {
    s = session.request(headers, { endStream: r.behaviour === 'end-now' });
  } catch (err) {
    return { clientRefused: (err as NodeJS.ErrnoException).code ?? 'error' };
  }
  const answer: Answer = {};
  s.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code?.startsWith('ERR_HTTP2_INVALID') || err.code === 'ERR_HTTP2_HEADER_SINGLE_VALUE') answer.clientRefused = err.code;
  });
  s.on('response', (h) => {
    answer.status = Number(h[':status']);
    if (r.behaviour === 'reset-after-response') s.close(http2.constants.NGHTTP2_CANCEL);
    // A 200 tunnel is ended after one byte; after any other status the client ends its side, as a
    // well-behaved one does (the server has ended its own).
    else s.end(answer.status === 200 ? 'x' : undefined);
    s.resume();
  });
  if (r.behaviour === 'reset-now') {
    await new Promise((res) => setImmediate(res));
    s.close(http2.constants.NGHTTP2_CANCEL);
  }
  if (r.behaviour === 'data-early' && !s.destroyed) s.write(Buffer.alloc(32 * 1024, 1));
  // node:http2 defers a request with :protocol until the peer's SETTINGS, then validates its
  // headers; an invalid one there destroys the client's session and leaves the stream pending with
  // no 'close'. That stream never left the client.
  const closed = await within(new Promise<boolean>((res) => (s.once('close', () => res(true)), session.once('close', () => res(true)))), 4000, false);
  if (s.pending) return { clientRefused: 'never sent' };
  if (!closed) {
    s.destroy();
    return { ...answer, hung: true };
  }
  return { ...answer, rstCode: s.rstCode };
}

export async function fuzzHboneRequests(target: Target, info: HboneTargetInfo): Promise<Outcome> {
  const echo = `127.0.0.1:${info.echoPort}`;
  const started = Date.now();
  const tally = { requests: 0, statuses: new Map<number, number>(), resets: 0, clientRefused: 0, opened: 0, refusedBy: new Map<string, number>() };
  let n = 0;
  const property = fc.asyncProperty(fc.array(request(echo), { minLength: 1, maxLength: 5 }), fc.constantFrom('close', 'goaway', 'destroy'), async (reqs, end) => {
    n++;
    const session = await rawSession(info.port, web);
    await within(once(session, 'connect'), 5000, undefined);
    const answers = await Promise.all(reqs.map((r) => send(session, r)));
    if (end === 'goaway' && !session.destroyed) session.goaway(http2.constants.NGHTTP2_NO_ERROR);
    if (end === 'close' && !session.destroyed) session.close();
    session.destroy();
    for (const [i, a] of answers.entries()) {
      const r = reqs[i]!;
      tally.requests++;
      if (a.clientRefused) {
        tally.clientRefused++;
        tally.refusedBy.set(a.clientRefused, (tally.refusedBy.get(a.clientRefused) ?? 0) + 1);
      }
      if (a.status !== undefined) tally.statuses.set(a.status, (tally.statuses.get(a.status) ?? 0) + 1);
      else if (!a.clientRefused) tally.resets++;
      if (a.status === 200) tally.opened++;
      if (a.status === 200 && !mayOpen(r, echo)) throw new Error(`200 to an invalid request: ${JSON.stringify(r).slice(0, 500)}`);
      if (a.hung && r.behaviour !== 'reset-now') throw new Error(`no answer within 4 s: ${JSON.stringify(r).slice(0, 500)}`);
    }
    if (!target.alive()) throw new TargetCrashed(target);
    // A new session per case costs a handshake; the liveness check runs every tenth case and at the end.
    if (n % 10 === 0 && !(await servesConnect(info))) throw new Error('a valid CONNECT was not served after this case');
  });
  const details = await fc.check(property, budget(300, 60));
  const ok = !details.failed && target.alive() && (await servesConnect(info));
  const statuses = [...tally.statuses].sort().map(([s, c]) => `${s}x${c}`).join(' ');
  return {
    name: 'HBONE requests (node:http2)',
    runs: details.numRuns,
    seconds: (Date.now() - started) / 1000,
    ok,
    notes: [
      `${tally.requests} requests in ${details.numRuns} sessions: statuses ${statuses}; ${tally.resets} reset or cut; ${tally.clientRefused} refused by node:http2 itself (${[...tally.refusedBy].map(([c, k]) => `${c} x${k}`).join(', ')})`,
      ...(details.failed ? [`FAILED (seed ${details.seed}, path ${details.counterexamplePath}): ${String(details.errorInstance ?? details.error).slice(0, 1500)}`] : []),
    ],
  };
}

// Raw frames: one connection per case, a preface, then a sequence of frames.

type Op =
  | { t: 'headers'; id: IdChoice; headers: [string, string][]; endStream: boolean; endHeaders: boolean; padded: boolean }
  | { t: 'continuation'; id: IdChoice; headers: [string, string][]; endHeaders: boolean }
  | { t: 'data'; id: IdChoice; size: number; endStream: boolean }
  | { t: 'rst'; id: IdChoice; code: number }
  | { t: 'window'; id: IdChoice; inc: number }
  | { t: 'priority'; id: IdChoice; selfDependent: boolean }
  | { t: 'settings'; pairs: [number, number][]; ack: boolean }
  | { t: 'ping'; len: number; ack: boolean }
  | { t: 'goaway'; code: number }
  | { t: 'push'; id: IdChoice }
  | { t: 'unknown'; type: number; size: number }
  | { t: 'garbage'; bytes: Uint8Array }
  | { t: 'bad-length'; type: number };

type IdChoice = 'next' | 'current' | 'zero' | 'even' | 'old' | 'max';

export function rawOps(echo: string) {
  // Mostly well-formed frames on plausible streams, so that a case gets past its first frames; each
  // frame kind that breaks the connection comes now and then.
  const newId = fc.oneof({ weight: 8, arbitrary: fc.constant<IdChoice>('next') }, { weight: 2, arbitrary: fc.constant<IdChoice>('current') }, fc.constantFrom<IdChoice>('zero', 'even', 'old', 'max'));
  const id = fc.oneof({ weight: 12, arbitrary: fc.constant<IdChoice>('current') }, fc.constantFrom<IdChoice>('next', 'zero', 'even', 'old', 'max'));
  const pseudo = fc.oneof(
    { weight: 3, arbitrary: fc.constant<[string, string][]>([[':method', 'CONNECT'], [':authority', echo]]) },
    fc.constant<[string, string][]>([[':method', 'CONNECT'], [':authority', echo], [':method', 'CONNECT']]),
    fc.constant<[string, string][]>([[':authority', echo], [':method', 'CONNECT']]),
    fc.constant<[string, string][]>([[':method', 'CONNECT']]),
    fc.constant<[string, string][]>([[':method', 'CONNECT'], [':authority', echo], [':protocol', 'websocket'], [':path', '/'], [':scheme', 'https']]),
    fc.constant<[string, string][]>([[':method', 'GET'], [':authority', echo], [':path', '/'], [':scheme', 'https']]),
    fc.constant<[string, string][]>([['x-first', '1'], [':method', 'CONNECT'], [':authority', echo]]),
    fc.constant<[string, string][]>([[':method', 'CONNECT'], [':authority', echo], [':status', '200']]),
    fc.tuple(fc.string({ maxLength: 10 }), fc.string({ maxLength: 30 })).map(([m, a]) => [[':method', m], [':authority', a]] as [string, string][]),
  );
  const extra = fc.array(
    fc.tuple(
      fc.oneof(fc.constantFrom('forwarded', 'Forwarded', 'FORWARDED', 'connection', 'te', 'x y', 'x\u0000y', 'ä', ':unknown', ''), fc.string({ maxLength: 12 })),
      fc.oneof({ weight: 3, arbitrary: fc.constantFrom('for=10.0.0.8', 'trailers', 'keep-alive', 'a\r\nb', 'a\u0000b', ' padded ') }, { weight: 3, arbitrary: fc.string({ maxLength: 20 }) }, huge(20_000)),
    ),
    { maxLength: 4 },
  );
  const headers = fc.tuple(pseudo, fc.oneof({ weight: 2, arbitrary: fc.constant([]) }, extra)).map(([p, e]) => [...p, ...e]);
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 10, arbitrary: fc.record({ t: fc.constant('headers' as const), id: newId, headers, endStream: fc.boolean(), endHeaders: fc.constantFrom(true, true, true, true, false), padded: fc.boolean() }) },
    fc.record({ t: fc.constant('continuation' as const), id, headers, endHeaders: fc.boolean() }),
    { weight: 4, arbitrary: fc.record({ t: fc.constant('data' as const), id, size: fc.oneof({ weight: 4, arbitrary: fc.integer({ min: 0, max: 100 }) }, fc.constantFrom(16_384, 16_385, 70_000)), endStream: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('rst' as const), id, code: fc.integer({ min: 0, max: 15 }) }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('window' as const), id, inc: fc.constantFrom(1, 1, 65_535, 0, 2 ** 31 - 1) }) },
    fc.record({ t: fc.constant('priority' as const), id, selfDependent: fc.boolean() }),
    fc.record({ t: fc.constant('settings' as const), pairs: fc.array(fc.tuple(fc.integer({ min: 0, max: 10 }), fc.constantFrom(0, 1, 2, 100, 16_383, 16_384, 2 ** 24, 2 ** 31, 2 ** 32 - 1)), { maxLength: 4 }), ack: fc.boolean() }),
    { weight: 2, arbitrary: fc.record({ t: fc.constant('ping' as const), len: fc.constantFrom(8, 8, 8, 0, 9), ack: fc.boolean() }) },
    fc.record({ t: fc.constant('goaway' as const), code: fc.integer({ min: 0, max: 15 }) }),
    fc.record({ t: fc.constant('push' as const), id }),
    { weight: 2, arbitrary: fc.record({ t: fc.constant('unknown' as const), type: fc.integer({ min: 10, max: 255 }), size: fc.integer({ min: 0, max: 64 }) }) },
    fc.record({ t: fc.constant('garbage' as const), bytes: fc.uint8Array({ maxLength: 64 }) }),
    fc.record({ t: fc.constant('bad-length' as const), type: fc.constantFrom(FrameType.RST_STREAM, FrameType.WINDOW_UPDATE, FrameType.PRIORITY, FrameType.SETTINGS, FrameType.PING) }),
  );
  return fc.array(op, { minLength: 1, maxLength: 8 });
}

/** Writes `ops`; returns which streams got a complete, well-formed request the server must answer, and which of them may be answered 200. */
export function writeOps(c: RawH2, ops: Op[], echo: string): { mustAnswer: Set<number>; may200: Set<number>; waitingContinuation: boolean } {
  let last = 0;
  // nghttp2 drops, without an answer, HEADERS on a stream id below the highest it has seen.
  let highest = 0;
  const mustAnswer = new Set<number>();
  const may200 = new Set<number>();
  let pending: number | undefined;
  let broken = false;
  const pick = (choice: IdChoice): number => {
    switch (choice) {
      case 'next':
        last = last === 0 ? 1 : last + 2;
        return last;
      case 'current':
        return last || 1;
      case 'zero':
        return 0;
      case 'even':
        return last % 2 ? last + 1 : last + 2;
      case 'old':
        return 1;
      case 'max':
        return 0x7fffffff;
    }
  };
  c.write(preface);
  c.write(settings([]));
  for (const op of ops) {
    switch (op.t) {
      case 'headers': {
        const id = pick(op.id);
        let block = headerBlock(op.headers);
        let flags = (op.endStream ? Flag.END_STREAM : 0) | (op.endHeaders ? Flag.END_HEADERS : 0);
        if (op.padded) {
          block = Buffer.concat([Buffer.from([3]), block, Buffer.alloc(3)]);
          flags |= Flag.PADDED;
        }
        c.write(frame(FrameType.HEADERS, flags, id, block));
        const fresh = id % 2 === 1 && id > highest && pending === undefined && !broken;
        highest = Math.max(highest, id);
        // Any other HEADERS is a protocol error of some kind; the server may answer it by resetting
        // the stream or ending the session, so it is not counted.
        if (!fresh) broken = true;
        if (op.endHeaders) {
          const methods = op.headers.filter(([n]) => n === ':method').map(([, v]) => v);
          const authorities = op.headers.filter(([n]) => n === ':authority').map(([, v]) => v);
          if (methods.every((m) => m === 'CONNECT') && authorities.length > 0 && authorities.every((a) => a === echo)) may200.add(id);
          if (fresh) mustAnswer.add(id);
        } else pending = id;
        break;
      }
      case 'continuation': {
        const id = pick(op.id);
        c.write(frame(FrameType.CONTINUATION, op.endHeaders ? Flag.END_HEADERS : 0, id, headerBlock(op.headers)));
        // Headers continued: the request is whatever the server makes of the joined block; a 200 is
        // allowed only if both halves could make a CONNECT to the echo address, which this does not track.
        if (pending !== undefined && id === pending && op.endHeaders) pending = undefined;
        else broken = true;
        break;
      }
      case 'data': {
        const id = pick(op.id);
        c.write(frame(FrameType.DATA, op.endStream ? Flag.END_STREAM : 0, id, Buffer.alloc(op.size)));
        break;
      }
      case 'rst': {
        const id = pick(op.id);
        mustAnswer.delete(id);
        c.write(frame(FrameType.RST_STREAM, 0, id, u32(op.code)));
        break;
      }
      case 'window':
        c.write(frame(FrameType.WINDOW_UPDATE, 0, pick(op.id), u32(op.inc)));
        break;
      case 'priority': {
        const id = pick(op.id);
        c.write(frame(FrameType.PRIORITY, 0, id, Buffer.concat([u32(op.selfDependent ? id : 0), Buffer.from([16])])));
        break;
      }
      case 'settings':
        c.write(settings(op.pairs, op.ack));
        break;
      case 'ping':
        c.write(frame(FrameType.PING, op.ack ? Flag.ACK : 0, 0, Buffer.alloc(op.len)));
        break;
      case 'goaway':
        c.write(frame(FrameType.GOAWAY, 0, 0, Buffer.concat([u32(last), u32(op.code)])));
        broken = true;
        break;
      case 'push':
        c.write(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, pick(op.id), Buffer.concat([u32(last + 2), headerBlock([[':method', 'GET']])])));
        broken = true;
        break;
      case 'unknown':
        c.write(frame(op.type, 0, 0, Buffer.alloc(op.size)));
        break;
      case 'garbage':
        c.write(Buffer.from(op.bytes));
        broken = true;
        break;
      case 'bad-length':
        c.write(frame(op.type, 0, op.type === FrameType.SETTINGS || op.type === FrameType.PING ? 0 : 1, Buffer.alloc(3)));
        broken = true;
        break;
    }
  }
  // After a frame that breaks the connection the server may drop everything still queued.
  return { mustAnswer: broken ? new Set() : mustAnswer, may200, waitingContinuation: pending !== undefined };
}

export async function fuzzHboneFrames(target: Target, info: HboneTargetInfo): Promise<Outcome> {
  const echo = `127.0.0.1:${info.echoPort}`;
  const started = Date.now();
  const tally = { frames: 0, goaways: new Map<number, number>(), ok200: 0, resets: 0, closed: 0 };
  let n = 0;
  const property = fc.asyncProperty(rawOps(echo), async (ops) => {
    n++;
    const c = await RawH2.open(info.port, web);
    try {
      const { mustAnswer, may200 } = writeOps(c, ops, echo);
      tally.frames += ops.length;
      for (const end = Date.now() + 3000; Date.now() < end && ![...mustAnswer].every((id) => c.answered(id)); ) await sleep(5);
      // A little longer for answers to streams the oracle does not track (a 200 there is a bug too).
      await sleep(50);
      for (const id of c.seen.status200) if (!may200.has(id)) throw new Error(`200 on stream ${id}, which was no CONNECT to ${echo}: ${JSON.stringify(ops).slice(0, 800)}`);
      for (const id of mustAnswer) if (!c.answered(id)) throw new Error(`stream ${id} got no answer within 3 s: ${JSON.stringify(ops).slice(0, 800)}`);
      tally.ok200 += c.seen.status200.size;
      tally.resets += c.seen.resets.size;
      if (c.seen.goaway !== undefined) tally.goaways.set(c.seen.goaway, (tally.goaways.get(c.seen.goaway) ?? 0) + 1);
      if (c.seen.closed) tally.closed++;
    } finally {
      c.destroy();
    }
    if (!target.alive()) throw new TargetCrashed(target);
    if (n % 10 === 0 && !(await servesConnect(info))) throw new Error('a valid CONNECT was not served after this case');
  });
  const details = await fc.check(property, budget(400, 60));
  const ok = !details.failed && target.alive() && (await servesConnect(info));
  const goaways = [...tally.goaways].sort().map(([code, count]) => `code ${code} x${count}`).join(', ');
  return {
    name: 'HBONE raw frames',
    runs: details.numRuns,
    seconds: (Date.now() - started) / 1000,
    ok,
    notes: [
      `${tally.frames} frames in ${details.numRuns} connections: ${tally.ok200} tunnels opened (all to the pod), ${tally.resets} stream resets, GOAWAY ${goaways || 'none'}, ${tally.closed} connections closed by the server`,
      ...(details.failed ? [`FAILED (seed ${details.seed}, path ${details.counterexamplePath}): ${String(details.errorInstance ?? details.error).slice(0, 1500)}`] : []),
    ],
  };
}
