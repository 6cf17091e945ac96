// ambit's HTTP/2 session (shared/hbone/h2/) on loopback TCP: against itself, against Node's http2
// client and server in both directions, with flow control, a slow reader, GOAWAY, RST_STREAM and
// broken peers. TLS is left out here (the pool and server tests run it over mutual TLS): the
// session takes any byte stream.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import http2 from 'node:http2';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { H2Session } from '../../../shared/hbone/h2/session.js';
import type { H2Stream } from '../../../shared/hbone/h2/stream.js';
import { ErrorCode, H2SessionError, H2StreamError } from '../../../shared/hbone/h2/errors.js';
import { until } from '../until.js';

const windows = { streamWindow: 4 * 1024 * 1024, sessionWindow: 16 * 1024 * 1024 };

/** Every socket a test opened: destroyed at the end, so a half-open pair cannot keep the run alive. */
const opened = new Set<Socket>();
test.after(() => {
  for (const s of opened) s.destroy();
});

/** A TCP server on loopback whose connections go to `onSocket`, and a connected client socket. */
async function pair(onSocket: (s: Socket) => void): Promise<{ client: Socket; server: Server }> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    opened.add(s);
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  opened.add(client);
  await once(client, 'connect');
  return { client, server };
}

/** Ours on both ends; the server echoes every CONNECT stream unless `onStream` takes it. */
async function ours(onStream?: (s: H2Stream, headers: Record<string, unknown>) => void): Promise<{ client: H2Session; server: () => H2Session; close(): void }> {
  let serverSession: H2Session | undefined;
  const { client, server } = await pair((s) => {
    serverSession = new H2Session(s, 'server', windows);
    serverSession.on('error', () => undefined);
    serverSession.on('stream', (stream: H2Stream, headers: Record<string, unknown>) => {
      if (onStream) return onStream(stream, headers);
      stream.respond({ ':status': 200 });
      stream.pipe(stream);
    });
  });
  const session = new H2Session(client, 'client', windows);
  session.on('error', () => undefined);
  await until('the server session', () => serverSession !== undefined);
  return {
    client: session,
    server: () => serverSession!,
    close() {
      session.destroy();
      serverSession?.destroy();
      server.close();
    },
  };
}

function readAll(s: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    s.on('data', (c: Buffer) => parts.push(c));
    s.once('end', () => resolve(Buffer.concat(parts)));
    s.once('error', reject);
  });
}

function pattern(bytes: number): Buffer {
  const b = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 7 + (i >> 11)) & 0xff;
  return b;
}

test('ours to ours: a CONNECT answered 200, 20 MiB echoed intact, both ends announce 1 MiB frames', async () => {
  const t = await ours();
  try {
    const stream = t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80', forwarded: 'for=10.0.0.2' });
    const [headers] = (await once(stream, 'response')) as [Record<string, string>];
    assert.is(headers[':status'], '200');
    const data = pattern(20 * 1024 * 1024);
    const echoed = readAll(stream);
    stream.end(data);
    assert.ok((await echoed).equals(data));
    assert.is(t.client.remoteSettings.maxFrameSize, 1024 * 1024);
    assert.is(t.client.remoteSettings.initialWindowSize, 4 * 1024 * 1024);
    await until('the stream closed', () => stream.destroyed);
    assert.is(stream.rstCode, ErrorCode.NO_ERROR);
    assert.is(t.client.streamCount, 0);
  } finally {
    t.close();
  }
});

test('a slow reader: the sender stops at the stream window, nothing piles up, and all arrives once it reads', async () => {
  let serverStream: H2Stream | undefined;
  const t = await ours((s) => {
    s.respond({ ':status': 200 });
    s.pause();
    serverStream = s;
  });
  try {
    const stream = t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    await once(stream, 'response');
    const data = pattern(24 * 1024 * 1024);
    let written = 0;
    let ended = false;
    const pump = () => {
      while (written < data.length) {
        const chunk = data.subarray(written, written + 64 * 1024);
        written += chunk.length;
        if (!stream.write(chunk)) return;
      }
      if (!ended) {
        ended = true;
        stream.end();
      }
    };
    stream.on('drain', pump);
    pump();
    await new Promise((r) => setTimeout(r, 300));
    // The reader took nothing: it holds at most its stream window, the writer is held back.
    assert.ok(serverStream!.readableLength <= 4 * 1024 * 1024, `buffered ${serverStream!.readableLength}`);
    assert.ok(written < 8 * 1024 * 1024, `written ${written}`);
    assert.not.ok(ended);
    const got = readAll(serverStream!);
    serverStream!.resume();
    assert.ok((await got).equals(data));
  } finally {
    t.close();
  }
});

test("Node's http2 client opens a CONNECT tunnel through our server, with its indexed and Huffman-coded headers", async () => {
  const seen: Record<string, unknown>[] = [];
  const { server } = await pair((s) => {
    const ourSide = new H2Session(s, 'server', windows);
    ourSide.on('error', () => undefined);
    ourSide.on('stream', (stream: H2Stream, headers: Record<string, unknown>) => {
      seen.push(headers);
      stream.respond({ ':status': 200, 'x-answer': 'yes' });
      stream.pipe(stream);
    });
  });
  const node = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    for (let i = 0; i < 3; i++) {
      const s = node.request({ ':method': 'CONNECT', ':authority': '10.1.2.3:8080', forwarded: 'for=10.0.0.9;host=web.shop.svc.cluster.local', baggage: `k8s.pod.name=web-${i}` });
      const [headers] = (await once(s, 'response')) as [http2.IncomingHttpHeaders];
      assert.is(headers[':status'], 200);
      assert.is(headers['x-answer'], 'yes');
      const data = pattern(3 * 1024 * 1024 + i);
      const echoed = readAll(s);
      s.end(data);
      assert.ok((await echoed).equals(data), `stream ${i}`);
    }
    // The second and third requests reuse HPACK's dynamic table (indexed fields).
    assert.is(seen.length, 3);
    for (const [i, h] of seen.entries()) {
      assert.is(h[':method'], 'CONNECT');
      assert.is(h[':authority'], '10.1.2.3:8080');
      assert.is(h['forwarded'], 'for=10.0.0.9;host=web.shop.svc.cluster.local');
      assert.is(h['baggage'], `k8s.pod.name=web-${i}`);
    }
  } finally {
    node.destroy();
    server.close();
  }
});

test("our client through Node's http2 server: its 64 KiB windows and 16 KiB frames are respected, both ways", async () => {
  const server = http2.createServer();
  server.on('stream', (s, headers) => {
    s.respond({ ':status': headers[':method'] === 'CONNECT' ? 200 : 405 });
    s.pipe(s);
  });
  server.on('connection', (c: Socket) => opened.add(c));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const socket = connect({ port: (server.address() as AddressInfo).port, host: '127.0.0.1' });
  opened.add(socket);
  await once(socket, 'connect');
  const client = new H2Session(socket, 'client', windows);
  try {
    const s = client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:443' });
    const [headers] = (await once(s, 'response')) as [Record<string, string>];
    assert.is(headers[':status'], '200');
    const data = pattern(5 * 1024 * 1024);
    const echoed = readAll(s);
    s.end(data);
    assert.ok((await echoed).equals(data));
    assert.is(client.remoteSettings.maxFrameSize, undefined, 'Node does not raise SETTINGS_MAX_FRAME_SIZE');
    let answered = false;
    client.ping((err) => (answered = !err));
    await until('the PING answered', () => answered);
  } finally {
    client.destroy();
    server.close();
  }
});

test('RST_STREAM both ways: a cancel reaches the other end as aborted, a refusal as an error with its code', async () => {
  const streams: H2Stream[] = [];
  const t = await ours((s) => {
    streams.push(s);
    // A reset other than CANCEL is an error on this end too (as in Node's http2).
    s.on('error', () => undefined);
    if (streams.length === 2) return s.close(ErrorCode.REFUSED_STREAM);
    s.respond({ ':status': 200 });
  });
  try {
    const a = t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    await once(a, 'response');
    const aborted = once(streams[0]!, 'aborted');
    a.close(ErrorCode.CANCEL);
    await aborted;
    await until('the cancelled stream closed', () => streams[0]!.destroyed);
    assert.is(streams[0]!.rstCode, ErrorCode.CANCEL);
    const b = t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    const [err] = (await once(b, 'error')) as [H2StreamError];
    assert.instance(err, H2StreamError);
    assert.is(b.rstCode, ErrorCode.REFUSED_STREAM);
    assert.is(t.server().streamCount, 0);
  } finally {
    t.close();
  }
});

test('a refusal (a status with END_STREAM) closes the stream on both ends once the client ends its side', async () => {
  let serverStream: H2Stream | undefined;
  const t = await ours((s) => {
    serverStream = s;
    s.respond({ ':status': 403 }, { endStream: true });
    s.resume();
  });
  try {
    const s = t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    const [headers] = (await once(s, 'response')) as [Record<string, string>];
    assert.is(headers[':status'], '403');
    s.resume();
    s.end();
    await until('both ends closed', () => s.destroyed && serverStream?.destroyed);
    assert.is(s.rstCode, ErrorCode.NO_ERROR);
    assert.is(serverStream!.rstCode, ErrorCode.NO_ERROR);
    assert.is(t.server().streamCount, 0);
  } finally {
    t.close();
  }
});

test('GOAWAY: a closing server finishes the open stream, refuses new ones, and both ends close after', async () => {
  const t = await ours((s) => {
    s.respond({ ':status': 200 });
    s.pipe(s);
  });
  try {
    const open = t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' });
    await once(open, 'response');
    const goaway = once(t.client, 'goaway');
    t.server().close();
    const [code] = (await goaway) as [number];
    assert.is(code, ErrorCode.NO_ERROR);
    assert.throws(() => t.client.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:80' }), (e: unknown) => e instanceof H2SessionError);
    const echoed = readAll(open);
    open.end('still served');
    assert.is((await echoed).toString(), 'still served');
    await until('both sessions closed', () => t.client.destroyed && t.server().destroyed);
  } finally {
    t.close();
  }
});

test('a peer that breaks the protocol gets GOAWAY with the error: no preface, a frame over the limit, DATA past the window', async () => {
  const verdicts: number[] = [];
  const streamVerdicts: number[] = [];
  const { server } = await pair((s) => {
    const session = new H2Session(s, 'server', windows);
    session.on('error', (err: H2SessionError) => verdicts.push(err.h2Code));
    session.on('stream', (stream: H2Stream) => {
      stream.respond({ ':status': 200 });
      stream.on('error', (err: H2StreamError) => streamVerdicts.push(err.h2Code));
    });
  });
  const port = (server.address() as AddressInfo).port;
  const settings = Buffer.from('000000040000000000', 'hex');
  const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), settings]);
  const send = async (bytes: Buffer) => {
    const c = connect({ port, host: '127.0.0.1' });
    opened.add(c);
    c.on('error', () => undefined);
    c.resume();
    await once(c, 'connect');
    const closed = new Promise((r) => c.once('close', r));
    c.end(bytes);
    await closed;
  };
  try {
    await send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    // A PING frame header announcing 2 MiB, over our 1 MiB SETTINGS_MAX_FRAME_SIZE.
    await send(Buffer.concat([preface, Buffer.from('200000060000000000', 'hex')]));
    // A CONNECT on stream 1, then DATA beyond the 4 MiB stream window (5 frames of 1 MiB); the
    // client then closes its end.
    const connectBlock = Buffer.from([0x02 /* literal, :method */, 7, ...Buffer.from('CONNECT'), 0x01 /* :authority */, 11, ...Buffer.from('10.0.0.1:80')]);
    const headers = Buffer.concat([Buffer.from([0, 0, connectBlock.length, 1, 4, 0, 0, 0, 1]), connectBlock]);
    const mib = Buffer.alloc(1024 * 1024);
    const data = Buffer.concat([Buffer.from([0x10, 0, 0, 0, 0, 0, 0, 0, 1]), mib]);
    await send(Buffer.concat([preface, headers, data, data, data, data, data]));
    await until('the verdicts', () => verdicts.length >= 2 && streamVerdicts.length === 1);
    assert.equal(verdicts.slice(0, 2), [ErrorCode.PROTOCOL_ERROR, ErrorCode.FRAME_SIZE_ERROR]);
    // Past the stream's window (not the session's): the stream is reset, the session lives.
    assert.equal(streamVerdicts, [ErrorCode.FLOW_CONTROL_ERROR]);
  } finally {
    server.close();
  }
});

test.run();
