// Certification path validation by the OpenSSL Node itself runs on, through koffi: X509_verify_cert
// against a store of trust anchors, the check `openssl verify` and a TLS handshake make (signatures,
// basic constraints and path length, name constraints, unknown critical extensions, the validity of
// every certificate up to and including the root). Node 20 has no path validation outside a TLS
// handshake. What a certificate must say beyond a valid path (SPIFFE's rules) is shared/identity's.

import koffi from 'koffi';
import { AmbitError } from '../shared/errors.js';

/** OpenSSL's X509_V_ERR_* codes that callers tell apart; the rest come with OpenSSL's own text. */
export const verifyErrors = {
  certNotYetValid: 9,
  certHasExpired: 10,
} as const;

export class OpenSslCallFailed extends AmbitError {
  constructor(
    readonly call: string,
    why = 'out of memory',
  ) {
    super('OpenSslCallFailed', `${call} failed: ${why}`);
  }
}

type Fn = (...args: unknown[]) => unknown;
let fns: Record<string, Fn> | undefined;

/**
 * Bound on first use. `load(null)` is dlopen(NULL): the node binary, which exports the libcrypto
 * it is built with (a distribution's node that links libcrypto.so instead is covered too), so
 * this is the same OpenSSL as Node's TLS, and no second copy is loaded.
 */
function c(): Record<string, Fn> {
  if (fns) return fns;
  const self = koffi.load(null);
  koffi.opaque('ossl_X509');
  koffi.opaque('ossl_X509_STORE');
  koffi.opaque('ossl_X509_STORE_CTX');
  koffi.opaque('ossl_STACK');
  const decl = {
    // `pp` is advanced past what was read; passed as the address of the DER bytes.
    d2i_X509: 'ossl_X509 *d2i_X509(void *a, _Inout_ uint64_t *pp, long length)',
    X509_free: 'void X509_free(ossl_X509 *x)',
    X509_up_ref: 'int X509_up_ref(ossl_X509 *x)',
    X509_STORE_new: 'ossl_X509_STORE *X509_STORE_new()',
    X509_STORE_free: 'void X509_STORE_free(ossl_X509_STORE *s)',
    X509_STORE_add_cert: 'int X509_STORE_add_cert(ossl_X509_STORE *s, ossl_X509 *x)',
    X509_STORE_CTX_new: 'ossl_X509_STORE_CTX *X509_STORE_CTX_new()',
    X509_STORE_CTX_free: 'void X509_STORE_CTX_free(ossl_X509_STORE_CTX *ctx)',
    X509_STORE_CTX_init: 'int X509_STORE_CTX_init(ossl_X509_STORE_CTX *ctx, ossl_X509_STORE *s, ossl_X509 *leaf, ossl_STACK *untrusted)',
    X509_STORE_CTX_set_time: 'void X509_STORE_CTX_set_time(ossl_X509_STORE_CTX *ctx, unsigned long flags, int64_t t)',
    X509_STORE_CTX_get_error: 'int X509_STORE_CTX_get_error(ossl_X509_STORE_CTX *ctx)',
    X509_STORE_CTX_get_error_depth: 'int X509_STORE_CTX_get_error_depth(ossl_X509_STORE_CTX *ctx)',
    X509_verify_cert: 'int X509_verify_cert(ossl_X509_STORE_CTX *ctx)',
    X509_verify_cert_error_string: 'const char *X509_verify_cert_error_string(long n)',
    OPENSSL_sk_new_null: 'ossl_STACK *OPENSSL_sk_new_null()',
    OPENSSL_sk_push: 'int OPENSSL_sk_push(ossl_STACK *sk, ossl_X509 *x)',
    OPENSSL_sk_free: 'void OPENSSL_sk_free(ossl_STACK *sk)',
    ERR_clear_error: 'void ERR_clear_error()',
  };
  const bound: Record<string, Fn> = {};
  for (const [name, proto] of Object.entries(decl)) bound[name] = self.func(proto) as Fn;
  fns = bound;
  return bound;
}

/** The outcome of one validation: `depth` is the position of the certificate at fault, leaf 0, -1 when none. */
export type PathVerdict = { ok: true } | { ok: false; code: number; depth: number; reason: string };

const valid: PathVerdict = { ok: true };

/** What a store owns in C: the X509_STORE, and the certificates it has parsed, by their DER. */
interface Owned {
  store: unknown;
  parsed: Map<string, unknown>;
}
const owned = new FinalizationRegistry<Owned>((o) => {
  for (const x of o.parsed.values()) c().X509_free!(x);
  c().X509_STORE_free!(o.store);
});

/**
 * Certificates kept parsed per store, the least recently used dropped first. OpenSSL 3 spends
 * about 120 us reading one certificate (its public key goes through the provider decoders), twice
 * what checking its signature costs; every SVID of a CA comes with the same intermediates, and a
 * peer presents the same leaf on each new session until it rotates. Some 4 KB of C memory each.
 */
const maxParsed = 256;

/** An X509_STORE holding trust anchors, freed when the object is collected. */
export class X509TrustStore {
  private readonly o: Owned;

  /** Roots as DER; throws OpenSslCallFailed when one is not a certificate. */
  constructor(roots: Buffer[]) {
    const f = c();
    const store = f.X509_STORE_new!();
    if (!store) throw new OpenSslCallFailed('X509_STORE_new');
    this.o = { store, parsed: new Map() };
    owned.register(this, this.o);
    try {
      for (const der of roots) {
        const x = parse(der);
        if (!x) throw new OpenSslCallFailed('d2i_X509', 'a trust anchor is not a DER certificate');
        // The store takes its own reference; a duplicate root is not an error worth failing on.
        f.X509_STORE_add_cert!(store, x);
        f.X509_free!(x);
      }
    } finally {
      f.ERR_clear_error!();
    }
  }

  /**
   * Validates `chain` (leaf first, then the certificates offered to build the path with, DER) at
   * `atSeconds` (Unix time). Expected failures are verdicts; only OpenSSL running out of memory throws.
   */
  verify(chain: Buffer[], atSeconds: number): PathVerdict {
    const f = c();
    // Each holds one reference of ours, dropped at the end, whether it came from the cache or not.
    const parsed: unknown[] = [];
    let untrusted: unknown = null;
    let ctx: unknown = null;
    try {
      for (let i = 0; i < chain.length; i++) {
        const x = this.parsed(chain[i]!);
        if (!x) return { ok: false, code: -1, depth: i, reason: 'the certificate is not DER that OpenSSL reads' };
        parsed.push(x);
      }
      if (parsed.length === 0) return { ok: false, code: -1, depth: -1, reason: 'no certificate' };
      untrusted = f.OPENSSL_sk_new_null!();
      if (!untrusted) throw new OpenSslCallFailed('OPENSSL_sk_new_null');
      for (let i = 1; i < parsed.length; i++) if (!f.OPENSSL_sk_push!(untrusted, parsed[i])) throw new OpenSslCallFailed('OPENSSL_sk_push');
      ctx = f.X509_STORE_CTX_new!();
      if (!ctx) throw new OpenSslCallFailed('X509_STORE_CTX_new');
      if (f.X509_STORE_CTX_init!(ctx, this.o.store, parsed[0], untrusted) !== 1) throw new OpenSslCallFailed('X509_STORE_CTX_init');
      f.X509_STORE_CTX_set_time!(ctx, 0, Math.floor(atSeconds));
      if (f.X509_verify_cert!(ctx) === 1) return valid;
      const code = f.X509_STORE_CTX_get_error!(ctx) as number;
      return { ok: false, code, depth: f.X509_STORE_CTX_get_error_depth!(ctx) as number, reason: f.X509_verify_cert_error_string!(code) as string };
    } finally {
      if (ctx) f.X509_STORE_CTX_free!(ctx);
      // Frees the stack only; the certificates are released below.
      if (untrusted) f.OPENSSL_sk_free!(untrusted);
      for (const x of parsed) f.X509_free!(x);
      // A failed parse or verification leaves entries on this thread's error queue, which Node's
      // next crypto call could otherwise report as its own.
      f.ERR_clear_error!();
    }
  }

  /** A parsed certificate with a reference for the caller, from the cache or read and cached. */
  private parsed(der: Buffer): unknown {
    const f = c();
    const key = der.toString('latin1');
    const cache = this.o.parsed;
    let x = cache.get(key);
    if (x) {
      // Most recently used last.
      cache.delete(key);
    } else {
      x = parse(der);
      if (!x) return null;
      if (cache.size >= maxParsed) {
        const [oldest, held] = cache.entries().next().value as [string, unknown];
        cache.delete(oldest);
        f.X509_free!(held);
      }
    }
    cache.set(key, x);
    f.X509_up_ref!(x);
    return x;
  }
}

/** One DER certificate, all of it: bytes left over make it unreadable too. */
function parse(der: Buffer): unknown {
  const start = koffi.address(der);
  const pp = [start];
  const x = c().d2i_X509!(null, pp, der.length);
  if (!x) return null;
  if (BigInt(pp[0] as unknown as number | bigint) - start !== BigInt(der.length)) {
    c().X509_free!(x);
    return null;
  }
  return x;
}
