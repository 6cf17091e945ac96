// The agent's workload certificates: one per identity (namespace and service account) with an
// enrolled pod on this node, not one per pod. The key pair is made here and never leaves the node;
// the CA gets a CSR. A certificate is fetched when the first pod of its identity is enrolled,
// rotated at a fraction of its lifetime (with jitter, so a fleet does not rotate in step), fetched
// again with backoff while the CA is away, and dropped when the last such pod leaves. Key pairs
// are made on libuv's thread pool: an RSA key takes 100-500 ms, which traffic must not wait for.

import { EventEmitter } from 'node:events';
import type { SecureContext } from 'node:tls';
import { generateKeyPair, type KeyObject, X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import type { Logger } from '../../shared/log.js';
import { type Identity, spiffeId } from '../../shared/identity/spiffe.js';
import { buildCsr, toPem } from '../../shared/identity/x509.js';
import type { AgentState } from '../state/state.js';
import { CertificateSet, workloadCertificate } from './set.js';
import { CertificateRefused, type CaClient } from './caclient.js';

export type KeyType = 'ecdsa' | 'rsa';

const generateKeyPairAsync = promisify(generateKeyPair);

/** A new key pair for a CSR, made off the event loop. */
export function generateKeys(keyType: KeyType): Promise<{ publicKey: KeyObject; privateKey: KeyObject }> {
  return keyType === 'rsa' ? generateKeyPairAsync('rsa', { modulusLength: 2048 }) : generateKeyPairAsync('ec', { namedCurve: 'P-256' });
}

export interface WorkloadCertificate {
  id: string;
  identity: Identity;
  key: KeyObject;
  keyPem: string;
  chain: string[];
  /** The roots the CA sent with it, which the certificate's TLS contexts trust. */
  trustBundle: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** Built once per certificate, for every TLS connection that presents it. */
  secureContext: SecureContext;
}

interface Slot {
  identity: Identity;
  current?: WorkloadCertificate;
  /** When this identity was first wanted: the start of "first pod to certificate". */
  wantedAt: number;
  readyAt?: number;
  timer?: NodeJS.Timeout;
  failures: number;
  lastError?: string;
  inFlight: boolean;
  /** Fetch again as soon as the request in flight ends. */
  again?: boolean;
}

/** What the proxy reads of the certificates: the manager's, or a worker thread's copy (replica.ts). */
export type WorkloadCertificates = Pick<CertificateManager, 'get' | 'forServerName' | 'waitFor'>;

export interface ManagerOptions {
  state: AgentState;
  ca: CaClient;
  trustDomain: string;
  ttlSeconds: number;
  keyType: KeyType;
  log: Logger;
  /** Rotate after this fraction of the lifetime (default 0.5), plus or minus `jitter` of it. */
  rotateAt?: number;
  jitter?: number;
}

export class CertificateManager extends EventEmitter<{ issued: [WorkloadCertificate]; dropped: [string]; failed: [string, string] }> {
  private readonly slots = new Map<string, Slot>();
  private trustBundle: string[] = [];
  /** The CA's current root as last pushed; when it changes, every certificate is fetched again. */
  private currentRoot: string | undefined;
  private stopped = false;
  private readonly onConfig = () => this.reconcile();
  /** The current certificate of each identity, as the proxy presents them. */
  private readonly held = new CertificateSet();

  constructor(private readonly o: ManagerOptions) {
    super();
  }

  start(): void {
    this.o.state.on('config', this.onConfig);
    this.reconcile();
  }

  stop(): void {
    this.stopped = true;
    this.o.state.off('config', this.onConfig);
    for (const s of this.slots.values()) clearTimeout(s.timer);
  }

  /** The current certificate of an identity, if it has one. */
  get(id: string): WorkloadCertificate | undefined {
    return this.held.get(id);
  }

  /** The current certificate whose identity `nameOf` spells as `name` (a TLS server name). */
  forServerName(name: string, nameOf: (i: Identity) => string): WorkloadCertificate | undefined {
    return this.held.forServerName(name, nameOf);
  }

  /** The certificate of an identity, waiting up to `timeoutMs` for one being fetched; undefined if none came. */
  waitFor(id: string, timeoutMs: number): Promise<WorkloadCertificate | undefined> {
    return this.held.waitFor(id, timeoutMs);
  }

  /** Every current certificate (what a worker thread's copy starts from). */
  current(): IterableIterator<WorkloadCertificate> {
    return this.held.values();
  }

  /** The roots the CA last sent, PEM. */
  roots(): string[] {
    return this.trustBundle;
  }

  list() {
    const now = Date.now();
    return [...this.slots.entries()].map(([id, s]) => ({
      identity: id,
      state: s.current ? (now > s.current.notAfter.getTime() ? 'expired' : 'ready') : s.failures ? 'retrying' : 'pending',
      serial: s.current?.serial,
      notBefore: s.current?.notBefore.toISOString(),
      notAfter: s.current?.notAfter.toISOString(),
      expiresInSeconds: s.current ? Math.round((s.current.notAfter.getTime() - now) / 1000) : undefined,
      firstPodToCertificateMs: s.readyAt ? s.readyAt - s.wantedAt : undefined,
      ...(s.lastError ? { lastError: s.lastError } : {}),
    }));
  }

  /** Identities wanted now: those of this node's enrolled pods. */
  private reconcile(): void {
    if (this.stopped) return;
    const wanted = new Map<string, Identity>();
    for (const w of this.o.state.localWorkloads()) {
      if (!this.o.state.isEnrolled(w)) continue;
      const identity = { trustDomain: this.o.trustDomain, namespace: w.namespace, serviceAccount: w.serviceAccount };
      wanted.set(spiffeId(identity), identity);
    }
    for (const [id, identity] of wanted) {
      if (this.slots.has(id)) continue;
      this.slots.set(id, { identity, wantedAt: Date.now(), failures: 0, inFlight: false });
      void this.fetch(id);
    }
    const root = this.o.state.trustBundles.get(`trustbundle/${this.o.trustDomain}`)?.roots[0];
    if (root && this.currentRoot && root !== this.currentRoot) {
      // A root rotation: move to certificates from the new root within a few seconds, spread out.
      this.o.log.info('the CA root changed; renewing every certificate');
      for (const [id, slot] of this.slots) this.schedule(id, slot, Math.round(Math.random() * 3000));
    }
    if (root) this.currentRoot = root;
    for (const [id, slot] of this.slots) {
      if (wanted.has(id)) continue;
      clearTimeout(slot.timer);
      this.slots.delete(id);
      this.held.drop(id);
      this.o.log.info({ identity: id }, 'certificate dropped: no enrolled pod of this identity is left on the node');
      this.emit('dropped', id);
    }
  }

  private async fetch(id: string): Promise<void> {
    const slot = this.slots.get(id);
    if (!slot || this.stopped) return;
    if (slot.inFlight) {
      // A renewal asked for while a request runs (a root rotation) happens right after it.
      slot.again = true;
      return;
    }
    slot.inFlight = true;
    clearTimeout(slot.timer);
    try {
      const keys = await generateKeys(this.o.keyType);
      if (this.slots.get(id) !== slot || this.stopped) return; // dropped meanwhile
      const csr = toPem(buildCsr(keys.privateKey, keys.publicKey, id), 'CERTIFICATE REQUEST');
      const r = await this.o.ca.requestCertificate(csr, this.o.ttlSeconds);
      if (this.slots.get(id) !== slot) return; // dropped meanwhile
      const keyPem = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
      const leaf = new X509Certificate(r.chain[0]!);
      const cert = workloadCertificate({ id, identity: slot.identity, keyPem, chain: r.chain, trustBundle: r.trustBundle, serial: r.serial, notBefore: r.notBefore, notAfter: r.notAfter }, keys.privateKey);
      if (leaf.serialNumber.toLowerCase().replace(/^0+/, '') !== r.serial.replace(/^0+/, '')) throw new Error('the CA answered a certificate whose serial differs from the one it reported');
      this.trustBundle = r.trustBundle;
      slot.current = cert;
      this.held.put(cert);
      slot.readyAt ??= Date.now();
      slot.failures = 0;
      delete slot.lastError;
      this.schedule(id, slot, this.rotationDelay(cert));
      this.o.log.info({ identity: id, serial: cert.serial, notAfter: r.notAfter }, 'certificate issued');
      this.emit('issued', cert);
    } catch (err) {
      slot.failures++;
      slot.lastError = (err as Error).message;
      // Refused: the controller may not know the pod yet, so ask again, but calmly.
      const base = err instanceof CertificateRefused ? 5000 : 500;
      const delay = Math.round(Math.random() * Math.min(30_000, base * 2 ** Math.min(slot.failures - 1, 6)));
      this.o.log.warn({ identity: id, err: slot.lastError, retryInMs: delay }, 'certificate request failed');
      this.emit('failed', id, slot.lastError);
      if (this.slots.get(id) === slot) this.schedule(id, slot, delay);
    } finally {
      slot.inFlight = false;
      if (slot.again && this.slots.get(id) === slot) {
        slot.again = false;
        this.schedule(id, slot, 0);
      }
    }
  }

  private rotationDelay(c: WorkloadCertificate): number {
    const life = c.notAfter.getTime() - c.notBefore.getTime();
    const fraction = (this.o.rotateAt ?? 0.5) + ((this.o.jitter ?? 0.1) * (Math.random() * 2 - 1));
    return Math.max(0, c.notBefore.getTime() + life * fraction - Date.now());
  }

  private schedule(id: string, slot: Slot, delayMs: number): void {
    clearTimeout(slot.timer);
    if (this.stopped) return;
    slot.timer = setTimeout(() => void this.fetch(id), delayMs);
    slot.timer.unref();
  }
}
