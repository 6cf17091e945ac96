// Prometheus, as the dashboard uses it: instant queries over its HTTP API (`/api/v1/query`), and a
// reverse proxy of its own UI under the dashboard's `/prometheus/` (Prometheus runs with
// `--web.route-prefix=/prometheus` and `--web.external-url` pointing at the dashboard, so its links
// come back through here). What the numbers mean is topology.ts's business.

import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import { AmbitError, errorMessage } from '../../shared/errors.js';

/** One series of an instant vector, as `/api/v1/query` returns it. */
export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** The body of `/api/v1/query` for a vector result. */
export interface PromVectorResponse {
  status: 'success' | 'error';
  data?: { resultType: string; result: PromSample[] };
  errorType?: string;
  error?: string;
}

export class PrometheusClient {
  /** `baseUrl`: where Prometheus serves, route prefix included (`http://10.250.0.254:9090/prometheus`). */
  constructor(
    readonly baseUrl: string | undefined,
    private readonly timeoutMs = 5000,
  ) {}

  /** An instant query; the result must be a vector (every query the dashboard makes is one). */
  async query(promql: string): Promise<PromSample[]> {
    const base = this.requireBase();
    const url = `${base}/api/v1/query?query=${encodeURIComponent(promql)}`;
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(this.timeoutMs) });
    } catch (err) {
      throw new AmbitError('PrometheusUnavailable', `cannot reach Prometheus at ${base}: ${errorMessage((err as Error).cause ?? err)}; is it running? (set the controller's --prometheus-url)`);
    }
    let body: PromVectorResponse;
    try {
      body = (await res.json()) as PromVectorResponse;
    } catch {
      throw new AmbitError('PrometheusQueryFailed', `Prometheus at ${base} answered HTTP ${res.status} without JSON; is --prometheus-url its base URL, route prefix included?`);
    }
    if (body.status !== 'success' || !body.data) throw new AmbitError('PrometheusQueryFailed', `Prometheus refused the query (${body.errorType ?? `HTTP ${res.status}`}): ${body.error ?? 'no reason given'}`);
    if (body.data.resultType !== 'vector') throw new AmbitError('PrometheusQueryFailed', `Prometheus answered a ${body.data.resultType}, not a vector, for ${promql}`);
    return body.data.result;
  }

  /**
   * Forwards a request under the dashboard's `/prometheus/` to Prometheus, streaming both ways. The
   * browser's credentials for the dashboard (cookie, bearer token) stay here.
   */
  proxy(req: IncomingMessage, res: ServerResponse, path: string): void {
    const target = new URL(`${this.requireBase()}${path}`);
    const headers = { ...req.headers };
    delete headers.cookie;
    delete headers.authorization;
    headers.host = target.host;
    const upstream = httpRequest(target, { method: req.method, headers, timeout: 30_000 }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      pipeline(up, res, () => undefined);
    });
    upstream.on('timeout', () => upstream.destroy(new Error('no answer within 30 s')));
    upstream.on('error', (err) => {
      if (res.headersSent) return void res.destroy();
      const body = JSON.stringify({ error: { code: 'PrometheusUnavailable', message: `cannot reach Prometheus at ${this.baseUrl}: ${err.message}` } });
      res.writeHead(502, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }).end(body);
    });
    pipeline(req, upstream, () => undefined);
  }

  private requireBase(): string {
    if (!this.baseUrl) throw new AmbitError('PrometheusNotConfigured', 'this controller has no Prometheus; start it with --prometheus-url http://HOST:9090[/prefix]');
    return this.baseUrl.replace(/\/+$/, '');
  }
}
