// The node proxy, composed: the resolver, the HBONE pool (client) and listener (15008, server),
// the policy engine fed from the pushed config, the table of live connections, and what telemetry
// and the query API read of them. The capture manager hands it connections (outbound on a pod's
// 15001, plaintext inbound on its 15006); HBONE tunnels arrive on the node's 15008.

import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Logger } from '../../shared/log.js';
import { TrustBundle } from '../../shared/identity/svid.js';
import type { AgentState } from '../state/state.js';
import type { CapturedPod, CaptureHandlers } from '../capture/manager.js';
import type { WorkloadCertificates } from '../identity/manager.js';
import { Authorizer, PeerAuthenticator } from '../../shared/policy/index.js';
import { closedFields, type ConnectionInfo, ConnectionTable, refusedFields, type ResponseFlags, type TrackedConnection } from './connections.js';
import { createHboneServer, type HboneServer, type HboneServerLimits } from '../../shared/hbone/server.js';
import { hbonePort } from '../../shared/hbone/protocol.js';
import { serviceKey } from '../../shared/protocol/config.js';
import { handlePlaintext, handleTunnel, recheckConnections, waypointOnly, type InboundContext } from './inbound.js';
import { handleOutbound, identityOf, serverName, type OutboundContext } from './outbound.js';
import { principal, spiffeId } from '../../shared/identity/spiffe.js';
import { HbonePool } from '../../shared/hbone/pool.js';
import { Resolver, type ActiveCounts, type Resolution } from './resolve.js';

/**
 * Per captured pod and direction, as `ambit query NODE connections` shows them. Bytes are named as
 * Istio names them (agent/proxy/connections.ts): `received` is the request, `sent` the response.
 */
export interface PodCounters {
  opened: number;
  closed: number;
  /** Connections that could not be forwarded (not those denied). */
  failed: number;
  sent: number;
  received: number;
}

export interface ProxyEvents {
  opened?(c: TrackedConnection): void;
  closed?(c: TrackedConnection): void;
  /** A connection denied or not forwarded, with what was known of it then. */
  refused?(c: ConnectionInfo, flags: Exclude<ResponseFlags, '-'>): void;
  denied?(reason: string): void;
  failed?(direction: 'outbound' | 'inbound', reason: string): void;
}

export interface ProxyOptions {
  state: AgentState;
  certificates: WorkloadCertificates;
  trustDomain: string;
  rootNamespace: string;
  /** The captured pod at an address (the capture manager's). */
  podAt(ip: string): CapturedPod | undefined;
  log: Logger;
  access: Logger;
  limits?: Partial<HboneServerLimits>;
  events?: ProxyEvents;
  /** This event loop's place among the agent's workers (agent/workers/): connection ids stay unique across them. */
  worker?: { index: number; count: number };
}

export class NodeProxy {
  readonly connections: ConnectionTable;
  readonly resolver: Resolver;
  readonly authorizer: Authorizer;
  readonly peerAuthentication: PeerAuthenticator;
  readonly pool: HbonePool;
  readonly server: HboneServer;
  private readonly active: ActiveCounts = new Map();
  private readonly perPod = new Map<string, { outbound: PodCounters; inbound: PodCounters }>();
  /** Connections this event loop has carried since it started (`ambit query NODE workers`). */
  private openedTotal = 0;
  /** Client sockets held open now: a pod's 15001 (source), its 15006 and the node's 15008 (destination). */
  readonly openSockets = { source: 0, destination: 0 };
  private policyRevision = -1;
  private bundle: { revision: number; value: TrustBundle } | undefined;
  private readonly outboundCtx: OutboundContext;
  private readonly inboundCtx: InboundContext;

  constructor(private readonly o: ProxyOptions) {
    this.connections = new ConnectionTable({
      opened: (c) => {
        this.openedTotal++;
        const side = this.sideOf(c);
        if (side) side.opened++;
        const key = `${c.destination.ip}:${c.destination.port}`;
        if (c.reporter === 'source') this.active.set(key, (this.active.get(key) ?? 0) + 1);
        o.events?.opened?.(c);
      },
      closed: (c, durationMs, error) => {
        const side = this.sideOf(c);
        if (side) {
          side.closed++;
          side.received += c.bytes.request();
          side.sent += c.bytes.response();
        }
        const key = `${c.destination.ip}:${c.destination.port}`;
        if (c.reporter === 'source') {
          const n = (this.active.get(key) ?? 1) - 1;
          if (n > 0) this.active.set(key, n);
          else this.active.delete(key);
        }
        o.events?.closed?.(c);
        this.o.access.info(closedFields(c, durationMs, error), 'connection');
      },
      // The same recorder for connections that never ran: metrics, the pod's counters, the access log.
      refused: (c, flags, reason) => {
        const side = this.sideOf(c);
        if (side && flags !== 'DENY') side.failed++;
        o.events?.refused?.(c, flags);
        this.o.access.info(refusedFields(c, flags, reason), flags === 'DENY' ? 'connection denied' : 'connection failed');
      },
    }, { first: (o.worker?.index ?? 0) + 1, step: o.worker?.count ?? 1 });
    this.resolver = new Resolver(o.state, this.active);
    this.authorizer = new Authorizer(o.rootNamespace);
    this.peerAuthentication = new PeerAuthenticator(o.rootNamespace);
    const trustBundle = () => this.trustBundle();
    this.pool = new HbonePool({ trustBundle });
    this.server = createHboneServer({
      trustBundle,
      secureContext: (name) => this.contextFor(name),
      onTunnel: (t) => handleTunnel(this.inboundCtx, t),
      log: o.log,
      ...(o.limits ? { limits: o.limits } : {}),
    });
    // Every TCP socket accepted on 15008, handshaking or carrying tunnels (as ztunnel counts its inbound).
    this.server.server.on('connection', (socket: Socket) => this.holdSocket('destination', socket));
    const failed = (direction: 'outbound' | 'inbound') => (reason: string) => o.events?.failed?.(direction, reason);
    this.outboundCtx = { resolver: this.resolver, pool: this.pool, certificates: o.certificates, connections: this.connections, trustDomain: o.trustDomain, log: o.log, failed: failed('outbound'), enrolled: (w) => o.state.isEnrolled(w) };
    this.inboundCtx = {
      resolver: this.resolver,
      authorizer: this.authorizer,
      peerAuthentication: this.peerAuthentication,
      connections: this.connections,
      localPod: (ip) => {
        const pod = o.podAt(ip);
        return pod ? { workload: this.currentWorkload(pod), nsFd: pod.nsFd } : undefined;
      },
      trustDomain: o.trustDomain,
      log: o.log,
      access: o.access,
      denied: (reason) => o.events?.denied?.(reason),
      failed: failed('inbound'),
    };
    o.state.on('config', () => this.onConfig());
    this.onConfig();
  }

  async listen(host: string, port = hbonePort): Promise<void> {
    await this.server.listen(port, host);
  }

  /**
   * No new tunnels in: 15008 stops listening and every session gets GOAWAY; the open tunnels run
   * for up to `graceMs`. Resolves when the last session has ended.
   */
  stopAccepting(graceMs: number): Promise<void> {
    return this.server.close(graceMs);
  }

  /** No new tunnels either way; open ones run for up to `graceMs`. */
  async close(graceMs = 1000): Promise<void> {
    this.pool.close();
    await this.server.close(graceMs);
  }

  readonly handlers: CaptureHandlers = {
    outbound: (pod, socket) => this.outbound(pod, socket),
    inbound: (pod, socket) => {
      this.holdSocket('destination', socket);
      handlePlaintext(this.inboundCtx, { workload: this.currentWorkload(pod), nsFd: pod.nsFd }, socket, (s) => pod.redirect.inboundDestination(s));
    },
  };

  /** Counts a client socket as open until it closes. */
  private holdSocket(reporter: 'source' | 'destination', socket: Socket): void {
    this.openSockets[reporter]++;
    socket.once('close', () => this.openSockets[reporter]--);
  }

  private outbound(pod: CapturedPod, socket: Socket): void {
    this.holdSocket('source', socket);
    handleOutbound(this.outboundCtx, { workload: this.currentWorkload(pod), nsFd: pod.nsFd, destinationOf: (s) => pod.redirect.outboundDestination(s) }, socket);
  }

  /** A captured pod's entry as last pushed, not as it was at capture: policy selectors read its labels. */
  private currentWorkload(pod: CapturedPod) {
    return this.resolver.workloadAt(pod.workload.ip) ?? pod.workload;
  }

  /**
   * `ambit explain`, the source's half: what this agent would do with a connection from its pod at
   * `sourceIp` to `ip:port`, decided by the code the proxy runs (nothing is connected).
   */
  explainOutbound(p: { sourceIp: string; ip: string; port: number }) {
    const source = this.resolver.workloadAt(p.sourceIp);
    const captured = this.o.podAt(p.sourceIp);
    const steps: string[] = [];
    if (!source) return { captured: false, steps: [`${p.sourceIp} is not a workload this agent knows`] };
    const name = `${source.namespace}/${source.name}`;
    if (!captured) {
      steps.push(`${name} is not captured (${this.o.state.isEnrolled(source) ? 'enrolled, but its capture is not in place yet' : 'not enrolled'}): its connections leave it directly, in plaintext`);
      const r = this.resolver.resolve({ ip: p.ip, port: p.port }, source, true);
      // Uncaptured, it travels in plaintext whatever the destination is; an enrolled one takes it in on its 15006.
      return { captured: false, steps, ...('error' in r ? { error: r.error } : { destination: this.describe({ ...r, protocol: 'TCP' }) }) };
    }
    steps.push(`${name} is captured (${captured.redirect.how === 'adopted' ? 'adopted from an earlier agent run' : 'redirect installed'}): the connection goes to this agent's 15001 inside the pod`);
    const r = this.resolver.resolve({ ip: p.ip, port: p.port }, source, true);
    if ('error' in r) {
      steps.push(`refused: ${r.reason}`);
      return { captured: true, steps, error: r.error };
    }
    steps.push(r.reason);
    const identity = identityOf(source, this.o.trustDomain);
    const id = spiffeId(identity);
    const cert = r.protocol === 'HBONE' ? this.o.certificates.get(id) : undefined;
    if (r.protocol === 'HBONE') steps.push(cert ? `presents the SVID of ${id} (serial ${cert.serial}, until ${cert.notAfter.toISOString()})` : `refused: no certificate yet for ${id}`);
    return { captured: true, steps, sourcePrincipal: principal(identity), ...(r.protocol === 'HBONE' && !cert ? { error: 'no-certificate' } : {}), destination: this.describe(r) };
  }

  /** `ambit explain`, the destination's half: what this agent decides for a connection to its pod. */
  explainInbound(p: { sourceIp: string; sourcePrincipal?: string; ip: string; port: number; mtls: boolean }) {
    const pod = this.resolver.workloadAt(p.ip);
    if (!pod || !this.o.podAt(p.ip)) return { allowed: true, steps: [`${p.ip} is not a captured pod of this node: no inbound policy applies here`] };
    const name = `${pod.namespace}/${pod.name}`;
    const steps: string[] = [];
    const mode = this.peerAuthentication.mode(pod, p.port);
    steps.push(`mTLS mode for ${name} port ${p.port}: ${mode.mode}${mode.policy ? ` (PeerAuthentication ${mode.policy})` : ' (default)'}`);
    if (!p.mtls && mode.mode === 'STRICT') return { allowed: false, steps: [...steps, 'refused: plaintext under STRICT'], mtlsMode: mode.mode, warnings: this.warningsFor(pod) };
    const guard = waypointOnly(this.resolver, pod, { ip: p.ip, port: p.port }, p.sourcePrincipal ? { namespace: p.sourcePrincipal.split('/')[2] ?? '', serviceAccount: p.sourcePrincipal.split('/')[4] ?? '' } : undefined);
    if (guard) return { allowed: false, steps: [...steps, `denied: ${guard.reason}`], mtlsMode: mode.mode, decision: guard, warnings: this.warningsFor(pod) };
    const d = this.authorizer.authorize(pod, { sourceIp: p.sourceIp, ...(p.sourcePrincipal ? { sourcePrincipal: p.sourcePrincipal, sourceNamespace: p.sourcePrincipal.split('/')[2] } : {}), destinationIp: p.ip, destinationPort: p.port });
    steps.push(`${d.allowed ? 'allowed' : 'denied'}: ${d.reason}`);
    if (d.allowed) steps.push(`delivered to ${p.ip}:${p.port} inside the pod, from ${p.sourceIp} (transparent)`);
    return { allowed: d.allowed, steps, mtlsMode: mode.mode, decision: d, warnings: this.warningsFor(pod) };
  }

  /** What the policies that could apply to the workload do not enforce as written. */
  private warningsFor(pod: { namespace: string }) {
    return [...this.authorizer.warnings(), ...this.peerAuthentication.warnings()].filter((w) => w.policy.startsWith(`${pod.namespace}/`) || w.policy.startsWith(`${this.o.rootNamespace}/`));
  }

  private describe(r: Resolution) {
    return {
      protocol: r.protocol,
      target: `${r.target.ip}:${r.target.port}`,
      ...(r.service ? { service: `${r.service.namespace}/${r.service.name}` } : {}),
      ...(r.workload ? { workload: `${r.workload.namespace}/${r.workload.name}`, node: r.workload.node, principal: principal(identityOf(r.workload, this.o.trustDomain)) } : {}),
      ...(r.node && r.protocol === 'HBONE' ? { via: `${r.node.ip}:${hbonePort}` } : {}),
      ...(r.waypoint ? { waypoint: `${r.waypoint.namespace}/${r.waypoint.name}` } : {}),
    };
  }

  /** Whether a live connection of this node's pod `namespace/name` passes through this agent. */
  holds(workload: string): boolean {
    for (const c of this.connections.values()) {
      const w = localWorkload(c);
      if (w && `${w.namespace}/${w.name}` === workload) return true;
    }
    return false;
  }

  /** This event loop's share of the traffic, with its own V8 heap: how the agent's workers split the load. */
  load(worker: number) {
    return { worker, open: this.connections.size, opened: this.openedTotal, sockets: this.openSockets.source + this.openSockets.destination, heapMB: Math.round(process.memoryUsage().heapUsed / 1e5) / 10 };
  }

  /** The HBONE pool's and server's counts (sessions, streams, refusals by reason), flat, for metrics. */
  eventCounts(): Record<string, number> {
    return { ...prefixed('hbone_client_', this.pool.counters), ...prefixed('hbone_server_', flatten(this.server.counters)) };
  }

  /** Per captured pod and direction, for the query API. */
  counters(pods: Iterable<CapturedPod>) {
    return [...pods].flatMap((p) => {
      const c = this.countersOf(p.key);
      return [
        { workload: p.key, direction: 'outbound', ...c.outbound },
        { workload: p.key, direction: 'inbound', ...c.inbound },
      ];
    });
  }

  private countersOf(workload: string) {
    let c = this.perPod.get(workload);
    if (!c) {
      const zero = () => ({ opened: 0, closed: 0, failed: 0, sent: 0, received: 0 });
      this.perPod.set(workload, (c = { outbound: zero(), inbound: zero() }));
    }
    return c;
  }

  /** The local pod's counters a connection moves: the source's outbound, or the destination's inbound. */
  private sideOf(c: ConnectionInfo): PodCounters | undefined {
    const w = localWorkload(c);
    if (!w) return undefined;
    const counters = this.countersOf(`${w.namespace}/${w.name}`);
    return c.reporter === 'source' ? counters.outbound : counters.inbound;
  }

  private onConfig(): void {
    // Sessions go to nodes, and to waypoint pods (they take HBONE themselves): keep both, so that a
    // waypoint pod that went (and any address reused after it) gets no tunnel on a dead session.
    const addresses = [...this.o.state.nodes.values()].map((n) => n.ip);
    const waypoints = new Set<string>();
    for (const s of this.o.state.services.values()) if (s.waypoint) waypoints.add(serviceKey(s.waypoint.namespace, s.waypoint.name));
    for (const w of this.o.state.workloads.values()) if (w.waypoint) waypoints.add(serviceKey(w.waypoint.namespace, w.waypoint.name));
    for (const key of waypoints) for (const e of this.o.state.services.get(key)?.endpoints ?? []) addresses.push(e.ip);
    this.pool.retainNodes(addresses);
    // Policies are compiled again only when a push changed them; then live connections are checked again.
    const revision = this.o.state.policyRevision;
    if (revision === this.policyRevision) return;
    const first = this.policyRevision === -1;
    this.policyRevision = revision;
    const policies = [...this.o.state.policies.values()];
    this.authorizer.update(policies);
    this.peerAuthentication.update(policies);
    if (!first) {
      const closed = recheckConnections(this.inboundCtx);
      if (closed) this.o.log.info({ closed }, 'policy change: closed connections it now denies');
    }
  }

  /** Asked on every handshake: built again only after a push changed a trust bundle. */
  private trustBundle(): TrustBundle {
    const revision = this.o.state.trustBundleRevision;
    if (this.bundle?.revision !== revision) {
      const roots: Record<string, string[]> = {};
      for (const b of this.o.state.trustBundles.values()) roots[b.trustDomain] = b.roots;
      this.bundle = { revision, value: new TrustBundle(roots) };
    }
    return this.bundle.value;
  }

  /** The certificate a client asked for by name (SNI): the local workload identity it spells. */
  private contextFor(name: string): SecureContext | undefined {
    return this.o.certificates.forServerName(name, serverName)?.secureContext;
  }
}

/** The pod of this node a connection belongs to: the client's for an outbound one, the server's for an inbound one. */
function localWorkload(c: ConnectionInfo) {
  return c.reporter === 'source' ? c.source.workload : c.destination.workload;
}

function prefixed(prefix: string, counters: object): Record<string, number> {
  return Object.fromEntries(Object.entries(counters).map(([k, v]) => [`${prefix}${k}`, Number(v)]));
}

/** `{ refused: { expired: 1 } }` as `{ refused_expired: 1 }`: one level of nesting, as the server's counters have. */
function flatten(counters: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(counters)) {
    if (typeof v === 'object' && v) for (const [k2, v2] of Object.entries(v)) out[`${k}_${k2}`] = Number(v2);
    else out[k] = Number(v);
  }
  return out;
}
