// HPACK (RFC 7541) for ambit's HTTP/2: a full decoder (static and dynamic tables, Huffman strings,
// table size updates), since stock peers (Node's http2, curl) index and Huffman-code their
// headers; and an encoder that uses the static table only (an exact match as an index, a known
// name as an index with its value as raw octets, anything else as raw octets) and never adds to a
// dynamic table, so it keeps no state beyond one size update. HBONE sends a handful of headers per
// stream, where a dynamic table would save a few bytes and cost state per session.

import { H2CompressionError } from './errors.js';
import { huffmanDecode } from './huffman.js';

/** RFC 7541 Appendix A; index 1 is the first entry. */
export const staticTable: readonly (readonly [string, string])[] = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** An entry's size in the dynamic table: its octets plus 32 (RFC 7541 section 4.1). */
const entryOverhead = 32;

export type HeaderList = [name: string, value: string][];

export class HpackDecoder {
  /** Oldest first; dynamic index 1 is the last element. */
  private readonly entries: [string, string][] = [];
  private size = 0;
  private maxSize: number;
  private scratch = Buffer.allocUnsafe(256);
  private pos = 0;

  /** `settingsMaxSize`: our SETTINGS_HEADER_TABLE_SIZE, the most a size update may ask for. */
  constructor(private readonly settingsMaxSize = 4096) {
    this.maxSize = settingsMaxSize;
  }

  /** The dynamic table's entries, newest first, and its size (for tests against RFC 7541 Appendix C). */
  table(): { entries: [string, string][]; size: number } {
    return { entries: [...this.entries].reverse(), size: this.size };
  }

  /**
   * Decodes one complete header block. `maxListSize` bounds the decoded list (SETTINGS_MAX_HEADER_LIST_SIZE
   * sizes); past it the rest of the block is still decoded, to keep the table in step, and
   * `tooLarge` is set for the caller to refuse the stream.
   */
  decode(block: Buffer, maxListSize = Infinity): { headers: HeaderList; tooLarge: boolean } {
    const headers: HeaderList = [];
    let listSize = 0;
    let tooLarge = false;
    this.pos = 0;
    let first = true;
    while (this.pos < block.length) {
      const b = block[this.pos]!;
      let name: string;
      let value: string;
      if (b & 0x80) {
        [name, value] = this.entry(this.integer(block, 7));
      } else if ((b & 0xe0) === 0x20) {
        // Only at the start of a block (RFC 7541 section 4.2).
        if (!first) throw new H2CompressionError('a dynamic table size update follows a header field');
        const size = this.integer(block, 5);
        if (size > this.settingsMaxSize) throw new H2CompressionError(`a dynamic table size update to ${size} exceeds SETTINGS_HEADER_TABLE_SIZE ${this.settingsMaxSize}`);
        this.maxSize = size;
        this.evict(0);
        continue;
      } else {
        const indexing = (b & 0xc0) === 0x40;
        const index = this.integer(block, indexing ? 6 : 4);
        name = index === 0 ? this.string(block) : this.entry(index)[0];
        value = this.string(block);
        if (indexing) this.insert(name, value);
      }
      first = false;
      listSize += name.length + value.length + entryOverhead;
      if (listSize > maxListSize) tooLarge = true;
      else headers.push([name, value]);
    }
    return { headers, tooLarge };
  }

  private entry(index: number): readonly [string, string] {
    if (index === 0) throw new H2CompressionError('a header field refers to index 0');
    if (index <= staticTable.length) return staticTable[index - 1]!;
    const e = this.entries[this.entries.length - (index - staticTable.length)];
    if (!e) throw new H2CompressionError(`a header field refers to index ${index}, past the dynamic table`);
    return e;
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + entryOverhead;
    // An entry larger than the table empties it and is not added (RFC 7541 section 4.4).
    this.evict(size);
    if (size <= this.maxSize) {
      this.entries.push([name, value]);
      this.size += size;
    }
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.entries.length && this.size + room > this.maxSize) {
      const [n, v] = this.entries.shift()!;
      this.size -= n.length + v.length + entryOverhead;
    }
  }

  /** An integer with an N-bit prefix (RFC 7541 section 5.1), from this.pos. */
  private integer(block: Buffer, prefixBits: number): number {
    const max = (1 << prefixBits) - 1;
    let value = block[this.pos++]! & max;
    if (value < max) return value;
    let shift = 0;
    for (;;) {
      if (this.pos >= block.length) throw new H2CompressionError('a header block ends inside an integer');
      const b = block[this.pos++]!;
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if (!(b & 0x80)) break;
      if (shift > 28) throw new H2CompressionError('a header block holds an integer over 2^28');
    }
    return value;
  }

  /** A string literal (RFC 7541 section 5.2), raw or Huffman-coded, as latin1 (one char per octet). */
  private string(block: Buffer): string {
    if (this.pos >= block.length) throw new H2CompressionError('a header block ends before a string');
    const huffman = (block[this.pos]! & 0x80) !== 0;
    const length = this.integer(block, 7);
    const start = this.pos;
    const end = start + length;
    if (end > block.length) throw new H2CompressionError('a header string runs past the end of its block');
    this.pos = end;
    if (!huffman) return block.toString('latin1', start, end);
    // The shortest code is 5 bits: at most 8/5 output octets per input octet.
    const most = Math.ceil((length * 8) / 5);
    if (this.scratch.length < most) this.scratch = Buffer.allocUnsafe(most);
    const n = huffmanDecode(block, start, end, this.scratch, 0);
    return this.scratch.toString('latin1', 0, n);
  }
}

/** Static-table indexes: of a whole field, and of a name (its first entry). */
const fieldIndex = new Map<string, number>();
const nameIndex = new Map<string, number>();
for (const [i, [n, v]] of staticTable.entries()) {
  if (v) fieldIndex.set(`${n}\0${v}`, i + 1);
  if (!nameIndex.has(n)) nameIndex.set(n, i + 1);
}

export class HpackEncoder {
  /**
   * Whether the next block starts with a dynamic table size update to 0: our table is always empty,
   * and a peer that lowered SETTINGS_HEADER_TABLE_SIZE waits for one (RFC 7541 section 4.2).
   */
  private sizeUpdate = true;

  /** The peer's SETTINGS_HEADER_TABLE_SIZE changed. */
  tableSizeChanged(): void {
    this.sizeUpdate = true;
  }

  /** One header block for `fields` (names already lowercase). */
  encode(fields: HeaderList): Buffer {
    let length = this.sizeUpdate ? 1 : 0;
    for (const [n, v] of fields) length += 12 + n.length + v.length;
    const out = Buffer.allocUnsafe(length);
    let at = 0;
    if (this.sizeUpdate) {
      out[at++] = 0x20;
      this.sizeUpdate = false;
    }
    for (const [n, v] of fields) {
      const whole = v ? fieldIndex.get(`${n}\0${v}`) : undefined;
      if (whole) {
        at = writeInteger(out, at, whole, 7, 0x80);
        continue;
      }
      // Literal without indexing (section 6.2.2): the name by index where the static table has it.
      const name = nameIndex.get(n);
      if (name) at = writeInteger(out, at, name, 4, 0x00);
      else {
        out[at++] = 0x00;
        at = writeString(out, at, n);
      }
      at = writeString(out, at, v);
    }
    return out.subarray(0, at);
  }
}

function writeInteger(out: Buffer, at: number, value: number, prefixBits: number, flags: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[at++] = flags | value;
    return at;
  }
  out[at++] = flags | max;
  value -= max;
  while (value >= 0x80) {
    out[at++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

function writeString(out: Buffer, at: number, s: string): number {
  at = writeInteger(out, at, s.length, 7, 0x00);
  return at + out.write(s, at, 'latin1');
}
