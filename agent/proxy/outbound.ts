// Outbound: a connection captured on a pod's 15001. Its original destination is resolved (Service
// endpoint or pod), then it goes over HBONE (a CONNECT stream on a pooled mutual-TLS HTTP/2
// session to the destination node, presenting the source pod's SVID) when the destination is
// enrolled, or in plain TCP from inside the pod's namespace otherwise. Bytes flow both ways through
// splice.ts; the connection is tracked for telemetry, and one that could not be
// forwarded is recorded with the flag ztunnel gives its cause.

import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from '../../shared/log.js';
import { principal, spiffeId, type Identity } from '../../shared/identity/spiffe.js';
import { serviceHostname, type WorkloadEntry, workloadIdentity } from '../../shared/protocol/config.js';
import { tcpSocketIn } from '../../native/netns.js';
import { agentMark, type Destination } from '../capture/redirect.js';
import type { WorkloadCertificates, WorkloadCertificate } from '../identity/manager.js';
import { clientSocketBytes, type ConnectionTable, type ConnectionInfo, type ResponseFlags } from './connections.js';
import { HboneConnectFailed, HboneConnectRefused, HbonePeerUntrusted, serverName } from '../../shared/hbone/protocol.js';
import type { HbonePool } from '../../shared/hbone/pool.js';
import type { Resolver, Resolution } from './resolve.js';
import { splice } from '../../shared/hbone/splice.js';

export interface OutboundContext {
  resolver: Resolver;
  pool: HbonePool;
  certificates: WorkloadCertificates;
  connections: ConnectionTable;
  trustDomain: string;
  log: Logger;
  /** Counts a failure by reason (a metric). */
  failed(reason: string): void;
  /** Whether the pod is enrolled now (a pod leaving the mesh stays redirected for a moment). */
  enrolled(w: WorkloadEntry): boolean;
}

/** The captured pod a listener belongs to. */
export interface SourcePod {
  workload: WorkloadEntry;
  nsFd: number;
  destinationOf(client: Socket): Destination | undefined;
}

export const identityOf = workloadIdentity;

export { serverName };

/** Ends a client connection with a TCP reset, as a refused connection looks to the app. */
function refuse(client: Socket): void {
  if (!client.destroyed) client.resetAndDestroy();
}

export function handleOutbound(ctx: OutboundContext, pod: SourcePod, client: Socket): void {
  client.on('error', () => undefined);
  const dst = pod.destinationOf(client);
  if (!dst) {
    ctx.failed('no-original-destination');
    return refuse(client);
  }
  let r = ctx.resolver.resolve(dst, pod.workload);
  // A pod leaving the mesh has no certificate any more but is redirected until its release: its
  // connections go as they will once it is released, in plain TCP, rather than wait for none.
  if (!('error' in r) && r.protocol === 'HBONE' && !ctx.enrolled(pod.workload)) r = { ...r, protocol: 'TCP', reason: `${r.reason}; the source is leaving the mesh: plain TCP` };
  if ('error' in r) {
    ctx.failed(r.error);
    ctx.log.debug({ source: `${pod.workload.namespace}/${pod.workload.name}`, destination: `${dst.ip}:${dst.port}`, reason: r.reason }, 'outbound refused');
    return refuse(client);
  }
  const source = identityOf(pod.workload, ctx.trustDomain);
  const info: ConnectionInfo = {
    reporter: 'source',
    source: { ip: pod.workload.ip, port: client.remotePort, workload: pod.workload, principal: principal(source) },
    destination: { ip: r.target.ip, port: r.target.port, ...(r.workload ? { workload: r.workload } : {}), ...(r.protocol === 'HBONE' && r.workload ? { principal: principal(identityOf(r.workload, ctx.trustDomain)) } : {}) },
    ...(r.service ? { service: r.service } : {}),
    security: r.protocol === 'HBONE' ? 'mutual_tls' : 'unknown',
  };
  if (r.protocol === 'TCP') return plain(ctx, pod, client, r, info);
  hbone(ctx, pod, client, r, info, source);
}

function plain(ctx: OutboundContext, pod: SourcePod, client: Socket, r: Resolution, info: ConnectionInfo): void {
  let upstream: Socket;
  try {
    upstream = new Socket({ fd: tcpSocketIn(pod.nsFd, { mark: agentMark }), allowHalfOpen: true }).setNoDelay(true);
  } catch (err) {
    ctx.failed('socket');
    ctx.connections.refuse(info, 'CONNECT', `no socket in the pod: ${(err as Error).message}`);
    ctx.log.warn({ err: (err as Error).message }, 'outbound socket failed');
    return refuse(client);
  }
  upstream.connect(r.target.port, r.target.ip);
  // Node clears `connecting` before it emits a failed connect's 'error', so whether it connected
  // is kept here. join() resets the client; this listener runs before join's, so a client already
  // destroyed is one that went first (its end passed on by join): not the destination's failure.
  let connected = false;
  upstream.once('connect', () => {
    connected = true;
    ctx.connections.track(info, client, upstream, clientSocketBytes(client));
  });
  upstream.once('error', (err) => {
    if (connected || client.destroyed) return;
    ctx.failed('connect');
    ctx.connections.refuse(info, 'CONNECT', err.message);
  });
  join(client, upstream);
}

function hbone(ctx: OutboundContext, pod: SourcePod, client: Socket, r: Resolution, info: ConnectionInfo, source: Identity): void {
  const id = spiffeId(source);
  const cert = ctx.certificates.get(id);
  if (cert) return tunnel(ctx, pod, client, r, info, cert);
  // A pod's first connection can come before its certificate: wait a little for it, then refuse
  // rather than send in the clear.
  client.pause();
  void ctx.certificates.waitFor(id, 5000).then((c) => {
    if (client.destroyed) return;
    if (c) return tunnel(ctx, pod, client, r, info, c);
    ctx.failed('no-certificate');
    // ztunnel: a certificate it cannot fetch is an identity error (src/proxy/metrics.rs).
    ctx.connections.refuse(info, 'IDENTITY_ERROR', `no certificate for ${id} within 5 s`);
    refuse(client);
  });
}

function tunnel(ctx: OutboundContext, pod: SourcePod, client: Socket, r: Resolution, info: ConnectionInfo, cert: WorkloadCertificate): void {
  const destination = identityOf(r.workload!, ctx.trustDomain);
  // Until the tunnel is up the client's bytes wait in its socket (paused: nothing reads it).
  client.pause();
  let closedEarly = false;
  client.once('close', () => (closedEarly = true));
  ctx.pool
    .connect({
      identity: cert.id,
      secureContext: cert.secureContext,
      nodeAddress: r.node!.ip,
      authority: `${r.target.ip}:${r.target.port}`,
      expectedIdentity: spiffeId(destination),
      servername: serverName(destination),
      // Who is calling, for the destination's transparency and ipBlocks (checked there against the
      // identity), and the Service it addressed, for the destination's telemetry (ztunnel's build_forwarded).
      headers: { forwarded: r.service ? `for=${pod.workload.ip};host=${serviceHostname(r.service)}` : `for=${pod.workload.ip}` },
    })
    .then(
      (stream) => {
        if (closedEarly) return void stream.end();
        ctx.connections.track(info, client, stream, clientSocketBytes(client));
        join(client, stream);
        client.resume();
      },
      (err: Error) => {
        const reason = err instanceof HboneConnectRefused ? `hbone-${err.status}` : err instanceof HbonePeerUntrusted ? `peer-${err.reason}` : err instanceof HboneConnectFailed ? `hbone-${err.stage}` : 'hbone';
        ctx.failed(reason);
        ctx.connections.refuse(info, tunnelFailureFlag(err), err.message);
        ctx.log.debug({ source: `${pod.workload.namespace}/${pod.workload.name}`, destination: `${r.target.ip}:${r.target.port}`, reason, err: err.message }, 'outbound tunnel failed');
        refuse(client);
      },
    );
}

/**
 * The flag ztunnel's ConnectionResult gives a tunnel that failed (extract_failure_reason in
 * src/proxy/metrics.rs): the server's certificate or the TLS handshake is TLS_FAILURE, the HTTP/2
 * session H2_HANDSHAKE_FAILURE, our own credentials IDENTITY_ERROR; a CONNECT answered with another
 * status than 200 (a 403 from the destination's policy included: the destination reports that DENY),
 * and anything else, CONNECT.
 */
export function tunnelFailureFlag(err: Error): Exclude<ResponseFlags, '-'> {
  if (err instanceof HbonePeerUntrusted) return 'TLS_FAILURE';
  if (!(err instanceof HboneConnectFailed)) return 'CONNECT';
  switch (err.stage) {
    case 'tls':
    case 'refused-certificate':
      return 'TLS_FAILURE';
    case 'session':
    case 'stream':
      return 'H2_HANDSHAKE_FAILURE';
    case 'credentials':
      return 'IDENTITY_ERROR';
    default:
      return 'CONNECT';
  }
}

/**
 * Both directions with backpressure; an error or early close on either side ends both, the client with a reset
 * (so a refused upstream looks refused to the app, not like an empty answer).
 */
export function join(client: Socket, upstream: Duplex): void {
  splice(client, upstream, () => {
    refuse(client);
    upstream.destroy();
  });
}
