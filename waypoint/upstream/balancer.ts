// Which endpoint of one Service a request goes to: DestinationRule's loadBalancer (ROUND_ROBIN,
// LEAST_REQUEST, RANDOM, or consistentHash on a header, a cookie, the source IP or a query
// parameter) over the endpoints outlier detection has not ejected, the client's node first when
// locality load balancing is on. Ejection itself is outlier.ts's; the hash tables are consistent-hash.ts's.
//
// Locality: Istio fails over region, then zone, then subzone. ambit's nodes have no zones, so the one
// level it has is the node: with localityLbSetting.enabled, a request goes to a usable endpoint on the
// client's node when there is one and to any usable endpoint otherwise (Istio's failover, one level deep).
//
// Panic (Envoy's healthy_panic_threshold, which Istio sets from outlierDetection.minHealthPercent):
// when fewer than that percent of the endpoints are healthy, ejections are ignored and every endpoint
// is used. At 0 (Istio's default) there is no panic: with every endpoint ejected, pick answers
// nothing and the proxy answers 503 with response flag UH (no healthy upstream).

import { defaultMaglevTableSize, defaultMinimumRingSize, hash32, type HashTable, Maglev, Ring } from './consistent-hash.js';
import { type Endpoint, endpointKey, type Random } from './types.js';

export type Algorithm = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV';

/** What a consistent hash is computed from (DestinationRule's consistentHash). */
export type HashOn =
  | { type: 'header'; name: string }
  /** ttlSeconds: when set, a missing cookie is generated (0: a session cookie, as Envoy does). */
  | { type: 'cookie'; name: string; path?: string; ttlSeconds?: number }
  | { type: 'sourceIp' }
  | { type: 'queryParameter'; name: string };

export interface BalancerOptions {
  algorithm: Algorithm;
  /** Required for RING_HASH and MAGLEV. */
  hashOn?: HashOn;
  /** Ring: minimum ring size (Envoy's 1024 by default); Maglev: table size (65537). */
  tableSize?: number;
  /** localityLbSetting.enabled: endpoints on the client's node first. */
  locality?: boolean;
  /** outlierDetection.minHealthPercent; 0 turns panic off. */
  panicThresholdPercent?: number;
}

/** What the balancer reads of a request; the proxy implements it over its own request object. */
export interface PickRequest {
  /** A request header by lower-case name (the first value when repeated). */
  header(name: string): string | undefined;
  cookie(name: string): string | undefined;
  queryParameter(name: string): string | undefined;
  /** The client's address, as the waypoint learnt it from HBONE. */
  readonly sourceIp?: string;
  /** The node the client runs on, for locality. */
  readonly clientNode?: string;
}

/** Which endpoints are ejected; `version` changes whenever the answer does (outlier.ts). */
export interface Health {
  readonly version: number;
  isEjected(key: string): boolean;
}

export interface Pick {
  readonly endpoint: Endpoint;
  /** `ip:port`, the endpoint's name for outlier detection and the access log. */
  readonly key: string;
  /**
   * A Set-Cookie header value to add to the response: the hash cookie was missing and its ttl says
   * to make one, so the client's next request lands on the same endpoint.
   */
  readonly setCookie?: string;
}

class Host implements Pick {
  readonly key: string;
  /** Requests in flight, for LEAST_REQUEST. */
  active = 0;
  constructor(readonly endpoint: Endpoint) {
    this.key = endpointKey(endpoint);
  }
}

/** Envoy's host_selection_retry_max_attempts as Istio sets it: tries to avoid the previous host on a retry. */
const avoidAttempts = 5;

export class Balancer {
  private hosts: Host[] = [];
  private readonly byKey = new Map<string, Host>();
  private endpointsVersion = 0;
  // The view of usable hosts, recomputed when endpoints or health change.
  private viewVersion = -1;
  private viewHealth = -1;
  private usable: Host[] = [];
  private readonly byNode = new Map<string, Host[]>();
  private readonly tables = new Map<string, HashTable>();
  private inPanic = false;
  private next = 0;

  constructor(
    private readonly options: BalancerOptions,
    private readonly random: Random,
    private readonly health?: Health,
  ) {
    if ((options.algorithm === 'RING_HASH' || options.algorithm === 'MAGLEV') && !options.hashOn) {
      throw new Error(`a ${options.algorithm} balancer needs hashOn`);
    }
  }

  /** The Service's endpoints now; in-flight counts of endpoints that stay are kept. */
  setEndpoints(endpoints: readonly Endpoint[]): void {
    const hosts: Host[] = [];
    const seen = new Set<string>();
    for (const e of endpoints) {
      const key = endpointKey(e);
      if (seen.has(key)) continue;
      seen.add(key);
      const old = this.byKey.get(key);
      hosts.push(old && old.endpoint.node === e.node ? old : new Host(e));
    }
    this.byKey.clear();
    for (const h of hosts) this.byKey.set(h.key, h);
    this.hosts = hosts;
    this.endpointsVersion++;
  }

  get endpoints(): readonly Endpoint[] {
    return this.hosts.map((h) => h.endpoint);
  }

  /** Whether the last pick found too few healthy endpoints and used them all (Envoy's panic mode). */
  get panic(): boolean {
    this.refresh();
    return this.inPanic;
  }

  /**
   * The endpoint for this request, or undefined when none is usable (no endpoints, or all ejected).
   * `avoid` is the endpoint of the previous try on a retry: another is chosen when one is at hand,
   * except under consistent hashing, where the key's endpoint is the point (Istio does the same).
   */
  pick(request: PickRequest, avoid?: string): Pick | undefined {
    this.refresh();
    const candidates = this.candidates(request.clientNode);
    const n = candidates.length;
    if (n === 0) return undefined;
    const algorithm = this.options.algorithm;
    if (algorithm === 'RING_HASH' || algorithm === 'MAGLEV') return this.pickByHash(request, candidates);
    let host = this.pickOnce(algorithm, candidates);
    for (let i = 1; avoid !== undefined && host.key === avoid && n > 1 && i < avoidAttempts; i++) host = this.pickOnce(algorithm, candidates);
    return host;
  }

  /** A request to `pick`'s endpoint began; pair with `finished`. */
  started(pick: Pick): void {
    const host = this.byKey.get(pick.key);
    if (host) host.active++;
  }

  finished(pick: Pick): void {
    const host = this.byKey.get(pick.key);
    if (host && host.active > 0) host.active--;
  }

  private pickOnce(algorithm: Algorithm, candidates: Host[]): Host {
    const n = candidates.length;
    if (algorithm === 'RANDOM') return candidates[Math.floor(this.random() * n)]!;
    if (algorithm === 'LEAST_REQUEST') {
      // Envoy's default for equal weights: the less busy of two endpoints drawn at random.
      const a = candidates[Math.floor(this.random() * n)]!;
      const b = candidates[Math.floor(this.random() * n)]!;
      return b.active < a.active ? b : a;
    }
    const host = candidates[this.next % n]!;
    this.next = (this.next + 1) % 0x7fffffff;
    return host;
  }

  private pickByHash(request: PickRequest, candidates: Host[]): Pick {
    const on = this.options.hashOn!;
    let value: string | undefined;
    let setCookie: string | undefined;
    switch (on.type) {
      case 'header':
        value = request.header(on.name);
        break;
      case 'sourceIp':
        value = request.sourceIp;
        break;
      case 'queryParameter':
        value = request.queryParameter(on.name);
        break;
      case 'cookie':
        value = request.cookie(on.name);
        if (value === undefined && on.ttlSeconds !== undefined) {
          value = this.cookieValue();
          setCookie = `${on.name}=${value}${on.path ? `; Path=${on.path}` : ''}${on.ttlSeconds > 0 ? `; Max-Age=${on.ttlSeconds}` : ''}; HttpOnly`;
        }
        break;
    }
    // Envoy: a request without its hash key goes to a random endpoint.
    if (value === undefined) return candidates[Math.floor(this.random() * candidates.length)]!;
    const host = candidates[this.table(candidates).lookup(hash32(value))]!;
    return setCookie === undefined ? host : { endpoint: host.endpoint, key: host.key, setCookie };
  }

  /**
   * A fresh cookie value: 64 random bits in hex. Envoy derives it from the client's address; behind a
   * waypoint every user of one frontend pod has the same address, so a random value spreads them.
   */
  private cookieValue(): string {
    const hi = Math.floor(this.random() * 0x100000000);
    const lo = Math.floor(this.random() * 0x100000000);
    return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
  }

  private table(candidates: Host[]): HashTable {
    // Keyed by the candidate set: all usable endpoints, or one node's.
    const id = candidates === this.usable ? '' : `node/${candidates[0]!.endpoint.node}`;
    let table = this.tables.get(id);
    if (!table) {
      const keys = candidates.map((h) => h.key);
      table = this.options.algorithm === 'MAGLEV' ? new Maglev(keys, this.options.tableSize ?? defaultMaglevTableSize) : new Ring(keys, this.options.tableSize ?? defaultMinimumRingSize);
      this.tables.set(id, table);
    }
    return table;
  }

  private candidates(clientNode: string | undefined): Host[] {
    if (this.options.locality && clientNode !== undefined) {
      const near = this.byNode.get(clientNode);
      if (near) return near;
    }
    return this.usable;
  }

  private refresh(): void {
    const healthVersion = this.health?.version ?? 0;
    if (this.viewVersion === this.endpointsVersion && this.viewHealth === healthVersion) return;
    this.viewVersion = this.endpointsVersion;
    this.viewHealth = healthVersion;
    const healthy = this.health ? this.hosts.filter((h) => !this.health!.isEjected(h.key)) : this.hosts;
    const threshold = this.options.panicThresholdPercent ?? 0;
    this.inPanic = this.hosts.length > 0 && healthy.length * 100 < threshold * this.hosts.length;
    this.usable = this.inPanic ? this.hosts : healthy;
    this.byNode.clear();
    for (const h of this.usable) {
      const list = this.byNode.get(h.endpoint.node);
      if (list) list.push(h);
      else this.byNode.set(h.endpoint.node, [h]);
    }
    this.tables.clear();
  }
}

/** The value of cookie `name` in a Cookie header, as a proxy implementing PickRequest.cookie needs it. */
export function cookieValue(cookieHeader: string | undefined, name: string): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    const value = part.slice(eq + 1).trim();
    return value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1) : value;
  }
  return undefined;
}
