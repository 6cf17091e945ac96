// The consistent-hash tables behind DestinationRule's consistentHash: Envoy's ring hash (each
// endpoint at many points on a 32-bit ring, a key goes to the next point clockwise) and Maglev (a
// lookup table each endpoint fills by its own permutation). Both move only about 1/n of the keys when
// one of n endpoints comes or goes. Which key to hash is the balancer's business (balancer.ts).

/** A 32-bit hash with good avalanche: FNV-1a over the UTF-16 code units, then murmur3's finaliser. */
export function hash32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface HashTable {
  /** Index (into the keys it was built from) of the endpoint that owns `hash`. */
  lookup(hash: number): number;
}

/** Envoy's defaults: a ring of at least 1024 points, Maglev tables of 65537 entries (a prime). */
export const defaultMinimumRingSize = 1024;
export const defaultMaglevTableSize = 65537;
const pointBudget = 1 << 18;

/** Envoy's ring hash over endpoints named by `keys` (ip:port), every endpoint with equal weight. */
export class Ring implements HashTable {
  private readonly points: Uint32Array;
  private readonly owners: Uint32Array;

  constructor(keys: readonly string[], minimumRingSize = defaultMinimumRingSize) {
    const n = keys.length;
    // Envoy gives each endpoint ringSize/n points, so when one goes every other gains points and
    // takes keys from its neighbours. Here each keeps minimumRingSize points (fewer only past a
    // 2^18-point ring, that is beyond 256 endpoints at Envoy's 1024), so only the leaver's keys move.
    const cap = Math.max(minimumRingSize, pointBudget);
    const perHost = n === 0 ? 0 : Math.max(1, Math.ceil(minimumRingSize / n), Math.min(minimumRingSize, Math.floor(cap / n)));
    const pairs: [number, number][] = [];
    for (let i = 0; i < n; i++) for (let r = 0; r < perHost; r++) pairs.push([hash32(`${keys[i]}_${r}`), i]);
    // Ties broken by endpoint key, so the ring is the same whatever order the endpoints came in.
    pairs.sort((a, b) => a[0] - b[0] || (keys[a[1]]! < keys[b[1]]! ? -1 : 1));
    this.points = Uint32Array.from(pairs, (p) => p[0]);
    this.owners = Uint32Array.from(pairs, (p) => p[1]);
  }

  lookup(hash: number): number {
    const points = this.points;
    if (points.length === 0) return -1;
    // The first point at or after the hash, wrapping round to the first.
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < hash) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === points.length ? 0 : lo]!;
  }
}

/** Maglev (Eisenbud et al., 2016) as Envoy builds it: each endpoint claims slots along its own permutation. */
export class Maglev implements HashTable {
  private readonly table: Int32Array;

  constructor(keys: readonly string[], tableSize = defaultMaglevTableSize) {
    // Each permutation covers every slot only when the size is prime (Envoy requires one); round up.
    const m = nextPrime(tableSize);
    this.table = new Int32Array(keys.length === 0 ? 0 : m).fill(-1);
    if (keys.length === 0) return;
    // Sorted, so the table does not depend on the order the endpoints came in.
    const order = keys.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : 1));
    const offset = order.map((i) => hash32(keys[i]!) % m);
    const skip = order.map((i) => (hash32(keys[i]!, 0x9747b28c) % (m - 1)) + 1);
    const next = new Array<number>(order.length).fill(0);
    let filled = 0;
    while (filled < m) {
      for (let j = 0; j < order.length && filled < m; j++) {
        let slot = (offset[j]! + next[j]! * skip[j]!) % m;
        while (this.table[slot] !== -1) {
          next[j]!++;
          slot = (offset[j]! + next[j]! * skip[j]!) % m;
        }
        this.table[slot] = order[j]!;
        next[j]!++;
        filled++;
      }
    }
  }

  lookup(hash: number): number {
    return this.table.length === 0 ? -1 : this.table[hash % this.table.length]!;
  }
}

function nextPrime(n: number): number {
  for (let c = Math.max(2, Math.ceil(n)); ; c++) {
    let prime = true;
    for (let d = 2; d * d <= c; d++) {
      if (c % d === 0) {
        prime = false;
        break;
      }
    }
    if (prime) return c;
  }
}
