// A small client of the Kubernetes REST API, for the mesh's own components: JSON requests over one
// keep-alive HTTPS agent, bearer-token or client-certificate authentication, Status errors as typed
// errors, and watches read as newline-delimited JSON. Keeping a cache in step with a watch is
// informer.ts's; where a resource lives in the URL space is paths.ts's.

import { Agent, request } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { AmbitError } from '../errors.js';
import { readBody } from '../http/body.js';
import type { Resource } from '../resources/types.js';
import type { KubeConfig } from './config.js';
import { collectionPath, objectPath, type ResourceKind } from './paths.js';

/** A Kubernetes `Status` failure: its HTTP code, reason (`NotFound`, `Conflict`, `Expired`...) and message. */
export class KubeApiError extends AmbitError {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super('KubeApiError', message);
  }
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | undefined>;
  timeoutMs?: number;
  /** Told each warning the server sent (admission webhooks', deprecations), as kubectl prints them. */
  onWarning?: (message: string) => void;
}

/** What a write may ask besides its body: a dry run (checked, admitted, never stored) and where warnings go. */
export interface WriteOptions {
  dryRun?: boolean;
  onWarning?: (message: string) => void;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ObjectList {
  items: Resource[];
  resourceVersion: string;
}

export type WatchEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK'; object: Resource } | { type: 'ERROR'; object: { code?: number; reason?: string; message?: string } };

export interface WatchOptions extends ListOptions {
  resourceVersion?: string;
  /** The server should end the watch after this long (it adds its own jitter). */
  timeoutSeconds?: number;
}

export interface WatchHandle {
  /** Ends the watch; `done` then resolves. */
  abort(): void;
  /** Resolves when the server ends the stream or it is aborted; rejects if the connection fails. */
  done: Promise<void>;
}

/** A watch line longer than this is not an event the mesh can use: the stream is cut. */
const maxLine = 16 * 1024 * 1024;

export class KubeClient {
  private agent: Agent;
  private readonly url: URL;

  constructor(
    readonly config: KubeConfig,
    private readonly o: { userAgent?: string; timeoutMs?: number } = {},
  ) {
    this.url = new URL(config.server);
    this.agent = this.makeAgent();
  }

  /** Trusts `ca` from now on (after a CA root rotation): open connections close, and watches resume on new ones. */
  setCa(ca: string): void {
    this.config.ca = ca;
    const old = this.agent;
    this.agent = this.makeAgent();
    old.destroy();
  }

  private makeAgent(): Agent {
    const c = this.config;
    return new Agent({ keepAlive: true, ...(c.ca ? { ca: c.ca } : {}), ...(c.cert ? { cert: c.cert } : {}), ...(c.key ? { key: c.key } : {}) });
  }

  /** One request; 2xx answers are parsed JSON, anything else a KubeApiError from the server's Status. */
  async request<T = unknown>(method: string, path: string, r: RequestOptions = {}): Promise<T> {
    const res = await this.open(method, path, r);
    if (r.onWarning) for (const w of res.headersDistinct.warning ?? []) r.onWarning(warningText(w));
    const text = await readAll(res, `${method} ${path}`);
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return (text ? JSON.parse(text) : undefined) as T;
    throw statusError(status, text, `${method} ${path}`);
  }

  async get<T extends Resource = Resource>(kind: ResourceKind, namespace: string, name: string): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', objectPath(kind, namespace, name));
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  async list(kind: ResourceKind, o: ListOptions = {}): Promise<ObjectList> {
    const list = await this.request<{ items?: Resource[]; metadata?: { resourceVersion?: string } }>('GET', collectionPath(kind, o.namespace), { query: { labelSelector: o.labelSelector, fieldSelector: o.fieldSelector } });
    // A list's items carry no apiVersion and kind on the wire; the list's own kind says them.
    const items = (list.items ?? []).map((i) => ({ ...i, apiVersion: kind.apiVersion, kind: kind.kind }));
    return { items, resourceVersion: list.metadata?.resourceVersion ?? '' };
  }

  create<T extends Resource>(kind: ResourceKind, r: T, query?: Record<string, string | undefined>): Promise<T> {
    return this.request<T>('POST', collectionPath(kind, r.metadata.namespace), { body: r, ...(query ? { query } : {}) });
  }

  /** PUT: fails with 409 when `r.metadata.resourceVersion` is not the stored one. */
  update<T extends Resource>(kind: ResourceKind, r: T, subresource?: 'status'): Promise<T> {
    return this.request<T>('PUT', objectPath(kind, r.metadata.namespace ?? '', r.metadata.name, subresource), { body: r });
  }

  patch<T extends Resource>(kind: ResourceKind, namespace: string, name: string, patch: unknown, type: 'merge' | 'json' | 'strategic' = 'merge', subresource?: 'status'): Promise<T> {
    const contentType = { merge: 'application/merge-patch+json', json: 'application/json-patch+json', strategic: 'application/strategic-merge-patch+json' }[type];
    return this.request<T>('PATCH', objectPath(kind, namespace, name, subresource), { body: patch, contentType });
  }

  /** Server-side apply as `fieldManager`, taking fields other managers own when `force`. */
  apply<T extends Resource>(kind: ResourceKind, r: T, fieldManager: string, force = true, w: WriteOptions = {}): Promise<T> {
    return this.request<T>('PATCH', objectPath(kind, r.metadata.namespace ?? '', r.metadata.name), {
      body: r,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager, force: force ? 'true' : undefined, dryRun: w.dryRun ? 'All' : undefined },
      ...(w.onWarning ? { onWarning: w.onWarning } : {}),
    });
  }

  /** DELETE; a missing object is not an error (the caller wanted it gone): false says it was not there. */
  async delete(kind: ResourceKind, namespace: string, name: string, propagationPolicy?: 'Background' | 'Foreground' | 'Orphan'): Promise<boolean> {
    try {
      await this.request('DELETE', objectPath(kind, namespace, name), propagationPolicy ? { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy } } : {});
      return true;
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
      return false;
    }
  }

  /** Streams watch events to `onEvent` until the server ends the watch or `abort()` is called. */
  watch(kind: ResourceKind, o: WatchOptions, onEvent: (e: WatchEvent) => void): WatchHandle {
    let aborted = false;
    let res: IncomingMessage | undefined;
    const controller = new AbortController();
    const done = (async () => {
      res = await this.open('GET', collectionPath(kind, o.namespace), {
        query: {
          watch: '1',
          allowWatchBookmarks: 'true',
          resourceVersion: o.resourceVersion,
          timeoutSeconds: o.timeoutSeconds === undefined ? undefined : String(o.timeoutSeconds),
          labelSelector: o.labelSelector,
          fieldSelector: o.fieldSelector,
        },
        // A watch lasts as long as the server keeps it; only the connection's silence ends it early (keep-alive below).
        timeoutMs: 0,
        signal: controller.signal,
      });
      if ((res.statusCode ?? 0) !== 200) throw statusError(res.statusCode ?? 0, await readAll(res, 'watch'), `watch ${collectionPath(kind, o.namespace)}`);
      res.setEncoding('utf8');
      let pending = '';
      await new Promise<void>((resolve, reject) => {
        res!.on('data', (chunk: string) => {
          pending += chunk;
          let nl: number;
          while ((nl = pending.indexOf('\n')) >= 0) {
            const line = pending.slice(0, nl);
            pending = pending.slice(nl + 1);
            if (!line.trim() || aborted) continue;
            let event: WatchEvent;
            try {
              event = JSON.parse(line) as WatchEvent;
            } catch {
              // Not the API server's framing (a proxy's page, a cut line): end this watch, and the
              // informer resumes it, rather than take the process down.
              res!.destroy(new AmbitError('KubeWatchInvalid', `a watch line that is not JSON from ${this.config.server}: ${line.slice(0, 80)}`));
              return;
            }
            onEvent(event);
          }
          if (pending.length > maxLine) res!.destroy(new AmbitError('KubeWatchInvalid', `a watch event of over ${maxLine} bytes from ${this.config.server}`));
        });
        res!.on('end', resolve);
        res!.on('close', resolve);
        res!.on('error', (err) => (aborted ? resolve() : reject(err)));
      });
    })().catch((err) => {
      if (aborted) return;
      throw err;
    });
    return {
      abort: () => {
        aborted = true;
        controller.abort();
        res?.destroy();
      },
      done,
    };
  }

  close(): void {
    this.agent.destroy();
  }

  private open(method: string, path: string, r: RequestOptions & { signal?: AbortSignal }): Promise<IncomingMessage> {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(r.query ?? {})) if (v !== undefined) query.set(k, v);
    const qs = query.toString();
    const body = r.body === undefined ? undefined : typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.o.userAgent ?? 'ambit' };
    const token = this.config.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) {
      headers['content-type'] = r.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    const timeoutMs = r.timeoutMs ?? this.o.timeoutMs ?? 30_000;
    return new Promise((resolve, reject) => {
      const req = request({
        protocol: 'https:',
        host: this.url.hostname.replace(/^\[|\]$/g, ''),
        port: this.url.port || 443,
        method,
        path: `${this.url.pathname.replace(/\/$/, '')}${path}${qs ? `?${qs}` : ''}`,
        headers,
        agent: this.agent,
        ...(r.signal ? { signal: r.signal } : {}),
      });
      if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new AmbitError('KubeApiTimeout', `${method} ${path}: no answer from ${this.config.server} within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(err.name === 'AbortError' ? err : new AmbitError('KubeApiUnreachable', `${method} ${path} to ${this.config.server}: ${err.message}`)));
      req.on('response', (res) => {
        // A 401 may mean the token file was rotated: the next request reads it again.
        if (res.statusCode === 401) this.config.reloadToken?.();
        resolve(res);
      });
      req.end(body);
    });
  }
}

/** A `Warning` header's text: `299 - "text"` (RFC 7234 §5.5), the text unquoted. */
function warningText(header: string): string {
  const m = /^\d{3} \S+ "((?:[^"\\]|\\.)*)"/.exec(header);
  return m ? m[1]!.replace(/\\(.)/g, '$1') : header;
}

/** An answer is read whole up to this size: a list of a large cluster is tens of megabytes. */
const maxAnswer = 512 * 1024 * 1024;

async function readAll(res: IncomingMessage, what: string): Promise<string> {
  const body = await readBody(res, maxAnswer, () => new AmbitError('KubeApiTooLarge', `${what}: an answer of over ${maxAnswer} bytes`));
  return body.toString('utf8');
}

/** The server's `Status` as an error; a body that is not one is quoted, shortened. */
function statusError(status: number, text: string, what: string): KubeApiError {
  try {
    const s = JSON.parse(text) as { kind?: string; reason?: string; message?: string; details?: unknown };
    if (s.kind === 'Status') return new KubeApiError(status, s.reason ?? '', `${what}: ${status} ${s.reason ?? ''}: ${s.message ?? ''}`.trim(), s.details);
  } catch {
    // not JSON
  }
  return new KubeApiError(status, '', `${what}: ${status}: ${text.slice(0, 200)}`);
}
