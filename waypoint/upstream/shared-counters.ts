// Counters every event loop of the waypoint shares, as Envoy's workers share a cluster's circuit
// breaker counts and a local rate limit's tokens (atomics, one process-wide figure): a table in a
// SharedArrayBuffer that the main thread makes and hands to each worker thread, where a key (a
// destination Service's port, a rate limit's bucket) names a slot of a few Int32 fields that
// Atomics reads and changes. A slot is claimed once per key, by any thread, and never freed: the
// table holds `slots` keys at most (a destination Service's port, a rate-limit bucket, an endpoint
// under outlier detection: each ever seen), after which a new key gets fields of its own thread, so
// that its limits count per event loop (logged once, counted in ambit_waypoint_shared_keys_past_full_total).
//
// A key is claimed by its 64-bit hash (two 32-bit FNV-1a variants, never 0), so two threads asking for
// the same key find the same slot; two keys of the same 64-bit hash would share one (about 1 in 10^15
// for a table of 16,384 keys).

/** Fields per slot. */
export const slotWidth = 8;
const defaultSlots = 16_384;

export class SharedCounters {
  readonly buffer: SharedArrayBuffer;
  private readonly keys: BigInt64Array;
  private readonly slots: number;
  /** Slots found or claimed by this thread, by key. */
  private readonly found = new Map<string, Int32Array>();
  private full = false;
  private readonly onFull: ((key: string) => void) | undefined;

  /** A new table (`slots` keys), or, with `buffer`, the one another thread made. */
  constructor(o: { slots?: number; buffer?: SharedArrayBuffer; onFull?: (key: string) => void } = {}) {
    const slots = o.buffer ? o.buffer.byteLength / (8 + slotWidth * 4) : (o.slots ?? defaultSlots);
    this.slots = slots;
    this.buffer = o.buffer ?? new SharedArrayBuffer(slots * (8 + slotWidth * 4));
    this.keys = new BigInt64Array(this.buffer, 0, slots);
    this.onFull = o.onFull;
  }

  /**
   * The `slotWidth` Int32 fields of `key`, shared with every thread that asks for the same key (zero
   * when first claimed). Once the table is full, fields of this thread alone.
   */
  slot(key: string): Int32Array {
    const known = this.found.get(key);
    if (known) return known;
    // Full: no probing (a key another loop claimed since would be found only by a whole scan).
    if (this.full) return this.own();
    const unsigned = hash64(key);
    const hash = BigInt.asIntN(64, unsigned);
    let i = Number(unsigned % BigInt(this.slots));
    for (let probes = 0; probes < this.slots; probes++, i = (i + 1) % this.slots) {
      const held = Atomics.compareExchange(this.keys, i, 0n, hash);
      if (held !== 0n && held !== hash) continue;
      const fields = new Int32Array(this.buffer, this.slots * 8 + i * slotWidth * 4, slotWidth);
      this.found.set(key, fields);
      return fields;
    }
    this.full = true;
    this.onFull?.(key);
    return this.own();
  }

  /** Keys this thread could not place since the table filled (each given fields of its own). */
  pastFull = 0;

  /** Slots claimed in the whole table (read at a scrape: a scan of the keys). */
  used(): number {
    let n = 0;
    for (let i = 0; i < this.slots; i++) if (Atomics.load(this.keys, i) !== 0n) n++;
    return n;
  }

  get capacity(): number {
    return this.slots;
  }

  /** Fields of this thread alone, not remembered here: the caller keeps them as long as it needs them. */
  private own(): Int32Array {
    this.pastFull++;
    return new Int32Array(slotWidth);
  }
}

/** The same slot as 64-bit fields (`slotWidth / 2` of them), for a key that is only ever read this way. */
export function as64(fields: Int32Array): BigInt64Array {
  return new BigInt64Array(fields.buffer, fields.byteOffset, slotWidth / 2);
}

/** Two 32-bit FNV-1a hashes of `key` (different offset bases) as one non-zero 64-bit value. */
function hash64(key: string): bigint {
  let a = 0x811c9dc5;
  let b = 0x050c5d1f;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  const h = (BigInt(a >>> 0) << 32n) | BigInt(b >>> 0);
  return h === 0n ? 1n : h;
}

/** Adds one to field `i` unless it has reached `limit` (compare-and-swap: never past it, even for a moment). */
export function takeBelow(fields: Int32Array, i: number, limit: number): boolean {
  for (;;) {
    const now = Atomics.load(fields, i);
    if (now >= limit) return false;
    if (Atomics.compareExchange(fields, i, now, now + 1) === now) return true;
  }
}

/** Takes one from field `i`, never below zero. */
export function giveBack(fields: Int32Array, i: number): void {
  for (;;) {
    const now = Atomics.load(fields, i);
    if (now <= 0) return;
    if (Atomics.compareExchange(fields, i, now, now - 1) === now) return;
  }
}
