// The agent's side of the waypoints on its node, as istio-agent is Envoy's: inside each waypoint
// pod's network namespace, on 127.0.0.1:15019, it signs nothing itself but forwards the pod's CSR to
// the controller's CA once it has checked that the CSR asks for that pod's own identity, and it streams
// the pod its configuration (a snapshot per change). Only processes in the pod's namespace reach that
// address, so the pod asking is the pod the listener belongs to. Traffic to the waypoint is not this
// module's: waypoint pods are not captured, they speak HBONE themselves.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { spiffeId } from '../../shared/identity/spiffe.js';
import { fromPem, parseCsr } from '../../shared/identity/x509.js';
import { closeFd, listenerIn, openNetns } from '../../native/netns.js';
import type { WorkloadEntry } from '../../shared/protocol/config.js';
import { hasTargetRefs } from '../../shared/policy/http/attachment.js';
import type { WaypointCertificateRequest, WaypointCertificateResponse, WaypointExplainAnswer, WaypointExplainRequest, WaypointSnapshot } from '../../shared/waypoint/config.js';
import { gatewayNameLabel, waypointCertificatePath, waypointConfigPath, waypointLocalPort } from '../../shared/waypoint/names.js';
import type { AgentState } from '../state/state.js';
import type { PodLocation } from '../discovery/pods.js';
import { CertificateRefused, type CaClient } from '../identity/caclient.js';
import { identityOf } from '../proxy/outbound.js';

export interface WaypointHostOptions {
  state: AgentState;
  ca: Pick<CaClient, 'requestCertificate'>;
  trustDomain: string;
  log: Logger;
  /** Longest certificate lifetime a waypoint may ask for. */
  maxTtlSeconds: number;
  /** Where a workload's pod is on this node (discovery), or undefined while the agent has not found it. */
  locate: (w: WorkloadEntry) => PodLocation | undefined;
}

interface Hosted {
  key: string;
  workload: WorkloadEntry;
  netns: string;
  server: Server;
  sockets: WebSocketServer;
}

const maxBody = 16 * 1024;

export class WaypointHost {
  private readonly hosted = new Map<string, Hosted>();
  private readonly opening = new Set<string>();
  private snapshotCache: { version: number; json: string } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private explainId = 0;
  private readonly explaining = new Map<number, (a: WaypointExplainAnswer) => void>();

  constructor(private readonly o: WaypointHostOptions) {}

  start(): void {
    this.o.state.on('config', () => this.refresh());
    this.sync();
  }

  /** Serves the waypoint pods as they are now: after a push, or when a pod was discovered. */
  refresh(): void {
    // Pushes come in bursts: one snapshot for a burst.
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sync();
    }, 50);
  }

  /** The waypoint pods of this node now, by `namespace/name`. */
  waypoints(): string[] {
    return [...this.hosted.keys()];
  }

  close(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const h of this.hosted.values()) this.unhost(h);
  }

  private sync(): void {
    if (this.stopped) return;
    const wanted = new Map<string, { w: WorkloadEntry; netns: string }>();
    for (const w of this.o.state.localWorkloads()) {
      if (!w.labels?.[gatewayNameLabel] || w.phase !== 'Running') continue;
      const at = this.o.locate(w);
      if (at) wanted.set(`${w.namespace}/${w.name}`, { w, netns: at.netns });
    }
    for (const [key, h] of this.hosted) {
      const want = wanted.get(key);
      // A pod recreated under the same name has another namespace: listen there instead.
      if (!want || want.netns !== h.netns || want.w.uid !== h.workload.uid) this.unhost(h);
    }
    for (const [key, { w, netns }] of wanted) if (!this.hosted.has(key) && !this.opening.has(key)) void this.host(key, w, netns);
    const json = this.snapshotJson();
    for (const h of this.hosted.values()) for (const ws of h.sockets.clients) ws.send(json);
  }

  private async host(key: string, w: WorkloadEntry, netns: string): Promise<void> {
    this.opening.add(key);
    const server = createServer((req, res) => void this.onRequest(w, req, res));
    // The waypoint sends only explain answers: a few lines each.
    const sockets = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
    server.on('upgrade', (req, socket, head) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== waypointConfigPath) return void socket.destroy();
      sockets.handleUpgrade(req, socket, head, (ws) => this.onSubscriber(key, ws));
    });
    server.on('error', (err) => this.o.log.warn({ waypoint: key, err: err.message }, 'waypoint endpoint error'));
    let ns = -1;
    try {
      ns = openNetns(netns);
      // reusePort: a successor agent (an upgrade) listens beside this one before it goes.
      const fd = listenerIn(ns, '127.0.0.1', waypointLocalPort, { reusePort: true });
      server.listen({ fd });
      await once(server, 'listening');
      if (this.stopped) return void server.close();
      this.hosted.set(key, { key, workload: w, netns, server, sockets });
      this.o.log.info({ waypoint: key, identity: spiffeId(identityOf(w, this.o.trustDomain)) }, 'serving a waypoint pod its identity and configuration');
    } catch (err) {
      // The pod's namespace may be gone already (the pod went meanwhile); the next push tries again.
      this.o.log.warn({ waypoint: key, err: errorMessage(err) }, 'cannot open the waypoint endpoint in its pod');
      server.close();
    } finally {
      if (ns >= 0) closeFd(ns);
      this.opening.delete(key);
    }
  }

  private unhost(h: Hosted): void {
    this.hosted.delete(h.key);
    for (const ws of h.sockets.clients) ws.terminate();
    h.sockets.close();
    h.server.close();
    h.server.closeAllConnections();
  }

  /**
   * Asks waypoint pod `key` (`namespace/name`) what its security does with a request (`ambit
   * explain --http`); it answers from the policies and keys it runs with.
   */
  explain(key: string, req: Omit<WaypointExplainRequest, 'type' | 'id'>): Promise<Omit<WaypointExplainAnswer, 'type' | 'id'>> {
    const ws = this.hosted.get(key)?.sockets.clients.values().next().value;
    if (!ws) return Promise.reject(new Error(`waypoint pod ${key} is not connected to this node's agent`));
    const id = ++this.explainId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.explaining.delete(id);
        reject(new Error(`waypoint pod ${key} did not answer in 5 s`));
      }, 5000);
      this.explaining.set(id, (a) => {
        clearTimeout(timer);
        this.explaining.delete(id);
        if (a.error) reject(new Error(a.error));
        else resolve({ steps: a.steps, ...(a.refused ? { refused: a.refused } : {}) });
      });
      ws.send(JSON.stringify({ type: 'explain', id, ...req } satisfies WaypointExplainRequest));
    });
  }

  private onSubscriber(key: string, ws: WebSocket): void {
    ws.on('error', () => undefined);
    ws.on('message', (data) => {
      try {
        const a = JSON.parse(data.toString()) as WaypointExplainAnswer;
        if (a.type === 'explained' && Array.isArray(a.steps)) this.explaining.get(a.id)?.(a);
      } catch {
        this.o.log.warn({ waypoint: key }, 'the waypoint sent a message that is not JSON');
      }
    });
    ws.send(this.snapshotJson());
    this.o.log.debug({ waypoint: key }, 'waypoint subscribed to its configuration');
  }

  private snapshotJson(): string {
    const s = this.o.state;
    if (this.snapshotCache?.version === s.version) return this.snapshotCache.json;
    const snapshot: WaypointSnapshot = {
      type: 'snapshot',
      version: s.version,
      trustDomain: this.o.trustDomain,
      services: [...s.services.values()],
      workloads: [...s.workloads.values()],
      nodes: [...s.nodes.values()],
      namespaces: [...s.namespaces.values()],
      trustBundles: [...s.trustBundles.values()],
      traffic: [...s.traffic.values()],
      policies: [...s.policies.values()].filter((p) => hasTargetRefs(p.spec)),
    };
    const json = JSON.stringify(snapshot);
    this.snapshotCache = { version: s.version, json };
    return json;
  }

  private async onRequest(w: WorkloadEntry, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || new URL(req.url ?? '/', 'http://x').pathname !== waypointCertificatePath) return answer(404, { error: `POST ${waypointCertificatePath}, or a WebSocket on ${waypointConfigPath}` });
    let body = '';
    for await (const chunk of req) {
      body += chunk;
      if (body.length > maxBody) return answer(413, { error: `a certificate request is at most ${maxBody} bytes` });
    }
    let request: WaypointCertificateRequest;
    try {
      request = JSON.parse(body) as WaypointCertificateRequest;
      if (typeof request.csr !== 'string') throw new Error('csr must be a PEM string');
    } catch (err) {
      return answer(400, { error: `the request must be JSON {"csr": "<PEM>"}: ${errorMessage(err)}` });
    }
    const want = spiffeId(identityOf(w, this.o.trustDomain));
    try {
      const der = fromPem(request.csr)[0];
      if (!der) throw new Error('no PEM block');
      const { uris } = parseCsr(der);
      if (uris.length !== 1 || uris[0] !== want) return answer(403, { error: `this pod's identity is ${want}; the CSR asks for ${uris.join(', ') || 'none'}` });
    } catch (err) {
      return answer(400, { error: `the CSR does not parse or its signature does not verify: ${errorMessage(err)}` });
    }
    const ttl = Math.min(request.ttlSeconds ?? this.o.maxTtlSeconds, this.o.maxTtlSeconds);
    try {
      const r = await this.o.ca.requestCertificate(request.csr, ttl);
      const response: WaypointCertificateResponse = { chain: r.chain, trustBundle: r.trustBundle, notBefore: r.notBefore, notAfter: r.notAfter, serial: r.serial };
      answer(200, response);
    } catch (err) {
      answer(err instanceof CertificateRefused ? 403 : 503, { error: errorMessage(err) });
    }
  }
}
