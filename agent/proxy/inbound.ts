// Inbound: connections to this node's captured pods, over HBONE (15008, the peer's SVID already
// validated by the server) or in plaintext (a pod's 15006, from clients outside the mesh). Each is
// checked against PeerAuthentication (plaintext refused under STRICT) and AuthorizationPolicy,
// then handed to the app from inside the pod's namespace, from the client's own address where the
// kernel allows it (IP_TRANSPARENT), with the agent's mark. Live connections are checked again
// when policies change, and the ones now denied are closed.

import { Socket } from 'node:net';
import { pipeline } from 'node:stream';
import type { Logger } from '../../shared/log.js';
import { principal } from '../../shared/identity/spiffe.js';
import type { WorkloadEntry } from '../../shared/protocol/config.js';
import { tcpSocketIn } from '../../native/netns.js';
import { agentMark, type Destination } from '../capture/redirect.js';
import type { Authorizer, ConnectionAttributes, Decision, PeerAuthenticator } from '../../shared/policy/index.js';
import { accessFields, clientSocketBytes, type ConnectionInfo, type ConnectionTable, type TrackedConnection } from './connections.js';
import type { HboneTunnel } from './hbone-server.js';
import { identityOf, join } from './outbound.js';
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
}

/** What policy re-checks need of an inbound connection. */
const attributesOf = new WeakMap<TrackedConnection, { pod: DestinationPod; attrs: ConnectionAttributes }>();

const forwardedFor = /^for="?(\d{1,3}(?:\.\d{1,3}){3})"?$/;

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
  let sourceIp: string | undefined;
  const header = t.headers['forwarded'];
  if (typeof header === 'string') {
    const m = forwardedFor.exec(header.trim());
    const w = m ? ctx.resolver.workloadAt(m[1]!) : undefined;
    if (!m) {
      ctx.failed('bad-forwarded');
      return t.respond(400);
    }
    if (w && w.namespace === t.peer.namespace && w.serviceAccount === t.peer.serviceAccount) sourceIp = m[1]!;
    else {
      const reason = `Forwarded address ${m[1]} is not a workload of ${peerPrincipal}`;
      ctx.denied('source-address-not-of-peer');
      ctx.access.info({ event: 'denied', reason, source_principal: peerPrincipal, destination: `${t.authority.ip}:${t.authority.port}` }, 'connection denied');
      if (connectionDenied.hasSubscribers) {
        // The claimed address, not attributed to the workload that holds it.
        const connection: ConnectionInfo = { reporter: 'destination', source: { ip: m[1]!, principal: peerPrincipal }, destination: { ip: t.authority.ip, port: t.authority.port, workload: pod.workload, principal: principal(identityOf(pod.workload, ctx.trustDomain)) }, security: 'mutual_tls' };
        connectionDenied.publish({ connection, decision: { allowed: false, reason }, code: 'source-address-not-of-peer' });
      }
      return t.respond(403);
    }
  }
  const attrs: ConnectionAttributes = {
    sourceIp: sourceIp ?? '0.0.0.0',
    sourcePrincipal: peerPrincipal,
    sourceNamespace: t.peer.namespace,
    destinationIp: t.authority.ip,
    destinationPort: t.authority.port,
  };
  const decision = ctx.authorizer.authorize(pod.workload, attrs);
  const source = sourceIp ? ctx.resolver.workloadAt(sourceIp) : undefined;
  const info: ConnectionInfo = {
    reporter: 'destination',
    source: { ip: attrs.sourceIp, ...(source ? { workload: source } : {}), principal: peerPrincipal },
    destination: { ip: t.authority.ip, port: t.authority.port, workload: pod.workload, principal: principal(identityOf(pod.workload, ctx.trustDomain)) },
    security: 'mutual_tls',
    decision: decision.reason,
  };
  if (!decision.allowed) {
    deny(ctx, info, decision);
    return t.respond(403);
  }
  const upstream = dial(ctx, pod, t.authority, sourceIp);
  if (!upstream) return t.respond(503);
  upstream.once('connect', () => {
    t.respond(200);
    const c = ctx.connections.track(info, t.stream, upstream, { sent: () => upstream.bytesWritten, received: () => upstream.bytesRead });
    attributesOf.set(c, { pod, attrs });
    joinTunnel(t, upstream);
  });
  upstream.once('error', () => {
    if (!upstream.connecting) return;
    ctx.failed('connect-pod');
    t.respond(503);
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
    destination: { ip: dst.ip, port: dst.port, workload: pod.workload, principal: principal(identityOf(pod.workload, ctx.trustDomain)) },
    security: 'none',
  };
  const mode = ctx.peerAuthentication.mode(pod.workload, dst.port);
  if (mode.mode === 'STRICT') {
    deny(ctx, info, { allowed: false, reason: `plaintext refused: mTLS mode STRICT${mode.policy ? ` (PeerAuthentication ${mode.policy})` : ''}` });
    return void client.resetAndDestroy();
  }
  const attrs: ConnectionAttributes = { sourceIp: client.remoteAddress, destinationIp: dst.ip, destinationPort: dst.port };
  const decision = ctx.authorizer.authorize(pod.workload, attrs);
  info.decision = decision.reason;
  if (!decision.allowed) {
    deny(ctx, info, decision);
    return void client.resetAndDestroy();
  }
  const upstream = dial(ctx, pod, dst, client.remoteAddress);
  if (!upstream) return void client.resetAndDestroy();
  upstream.once('connect', () => {
    const c = ctx.connections.track(info, client, upstream, clientSocketBytes(client));
    attributesOf.set(c, { pod, attrs });
  });
  upstream.once('error', () => upstream.connecting && ctx.failed('connect-pod'));
  join(client, upstream);
}

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
    c.terminate(`denied after a policy change: ${d.reason}`);
  }
  return closed;
}

function withWorkload(w: WorkloadEntry | undefined) {
  return w ? { workload: w } : {};
}

function deny(ctx: InboundContext, info: ConnectionInfo, d: Decision): void {
  const code: DenialCode = d.policy ? 'policy' : d.reason.startsWith('plaintext') ? 'mtls-strict' : 'policy-default';
  ctx.denied(code);
  ctx.access.info({ event: 'denied', reason: d.reason, ...accessFields(info) }, 'connection denied');
  if (connectionDenied.hasSubscribers) connectionDenied.publish({ connection: info, decision: d, code });
}

/**
 * A socket to the app, made inside its pod with the agent's mark, bound to the client's address
 * when known (the pod's transparency rules route the answers back to it), else the pod's own.
 */
function dial(ctx: InboundContext, pod: DestinationPod, dst: Destination, sourceIp: string | undefined): Socket | undefined {
  try {
    const fd = tcpSocketIn(pod.nsFd, { mark: agentMark, ...(sourceIp && sourceIp !== dst.ip ? { transparent: true, bind: { ip: sourceIp, port: 0 } } : {}) });
    const s = new Socket({ fd, allowHalfOpen: true }).setNoDelay(true);
    s.connect(dst.port, dst.ip);
    return s;
  } catch (err) {
    ctx.failed('socket');
    ctx.log.warn({ err: (err as Error).message, pod: `${pod.workload.namespace}/${pod.workload.name}` }, 'inbound socket failed');
    return undefined;
  }
}

/** The tunnel's stream and the app's socket, both ways; a failure on either resets the stream. */
function joinTunnel(t: HboneTunnel, upstream: Socket): void {
  const done = (err?: Error | null) => {
    if (!err) return;
    upstream.destroy();
    t.stream.destroy();
  };
  pipeline(t.stream, upstream, done);
  pipeline(upstream, t.stream, done);
}
