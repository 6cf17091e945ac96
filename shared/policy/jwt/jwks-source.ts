// Where a rule's public keys come from: inline `jwks`, or `jwksUri` (or the issuer's OpenID discovery
// document when neither is set) fetched through the waypoint's injected fetcher, as istiod's
// JwtKeyResolver does: kept, refreshed every PILOT_JWT_PUB_KEY_REFRESH_INTERVAL (20 min), the last good
// set kept when a refresh fails, retried sooner after a failure. Verifying with the keys is keys.ts's.

import type { JWTVerifyGetKey } from 'jose';
import type { Logger } from '../../log.js';
import { messages, parseJwks } from './keys.js';

/** The keys of one rule, read synchronously on the request path. */
export interface KeySource {
  /** The keys to verify with, undefined when there are none (yet). */
  readonly current: JWTVerifyGetKey | undefined;
  /** While there are no keys and a fetch is in flight: settles when it ends (it is bounded by its timeout). */
  readonly pending: Promise<void> | undefined;
  /** Envoy's reason for a token this source has no keys for. */
  readonly failure: string;
  /** One line for explain. */
  describe(): string;
  close(): void;
}

export class InlineJwks implements KeySource {
  readonly current: JWTVerifyGetKey | undefined;
  readonly pending = undefined;
  readonly failure = messages.noValidKeys;
  private readonly problem: string | undefined;

  constructor(text: string) {
    const parsed = parseJwks(text);
    if ('keys' in parsed) this.current = parsed.keys;
    else this.problem = parsed.problem;
  }

  describe(): string {
    return this.problem ? `inline jwks unusable (${this.problem}): its tokens are refused` : 'inline jwks';
  }

  close(): void {}
}

export interface RemoteJwksOptions {
  fetchJwks(uri: string, signal: AbortSignal): Promise<string>;
  log: Logger;
  /** Between good fetches; Istio's PILOT_JWT_PUB_KEY_REFRESH_INTERVAL defaults to 20 min. */
  refreshMs: number;
  /** After a failed fetch, at most (the first tries, with no keys yet, back off from 1 s up to it). */
  retryMs: number;
  /** One fetch's bound (the rule's `timeout`, 5 s by default). */
  timeoutMs: number;
  now(): number;
}

export const defaultRefreshMs = 20 * 60_000;
export const defaultRetryMs = 60_000;

/**
 * Keys fetched from `uri`, or, with `discover`, from the `jwks_uri` of the OpenID Provider
 * Configuration at `uri` (OpenID Connect Discovery 1.0 section 4). The first fetch starts at
 * construction; a request that arrives before it ends waits for it (its timeout bounds the wait).
 */
export class RemoteJwks implements KeySource {
  current: JWTVerifyGetKey | undefined;
  pending: Promise<void> | undefined;
  readonly failure = 'Jwks remote fetch is failed';
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private controller: AbortController | undefined;
  private lastGood = 0;
  private lastError = '';
  /** Failed fetches since the last good one. */
  private failures = 0;
  fetches = 0;

  constructor(
    readonly uri: string,
    private readonly o: RemoteJwksOptions,
    private readonly discover = false,
  ) {
    this.pending = this.refresh();
  }

  private async get(uri: string, signal: AbortSignal): Promise<string> {
    return this.o.fetchJwks(uri, signal);
  }

  private async fetchText(signal: AbortSignal): Promise<string> {
    if (!this.discover) return this.get(this.uri, signal);
    const config = JSON.parse(await this.get(this.uri, signal)) as { jwks_uri?: unknown };
    const jwksUri = config.jwks_uri;
    if (typeof jwksUri !== 'string' || !/^https?:\/\//.test(jwksUri)) throw new Error(`discovery document has no http(s) jwks_uri`);
    return this.get(jwksUri, signal);
  }

  private async refresh(): Promise<void> {
    if (this.closed) return;
    this.fetches++;
    const controller = new AbortController();
    this.controller = controller;
    const bound = setTimeout(() => controller.abort(new Error(`timed out after ${this.o.timeoutMs} ms`)), this.o.timeoutMs);
    let next = this.o.retryMs;
    try {
      // The race makes the timeout hold even when the fetcher ignores its signal.
      const text = await Promise.race([
        this.fetchText(controller.signal),
        new Promise<never>((_, reject) => controller.signal.addEventListener('abort', () => reject(controller.signal.reason as Error), { once: true })),
      ]);
      const parsed = parseJwks(text);
      if ('problem' in parsed) throw new Error(`the JWKS ${parsed.problem}`);
      this.current = parsed.keys;
      this.lastGood = this.o.now();
      this.lastError = '';
      this.failures = 0;
      next = this.o.refreshMs;
    } catch (e) {
      this.lastError = (e as Error).message;
      // Without keys every token of the issuer is refused: try again soon (a waypoint's first fetch
      // can come before its certificate, or the issuer's pod may still be starting), backing off.
      this.failures++;
      if (!this.current) next = Math.min(this.o.retryMs, 1000 * 2 ** (this.failures - 1));
      // Istio keeps serving the last good keys when a refresh fails; with none, tokens are refused.
      this.o.log.warn({ jwksUri: this.uri, err: this.lastError, keptLastGood: this.current !== undefined }, 'JWKS fetch failed');
    } finally {
      clearTimeout(bound);
      this.controller = undefined;
      this.pending = undefined;
    }
    if (!this.closed) {
      this.timer = setTimeout(() => {
        const attempt = this.refresh();
        // Without keys, requests wait for this retry as they waited for the first fetch.
        if (!this.current) this.pending = attempt;
      }, next);
      this.timer.unref();
    }
  }

  describe(): string {
    const what = this.discover ? `keys from the OpenID discovery document ${this.uri}` : `jwksUri ${this.uri}`;
    if (this.current) return `${what}: fetched ${new Date(this.lastGood).toISOString()}${this.lastError ? `, last refresh failed (${this.lastError}), keeping those keys` : ''}`;
    if (this.pending) return `${what}: first fetch in flight`;
    return `${what}: no keys (${this.lastError || 'not fetched'}): its tokens are refused`;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.controller?.abort(new Error('closed'));
  }
}
