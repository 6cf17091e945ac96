// A minimal DER reader and writer for the CA's hot path: reading a CSR and writing a certificate
// from a fixed layout take microseconds this way, against hundreds with a schema-driven ASN.1
// library (scripts/bench/ca-issuance.ts measures both). Only what X.509 certificates and PKCS #10
// requests use is here; every read is bounds-checked, and malformed input throws DerError.
// The tests parse everything written here back with @peculiar/asn1-x509 and with openssl.

export class DerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DerError';
  }
}

export const Tag = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

/** Context-specific tags: constructed [n] (explicit) and primitive [n] (implicit). */
export const explicit = (n: number) => 0xa0 | n;
export const implicit = (n: number) => 0x80 | n;

// ---- writing ----

function lengthBytes(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  const body = contents.length === 1 ? contents[0]! : Buffer.concat(contents);
  return Buffer.concat([Buffer.from([tag]), lengthBytes(body.length), body]);
}

export const seq = (...c: Buffer[]) => tlv(Tag.sequence, ...c);

export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const bytes = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) bytes.unshift(0x80 | (v & 0x7f));
    out.push(...bytes);
  }
  return tlv(Tag.oid, Buffer.from(out));
}

/** A non-negative INTEGER from unsigned big-endian bytes. */
export function uint(bytes: Buffer): Buffer {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(Tag.integer, v[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(d: Date): Buffer {
  const iso = d.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '');
  return d.getUTCFullYear() < 2050 ? tlv(Tag.utcTime, Buffer.from(`${digits.slice(2)}Z`)) : tlv(Tag.generalizedTime, Buffer.from(`${digits}Z`));
}

export const bitString = (bytes: Buffer, unusedBits = 0) => tlv(Tag.bitString, Buffer.from([unusedBits]), bytes);
export const octetString = (bytes: Buffer) => tlv(Tag.octetString, bytes);
export const boolTrue = tlv(Tag.boolean, Buffer.from([0xff]));

// ---- reading ----

export interface Element {
  tag: number;
  /** Start of the whole element (tag byte) and end (exclusive) in the source buffer. */
  start: number;
  end: number;
  /** The contents. */
  value: Buffer;
  /** The whole element, tag and length included. */
  raw: Buffer;
}

export function read(buf: Buffer, at = 0, limit = buf.length): Element {
  if (at + 2 > limit) throw new DerError(`truncated element at byte ${at}`);
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let head = 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new DerError(`unsupported length form at byte ${at}`);
    if (at + 2 + n > limit) throw new DerError(`truncated length at byte ${at}`);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[at + 2 + i]!;
    head += n;
  }
  const end = at + head + len;
  if (end > limit) throw new DerError(`element at byte ${at} runs past its container`);
  return { tag, start: at, end, value: buf.subarray(at + head, end), raw: buf.subarray(at, end) };
}

/** The elements inside a constructed element. */
export function children(e: Element): Element[] {
  const out: Element[] = [];
  for (let at = 0; at < e.value.length; ) {
    const c = read(e.value, at);
    out.push(c);
    at = c.end;
  }
  return out;
}

export function expect(e: Element | undefined, tag: number, what: string): Element {
  if (!e || e.tag !== tag) throw new DerError(`${what}: expected tag 0x${tag.toString(16)}, found ${e ? `0x${e.tag.toString(16)}` : 'nothing'}`);
  return e;
}

export function oidText(e: Element): string {
  const b = e.value;
  if (b.length === 0) throw new DerError('empty OID');
  const parts = [Math.floor(b[0]! / 40), b[0]! % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i]! & 0x7f);
    if (!(b[i]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join('.');
}
