// The workload certificates one event loop presents, by identity and by TLS server name, and the
// wait for one not issued yet. The certificate manager keeps its own in one (manager.ts); each
// worker thread keeps a copy in another, fed with what the manager issued (agent/workers/).

import { createPrivateKey, type KeyObject } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import type { Identity } from '../../shared/identity/spiffe.js';
import type { WorkloadCertificate } from './manager.js';

/** A certificate as it crosses to a worker thread: what can be cloned, the key as PEM. */
export interface SharedCertificate {
  id: string;
  identity: Identity;
  keyPem: string;
  chain: string[];
  trustBundle: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
}

export function shareCertificate(c: WorkloadCertificate): SharedCertificate {
  return { id: c.id, identity: c.identity, keyPem: c.keyPem, chain: c.chain, trustBundle: c.trustBundle, serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString() };
}

/** A shared certificate made whole again, its TLS context built once for every connection that presents it. */
export function workloadCertificate(s: SharedCertificate, key: KeyObject = createPrivateKey(s.keyPem)): WorkloadCertificate {
  return {
    ...s,
    key,
    notBefore: new Date(s.notBefore),
    notAfter: new Date(s.notAfter),
    secureContext: createSecureContext({ key: s.keyPem, cert: s.chain.join(''), ca: s.trustBundle, minVersion: 'TLSv1.3' }),
  };
}

export class CertificateSet {
  private readonly current = new Map<string, WorkloadCertificate>();
  private readonly waiters = new Map<string, Set<(c: WorkloadCertificate) => void>>();
  /**
   * Certificates by the server name (SNI) a client asks for, built on the first handshake after a
   * certificate is issued, rotated or dropped, so a handshake costs one map lookup.
   */
  private byServerName: { nameOf: (i: Identity) => string; names: Map<string, WorkloadCertificate> } | undefined;

  get size(): number {
    return this.current.size;
  }

  values(): IterableIterator<WorkloadCertificate> {
    return this.current.values();
  }

  put(c: WorkloadCertificate): void {
    this.current.set(c.id, c);
    this.byServerName = undefined;
    const waiting = this.waiters.get(c.id);
    this.waiters.delete(c.id);
    for (const w of waiting ?? []) w(c);
  }

  drop(id: string): void {
    if (this.current.delete(id)) this.byServerName = undefined;
  }

  /** The current certificate of an identity, if it has one. */
  get(id: string): WorkloadCertificate | undefined {
    return this.current.get(id);
  }

  /** The current certificate whose identity `nameOf` spells as `name` (a TLS server name). */
  forServerName(name: string, nameOf: (i: Identity) => string): WorkloadCertificate | undefined {
    if (this.byServerName?.nameOf !== nameOf) {
      const names = new Map<string, WorkloadCertificate>();
      for (const c of this.current.values()) names.set(nameOf(c.identity), c);
      this.byServerName = { nameOf, names };
    }
    return this.byServerName.names.get(name);
  }

  /**
   * The certificate of an identity, waiting up to `timeoutMs` for one being fetched (a pod's first
   * connection can come before its certificate, as ztunnel fetches on demand); undefined if none came.
   */
  waitFor(id: string, timeoutMs: number): Promise<WorkloadCertificate | undefined> {
    const now = this.get(id);
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      let waiting = this.waiters.get(id);
      if (!waiting) this.waiters.set(id, (waiting = new Set()));
      const done = (c: WorkloadCertificate | undefined) => {
        clearTimeout(timer);
        waiting.delete(done);
        if (waiting.size === 0 && this.waiters.get(id) === waiting) this.waiters.delete(id);
        resolve(c);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      waiting.add(done);
    });
  }
}
