// The agent's own node certificate (spiffe://<td>/ambit/node/<name>): fetched with the node's
// bootstrap token, then presented on every connection to the controller in place of the token,
// renewed at half its lifetime (with jitter) while the old one still authenticates the renewal.

import { EventEmitter } from 'node:events';
import type { Logger } from '../../shared/log.js';
import { nodeSpiffeId } from '../../shared/identity/spiffe.js';
import { buildCsr, toPem } from '../../shared/identity/x509.js';
import { generateKeys } from './manager.js';
import type { CaClient } from './caclient.js';

export interface NodeCredential {
  key: string;
  cert: string;
  notAfter: Date;
}

export class NodeCredentials extends EventEmitter<{ renewed: [NodeCredential] }> {
  private credential: NodeCredential | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private rejected = false;
  private stopped = false;

  constructor(
    private readonly o: { ca: CaClient; node: string; trustDomain: string; ttlSeconds: number; log: Logger },
  ) {
    super();
  }

  /** The certificate to present, while it is valid and the controller has not refused it. */
  current(): NodeCredential | undefined {
    return this.credential && !this.rejected && this.credential.notAfter.getTime() > Date.now() ? this.credential : undefined;
  }

  /** The controller refused the certificate (its root left the bundle): use the token, renew now. */
  rejectedByController(): void {
    if (this.rejected) return;
    this.rejected = true;
    this.o.log.warn('the controller refused the node certificate; back to the token, renewing');
    this.renewSoon();
  }

  /** Renews within a few seconds (after a root rotation), spread so a fleet does not renew at once. */
  renewSoon(): void {
    this.schedule(Math.round(Math.random() * 3000));
  }

  start(): void {
    void this.renew();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async renew(): Promise<void> {
    if (this.stopped) return;
    try {
      const keys = await generateKeys('ecdsa');
      if (this.stopped) return;
      const csr = toPem(buildCsr(keys.privateKey, keys.publicKey, nodeSpiffeId(this.o.trustDomain, this.o.node)), 'CERTIFICATE REQUEST');
      const r = await this.o.ca.requestCertificate(csr, this.o.ttlSeconds);
      this.rejected = false;
      this.credential = { key: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: r.chain.join(''), notAfter: new Date(r.notAfter) };
      this.failures = 0;
      const life = Date.parse(r.notAfter) - Date.parse(r.notBefore);
      this.schedule(Math.max(1000, Date.parse(r.notBefore) + life * (0.45 + Math.random() * 0.1) - Date.now()));
      this.o.log.info({ serial: r.serial, notAfter: r.notAfter }, 'node certificate issued');
      this.emit('renewed', this.credential);
    } catch (err) {
      this.failures++;
      const delay = Math.round(Math.random() * Math.min(30_000, 500 * 2 ** Math.min(this.failures, 6)));
      this.o.log.warn({ err: (err as Error).message, retryInMs: delay }, 'node certificate request failed');
      this.schedule(delay);
    }
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.renew(), ms);
    this.timer.unref();
  }
}
