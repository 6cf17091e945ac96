// The waypoint's link to its node agent on 127.0.0.1:15019 inside its own pod: it asks for its
// certificate with a CSR (the key never leaves this process) and renews it at half its lifetime, and
// it keeps a WebSocket open on which the agent sends a configuration snapshot per change. Both retry
// with backoff while the agent is away (an agent restart); the waypoint keeps serving meanwhile.

import { request } from 'node:http';
import { createSecureContext, type SecureContext } from 'node:tls';
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import type { Logger } from '../shared/log.js';
import { errorMessage } from '../shared/errors.js';
import { spiffeId, type Identity } from '../shared/identity/spiffe.js';
import { buildCsr, toPem } from '../shared/identity/x509.js';
import { generateKeyPair } from 'node:crypto';
import { promisify } from 'node:util';
import type { WaypointCertificateResponse, WaypointExplainAnswer, WaypointExplainRequest, WaypointSnapshot } from '../shared/waypoint/config.js';
import { waypointCertificatePath, waypointConfigPath, waypointLocalPort } from '../shared/waypoint/names.js';
import type { SharedWaypointCertificate } from './workers/protocol.js';

const generateKeyPairAsync = promisify(generateKeyPair);

export interface WaypointCertificate {
  id: string;
  keyPem: string;
  chain: string[];
  /** The CA certificates peers are checked against, as the agent gave them with the chain. */
  trustBundle: string[];
  notAfter: Date;
  secureContext: SecureContext;
}

/** The certificate with its TLS context, from the PEMs: as issued, and in each worker thread. */
export function certificateFrom(c: SharedWaypointCertificate): WaypointCertificate {
  return {
    id: c.id,
    keyPem: c.keyPem,
    chain: c.chain,
    trustBundle: c.trustBundle,
    notAfter: new Date(c.notAfter),
    secureContext: createSecureContext({ key: c.keyPem, cert: c.chain.join(''), ca: c.trustBundle, minVersion: 'TLSv1.3' }),
  };
}

/** What crosses to a worker thread (a SecureContext does not). */
export function shareCertificate(c: WaypointCertificate): SharedWaypointCertificate {
  return { id: c.id, keyPem: c.keyPem, chain: c.chain, trustBundle: c.trustBundle, notAfter: c.notAfter.toISOString() };
}

export interface AgentLinkOptions {
  identity: Identity;
  log: Logger;
  host?: string;
  port?: number;
  ttlSeconds?: number;
  /** What the waypoint's security does with a request, for `ambit explain` (security.ts). */
  explain?(req: WaypointExplainRequest): Promise<Omit<WaypointExplainAnswer, 'type' | 'id'>>;
}

export class AgentLink extends EventEmitter<{ snapshot: [WaypointSnapshot]; certificate: [WaypointCertificate] }> {
  certificate: WaypointCertificate | undefined;
  private ws: WebSocket | undefined;
  private timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private configAttempts = 0;
  private certAttempts = 0;

  constructor(private readonly o: AgentLinkOptions) {
    super();
  }

  start(): void {
    void this.renew();
    this.subscribe();
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.ws?.terminate();
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.closed) f();
    }, ms);
    this.timers.add(t);
  }

  private backoff(attempt: number): number {
    // Full jitter between 100 ms and 5 s.
    return Math.random() * Math.min(5000, 100 * 2 ** attempt);
  }

  private async renew(): Promise<void> {
    const id = spiffeId(this.o.identity);
    try {
      const keys = await generateKeyPairAsync('ec', { namedCurve: 'P-256' });
      const csr = toPem(buildCsr(keys.privateKey, keys.publicKey, id), 'CERTIFICATE REQUEST');
      const r = await this.post({ csr, ...(this.o.ttlSeconds ? { ttlSeconds: this.o.ttlSeconds } : {}) });
      const keyPem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const cert = certificateFrom({ id, keyPem, chain: r.chain, trustBundle: r.trustBundle, notAfter: r.notAfter });
      this.certificate = cert;
      this.certAttempts = 0;
      this.emit('certificate', cert);
      const lifetime = cert.notAfter.getTime() - new Date(r.notBefore).getTime();
      this.o.log.info({ identity: id, notAfter: r.notAfter }, 'certificate issued');
      this.later(Math.max(1000, lifetime / 2), () => void this.renew());
    } catch (err) {
      this.o.log.warn({ identity: id, err: errorMessage(err) }, 'no certificate from the node agent yet; trying again');
      this.later(this.backoff(this.certAttempts++), () => void this.renew());
    }
  }

  private post(body: object): Promise<WaypointCertificateResponse> {
    return new Promise((resolve, reject) => {
      const req = request({ host: this.o.host ?? '127.0.0.1', port: this.o.port ?? waypointLocalPort, path: waypointCertificatePath, method: 'POST', headers: { 'content-type': 'application/json' }, timeout: 15_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(text) as WaypointCertificateResponse & { error?: string };
            if (res.statusCode !== 200) return reject(new Error(`the node agent answered ${res.statusCode}: ${parsed.error ?? text}`));
            resolve(parsed);
          } catch {
            reject(new Error(`the node agent answered ${res.statusCode} with something else than JSON`));
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error('the node agent did not answer within 15 s')));
      req.on('error', reject);
      req.end(JSON.stringify(body));
    });
  }

  private explain(ws: WebSocket, req: WaypointExplainRequest): void {
    const answer = (a: Omit<WaypointExplainAnswer, 'type' | 'id'>) => ws.send(JSON.stringify({ type: 'explained', id: req.id, ...a }));
    if (!this.o.explain) return answer({ steps: [], error: 'this waypoint does not explain' });
    this.o.explain(req).then(answer, (err: Error) => answer({ steps: [], error: err.message }));
  }

  private subscribe(): void {
    const ws = new WebSocket(`ws://${this.o.host ?? '127.0.0.1'}:${this.o.port ?? waypointLocalPort}${waypointConfigPath}`, { maxPayload: 256 * 1024 * 1024 });
    this.ws = ws;
    ws.on('open', () => {
      this.configAttempts = 0;
      this.o.log.info('subscribed to configuration from the node agent');
    });
    ws.on('message', (data) => {
      try {
        const s = JSON.parse(data.toString()) as WaypointSnapshot | WaypointExplainRequest;
        if (s.type === 'snapshot') this.emit('snapshot', s);
        else if (s.type === 'explain') this.explain(ws, s);
      } catch (err) {
        this.o.log.warn({ err: errorMessage(err) }, 'a configuration snapshot did not parse; keeping the last one');
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', () => {
      if (this.closed) return;
      this.later(this.backoff(this.configAttempts++), () => this.subscribe());
    });
  }
}
