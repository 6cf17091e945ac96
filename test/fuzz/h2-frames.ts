// Raw HTTP/2 frames (RFC 9113 section 4) and HPACK literals (RFC 7541 section 6.2.2), written by hand
// so a fuzzer can send what node:http2 never would: frames out of order, on the wrong stream, with
// bad lengths, and header names and values it refuses. Also a minimal reader of the server's frames,
// enough to tell a 200 from anything else.

import { once } from 'node:events';
import { connect, type TLSSocket } from 'node:tls';

export const FrameType = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length & 0xffffff, 0, 3);
  head[3] = type & 0xff;
  head[4] = flags & 0xff;
  head.writeUInt32BE(streamId >>> 0, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an `n`-bit prefix, the prefix's high bits set to `first`. */
function hpackInt(value: number, n: number, first: number): Buffer {
  const max = (1 << n) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  for (value -= max; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) | 128);
  out.push(value);
  return Buffer.from(out);
}

function hpackString(s: Buffer): Buffer {
  return Buffer.concat([hpackInt(s.length, 7, 0), s]);
}

/** A header block of literals without indexing, new names, no Huffman: any bytes go through. */
export function headerBlock(headers: [string | Buffer, string | Buffer][]): Buffer {
  return Buffer.concat(headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(Buffer.from(name)), hpackString(Buffer.from(value))]));
}

export function settings(pairs: [number, number][], ack = false): Buffer {
  const p = Buffer.alloc(pairs.length * 6);
  pairs.forEach(([id, v], i) => {
    p.writeUInt16BE(id & 0xffff, i * 6);
    p.writeUInt32BE(v >>> 0, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, ack ? Flag.ACK : 0, 0, ack ? Buffer.alloc(0) : p);
}

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/** What a raw connection saw from the server: streams answered 200 or otherwise, resets, GOAWAY, close. */
export interface Seen {
  status200: Set<number>;
  otherHeaders: Set<number>;
  resets: Map<number, number>;
  goaway?: number;
  closed: boolean;
  bytes: number;
}

/** A TLS connection speaking raw frames, with the server's frames parsed as they arrive. */
export class RawH2 {
  readonly seen: Seen = { status200: new Set(), otherHeaders: new Set(), resets: new Map(), closed: false, bytes: 0 };
  private buf: Buffer = Buffer.alloc(0);
  private constructor(readonly socket: TLSSocket) {
    socket.on('data', (d: Buffer) => this.read(d));
    socket.on('error', () => undefined);
    socket.on('close', () => (this.seen.closed = true));
  }

  static async open(port: number, creds: { keyPem: string; certPem: string }): Promise<RawH2> {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'], key: creds.keyPem, cert: creds.certPem });
    await Promise.race([once(socket, 'secureConnect'), once(socket, 'close')]);
    return new RawH2(socket);
  }

  write(b: Buffer): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(b);
  }

  private read(d: Buffer): void {
    this.seen.bytes += d.length;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) return;
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const id = this.buf.readUInt32BE(5) & 0x7fffffff;
      const payload = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      if (type === FrameType.SETTINGS && !(flags & Flag.ACK)) this.write(settings([], true));
      else if (type === FrameType.HEADERS) {
        let block = payload;
        if (flags & Flag.PADDED) block = block.subarray(1, block.length - block[0]!);
        if (flags & Flag.PRIORITY) block = block.subarray(5);
        // Dynamic table size updates (001xxxxx) may come first. nghttp2 sends `:status: 200` as
        // the static table's entry 8, one byte 0x88; every other status is a literal.
        let i = 0;
        while (i < block.length && (block[i]! & 0xe0) === 0x20) i++;
        (block[i] === 0x88 ? this.seen.status200 : this.seen.otherHeaders).add(id);
      } else if (type === FrameType.RST_STREAM && payload.length === 4) this.seen.resets.set(id, payload.readUInt32BE(0));
      else if (type === FrameType.GOAWAY && payload.length >= 8) this.seen.goaway = payload.readUInt32BE(4);
    }
  }

  /** Whether stream `id` has its answer: headers, a reset, or the end of the session. */
  answered(id: number): boolean {
    return this.seen.status200.has(id) || this.seen.otherHeaders.has(id) || this.seen.resets.has(id) || this.seen.goaway !== undefined || this.seen.closed;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
