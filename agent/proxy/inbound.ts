// Inbound: connections to this node's captured pods, over HBONE (15008, the peer's SVID already
// validated by the server) or in plaintext (a pod's 15006, from clients outside the mesh). Each is
// checked against PeerAuthentication (plaintext refused under STRICT) and AuthorizationPolicy,
// then handed to the app from inside the pod's namespace, from the client's own address where the
// kernel allows it (IP_TRANSPARENT), with the agent's mark. Live connections are checked again
// when policies change, and the ones now denied are closed. A connection denied or not delivered
// is recorded through the connection table, as one that ran is (ztunnel's ConnectionResult).

import { Socket } from 'node:net';
import type { Logger } from '../../shared/log.js';
import { AmbitError } from '../../shared/errors.js';
import { principal } from '../../shared/identity/spiffe.js';
import type { WorkloadEntry } from '../../shared/protocol/config.js';
import { tcpSocketIn } from '../../native/netns.js';
import { agentMark, type Destination } from '../capture/redirect.js';
import type { Authorizer, ConnectionAttributes, Decision, PeerAuthenticator } from '../../shared/policy/index.js';
import { ipv4 } from '../../shared/policy/match.js';
import { clientSocketBytes, type ConnectionInfo, type ConnectionTable, socketBytes, type TrackedConnection } from './connections.js';
import type { HboneTunnel } from '../../shared/hbone/server.js';
import { identityOf, join } from './outbound.js';
import { splice } from '../../shared/hbone/splice.js';
import type { Resolver } from './resolve.js';
import { connectionDenied, type DenialCode } from '../telemetry/events.js';

/** A captured pod of this node, where inbound connections are delivered. */
export interface DestinationPod {
  workload: WorkloadEntry;
  nsFd: number;
}

export interface InboundContext {
  resolver: Resolver;
  authorizer: Authorizer;
  peerAuthentication: PeerAuthenticator;
  connections: ConnectionTable;
  /** The captured pod at this address, if it is one of this node's. */
  localPod(ip: string): DestinationPod | undefined;
  trustDomain: string;
  log: Logger;
  access: Logger;
  denied(reason: string): void;
  failed(reason: string): void;
  /** How long the app has to accept the agent's connection; podConnectTimeoutMs when absent (tests shorten it). */
  podConnectTimeoutMs?: number;
}

/** What policy re-checks need of an inbound connection. */
const attributesOf = new WeakMap<TrackedConnection, { pod: DestinationPod; attrs: ConnectionAttributes }>();

/** `for=IP`, and the `host=` of the Service the client addressed when its agent knew it (as ztunnel's build_forwarded). */
const forwardedFor = /^for="?(\d{1,3}(?:\.\d{1,3}){3})"?(?:;\s*host="?([A-Za-z0-9.-]+)"?)?$/;

/**
 * How long the app in the pod has to accept the agent's connection. The pod is on this node, so a
 * live one answers within a millisecond; a SYN that goes unanswered (a pod being torn down, an
 * accept queue that is full) would otherwise wait out the kernel's SYN retries, about two minutes,
 * with the client's CONNECT unanswered all that time.
 */
export const podConnectTimeoutMs = 5_000;

/** A CONNECT on 15008 from an authenticated peer. */
export function handleTunnel(ctx: InboundContext, t: HboneTunnel): void {
  const pod = ctx.localPod(t.authority.ip);
  if (!pod) {
    ctx.failed('unknown-destination');
    return t.respond(503);
  }
  // The caller's address, as its agent says (Forwarded: for=IP). It is believed only when it is a
  // workload of the peer's identity: a peer cannot borrow another workload's address.
  const peerPrincipal = principal(t.peer);
  // Without the header, the source is the address the tunnel came from (the peer node, or a
  // waypoint), as ztunnel does: a real address, so an ipBlocks DENY naming it applies and a
  // notIpBlocks ALLOW excluding it does not let it in. Refusing instead would break peers that do
  // not send the header (a waypoint, another HBONE implementation), and 0.0.0.0 matched no block
  // at all: it slipped past every DENY on ipBlocks. A tunnel with no IPv4 peer address (its socket
  // already gone) has nothing to be checked against, and is refused.
  let sourceIp = t.peerAddress !== undefined && ipv4(t.peerAddress) >= 0 ? t.peerAddress : undefined;
  // The app sees the client's own address only when the Forwarded one was believed; the peer node's
  // is not the client's, and the pod would route its answers to it.
  let clientIp: string | undefined;
  let host: string | undefined;
  const header = t.headers['forwarded'];
  if (typeof header === 'string') {
    const m = forwardedFor.exec(header.trim());
    const w = m ? ctx.resolver.workloadAt(m[1]!) : undefined;
    if (!m) {
      ctx.failed('bad-forwarded');
      return t.respond(400);
    }
    host = m[2];
    if (w && w.namespace === t.peer.namespace && w.serviceAccount === t.peer.serviceAccount) sourceIp = clientIp = m[1]!;
    else {
      const reason = `Forwarded address ${m[1]} is not a workload of ${peerPrincipal}`;
      ctx.denied('source-address-not-of-peer');
      // The claimed address, not attributed to the workload that holds it.
      const connection: ConnectionInfo = { reporter: 'destination', source: { ip: m[1]!, principal: peerPrincipal }, destination: podPeer(ctx, pod, t.authority), ...serviceOf(ctx, t.authority, host), security: 'mutual_tls', decision: reason };
      ctx.connections.refuse(connection, 'DENY', reason);
      if (connectionDenied.hasSubscribers) connectionDenied.publish({ connection, decision: { allowed: false, reason }, code: 'source-address-not-of-peer' });
      return t.respond(403);
    }
  }
  if (!sourceIp) {
    ctx.denied('no-source-address');
    // Only logged, as ztunnel's log_early_deny: refused before there is a connection to label.
    ctx.access.info({ event: 'denied', reason: `no IPv4 source address for a tunnel from ${peerPrincipal}`, source_principal: peerPrincipal, destination: `${t.authority.ip}:${t.authority.port}` }, 'connection denied');
    return t.respond(403);
  }
  const attrs: ConnectionAttributes = {
    sourceIp,
    sourcePrincipal: peerPrincipal,
    sourceNamespace: t.peer.namespace,
    destinationIp: t.authority.ip,
    destinationPort: t.authority.port,
  };
  const decision = waypointOnly(ctx.resolver, pod.workload, t.authority, t.peer) ?? ctx.authorizer.authorize(pod.workload, attrs);
  const source = clientIp ? ctx.resolver.workloadAt(clientIp) : undefined;
  const info: ConnectionInfo = {
    reporter: 'destination',
    source: { ip: attrs.sourceIp, ...(source ? { workload: source } : {}), principal: peerPrincipal },
    destination: podPeer(ctx, pod, t.authority),
    ...serviceOf(ctx, t.authority, host),
    security: 'mutual_tls',
    decision: decision.reason,
  };
  if (!decision.allowed) {
    deny(ctx, info, decision);
    return t.respond(403);
  }
  const upstream = dial(ctx, pod, t.authority, clientIp, info);
  if (!upstream) return t.respond(503);
  // A client that gives up while the pod is connecting takes the dial with it; after the connect,
  // the connection table and the pipes see to its end.
  const abandon = () => upstream.destroy();
  t.stream.once('close', abandon);
  whenConnected(ctx, upstream, (err) => {
    t.stream.off('close', abandon);
    if (err instanceof PodConnectAbandoned) return;
    if (err) {
      ctx.failed('connect-pod');
      ctx.connections.refuse(info, 'CONNECT', err.message);
      ctx.log.debug({ err: err.message, pod: `${pod.workload.namespace}/${pod.workload.name}`, destination: `${t.authority.ip}:${t.authority.port}` }, 'inbound connect to the pod failed');
      return t.respond(503);
    }
    t.respond(200);
    const c = ctx.connections.track(info, t.stream, upstream, socketBytes(upstream));
    attributesOf.set(c, { pod, attrs });
    joinTunnel(t, upstream);
  });
}

/** A plaintext connection captured on a pod's 15006 (a client outside the mesh). */
export function handlePlaintext(ctx: InboundContext, pod: DestinationPod, client: Socket, destinationOf: (s: Socket) => Destination | undefined): void {
  client.on('error', () => undefined);
  const dst = destinationOf(client);
  if (!dst || !client.remoteAddress) {
    ctx.failed('no-original-destination');
    return void client.resetAndDestroy();
  }
  const info: ConnectionInfo = {
    reporter: 'destination',
    source: { ip: client.remoteAddress, port: client.remotePort, ...withWorkload(ctx.resolver.workloadAt(client.remoteAddress)) },
    destination: podPeer(ctx, pod, dst),
    ...serviceOf(ctx, dst),
    security: 'unknown',
  };
  const mode = ctx.peerAuthentication.mode(pod.workload, dst.port);
  if (mode.mode === 'STRICT') {
    deny(ctx, info, { allowed: false, reason: `plaintext refused: mTLS mode STRICT${mode.policy ? ` (PeerAuthentication ${mode.policy})` : ''}` });
    return void client.resetAndDestroy();
  }
  const attrs: ConnectionAttributes = { sourceIp: client.remoteAddress, destinationIp: dst.ip, destinationPort: dst.port };
  const decision = waypointOnly(ctx.resolver, pod.workload, dst) ?? ctx.authorizer.authorize(pod.workload, attrs);
  info.decision = decision.reason;
  if (!decision.allowed) {
    deny(ctx, info, decision);
    return void client.resetAndDestroy();
  }
  const upstream = dial(ctx, pod, dst, client.remoteAddress, info);
  if (!upstream) return void client.resetAndDestroy();
  whenConnected(ctx, upstream, (err) => {
    // The pipes below reset the client when the dial fails, and destroy the dial (with the client's
    // error) when the client goes first: that one is not the pod's failure.
    if (err) {
      if (err instanceof PodConnectAbandoned || client.destroyed) return;
      ctx.failed('connect-pod');
      return ctx.connections.refuse(info, 'CONNECT', err.message);
    }
    const c = ctx.connections.track(info, client, upstream, clientSocketBytes(client));
    attributesOf.set(c, { pod, attrs });
  });
  join(client, upstream);
}

/**
 * A pod behind a waypoint takes connections on that port only from the waypoint, so that its L7
 * rules cannot be bypassed by dialling the pod (Istio's docs ask users to write this policy by hand):
 * the waypoint of a Service it backs on that port, and its own waypoint (`waypoint-for` workload or
 * all) on every port. A refusal when the caller is someone else (or anyone in plaintext); undefined
 * when one of those waypoints is the caller or none guards the port. The waypoint's own connections
 * are delivered here, never sent back to it: waypoints are not captured, and this is the last hop.
 */
export function waypointOnly(resolver: Resolver, pod: WorkloadEntry, dst: Destination, peer?: { namespace: string; serviceAccount: string }): Decision | undefined {
  const guards = resolver.waypointsGuarding(dst.ip, dst.port);
  if (guards.length === 0 || (peer && guards.some((g) => peer.namespace === g.namespace && peer.serviceAccount === g.name))) return undefined;
  const names = guards.map((g) => `${g.namespace}/${g.name}${g.service ? ` (Service ${g.service.namespace}/${g.service.name} uses it)` : ` (the pod's own, for traffic addressed to it)`}`);
  const d: Decision = {
    allowed: false,
    reason: `pod ${pod.namespace}/${pod.name} port ${dst.port} is behind waypoint ${names.join(' and waypoint ')}: only the waypoint may connect; ${guards[0]!.service ? 'go through the Service' : 'connect from a pod of the mesh, whose node proxy sends it through the waypoint'}`,
  };
  waypointRefusals.add(d);
  return d;
}
const waypointRefusals = new WeakSet<Decision>();

/** Policies changed: every live inbound connection is decided again; the denied ones end now. */
export function recheckConnections(ctx: InboundContext): number {
  let closed = 0;
  for (const c of ctx.connections.values()) {
    const a = attributesOf.get(c);
    if (!a) continue;
    const d = ctx.authorizer.authorize(a.pod.workload, a.attrs);
    if (d.allowed) continue;
    closed++;
    ctx.denied('policy-changed');
    if (connectionDenied.hasSubscribers) connectionDenied.publish({ connection: c, decision: d, code: 'policy-changed' });
    c.terminate(`denied after a policy change: ${d.reason}`, 'DENY');
  }
  return closed;
}

function withWorkload(w: WorkloadEntry | undefined) {
  return w ? { workload: w } : {};
}

/** The pod a connection is delivered to, with its identity. */
function podPeer(ctx: InboundContext, pod: DestinationPod, dst: Destination) {
  return { ip: dst.ip, port: dst.port, workload: pod.workload, principal: principal(identityOf(pod.workload, ctx.trustDomain)) };
}

/** The Service the connection most likely came through, for telemetry: a CONNECT names a pod, not a Service. */
function serviceOf(ctx: InboundContext, dst: Destination, host?: string) {
  const service = ctx.resolver.inboundService(dst.ip, dst.port, host);
  return service ? { service } : {};
}

/**
 * A denial: counted by reason, and recorded as a connection with response_flags DENY. A plaintext
 * connection refused under STRICT is a DENY too, as in ztunnel, where istiod turns STRICT into an
 * authorization policy (src/proxy/inbound_passthrough.rs records its rejection with that flag).
 */
function deny(ctx: InboundContext, info: ConnectionInfo, d: Decision): void {
  const code: DenialCode = waypointRefusals.has(d) ? 'not-from-waypoint' : d.policy ? 'policy' : d.reason.startsWith('plaintext') ? 'mtls-strict' : 'policy-default';
  ctx.denied(code);
  ctx.connections.refuse({ ...info, decision: d.reason }, 'DENY', d.reason);
  if (connectionDenied.hasSubscribers) connectionDenied.publish({ connection: info, decision: d, code });
}

/**
 * A socket to the app, made inside its pod with the agent's mark, bound to the client's address
 * when known (the pod's transparency rules route the answers back to it), else the pod's own.
 */
function dial(ctx: InboundContext, pod: DestinationPod, dst: Destination, sourceIp: string | undefined, info: ConnectionInfo): Socket | undefined {
  try {
    const fd = tcpSocketIn(pod.nsFd, { mark: agentMark, ...(sourceIp && sourceIp !== dst.ip ? { transparent: true, bind: { ip: sourceIp, port: 0 } } : {}) });
    const s = new Socket({ fd, allowHalfOpen: true }).setNoDelay(true);
    s.connect(dst.port, dst.ip);
    return s;
  } catch (err) {
    ctx.failed('socket');
    ctx.connections.refuse(info, 'CONNECT', `no socket in the pod: ${(err as Error).message}`);
    ctx.log.warn({ err: (err as Error).message, pod: `${pod.workload.namespace}/${pod.workload.name}` }, 'inbound socket failed');
    return undefined;
  }
}

/**
 * Calls `done` once: when `upstream` connects, or with the error that ended its connect (refused,
 * the pod connect timeout, or destroyed by a client gone first). Node clears `connecting` before it
 * emits a failed connect's 'error', so whether it connected is kept here.
 */
function whenConnected(ctx: InboundContext, upstream: Socket, done: (err?: Error) => void): void {
  let settled = false;
  const timeoutMs = ctx.podConnectTimeoutMs ?? podConnectTimeoutMs;
  const onTimeout = () => upstream.destroy(new PodConnectTimeout(timeoutMs));
  const settle = (err?: Error) => {
    if (settled) return;
    settled = true;
    upstream.setTimeout(0, onTimeout);
    done(err);
  };
  upstream.setTimeout(timeoutMs, onTimeout);
  upstream.once('connect', () => settle());
  upstream.once('error', settle);
  upstream.once('close', () => settle(new PodConnectAbandoned()));
}

/** The app did not accept the agent's connection in time. */
export class PodConnectTimeout extends AmbitError {
  constructor(readonly timeoutMs: number) {
    super('PodConnectTimeout', `the pod did not accept the connection within ${timeoutMs} ms; is the app listening, or is the pod shutting down?`);
  }
}

/** The dial to the pod was given up before it connected (its client went away first). */
export class PodConnectAbandoned extends AmbitError {
  constructor() {
    super('PodConnectAbandoned', 'the connection to the pod was abandoned before it connected: the client went away first');
  }
}

/** The tunnel's stream and the app's socket, both ways; a failure on either resets the stream. */
function joinTunnel(t: HboneTunnel, upstream: Socket): void {
  splice(t.stream, upstream, () => {
    upstream.destroy();
    t.stream.destroy();
  });
}
