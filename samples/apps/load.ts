// A small curl-like load client for the sample client pod: N GET requests, each on a new
// connection, bounded in count and time, and a summary of which pods answered.

import { type OutgoingHttpHeaders, request } from 'node:http';
import { createTracer } from '../../shared/telemetry/tracing.js';

export interface LoadResult {
  url: string;
  requests: number;
  ok: number;
  errors: Record<string, number>;
  byPod: Record<string, number>;
  byVersion: Record<string, number>;
  seconds: number;
  traceIds?: string[];
}

export async function runLoad(url: string, count: number, concurrency: number, timeoutMs = 5000, otlp?: string): Promise<LoadResult> {
  const started = performance.now();
  const result: LoadResult = { url, requests: count, ok: 0, errors: {}, byPod: {}, byVersion: {}, seconds: 0 };
  // With an OTLP endpoint, each request is a client span that starts a trace (its id in the result).
  const tracer = await createTracer({ ...(otlp ? { endpoint: otlp } : {}), serviceName: 'load-client' });
  if (tracer.enabled) result.traceIds = [];
  let next = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      const headers: OutgoingHttpHeaders = {};
      const span = tracer.enabled ? tracer.startClient({ upstreamHost: new URL(url).host }) : undefined;
      if (span) {
        span.injectInto(headers);
        if (span.traceId) result.traceIds!.push(span.traceId);
      }
      const req = request(url, { agent: false, timeout: timeoutMs, headers }, (res) => {
        res.once('end', () => span?.end({ responseCode: res.statusCode ?? 0 }));
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => {
          if (res.statusCode === 200) {
            result.ok++;
            const pod = /pod=(\S+)/.exec(body)?.[1] ?? 'unknown';
            const version = body.split(' ')[1] ?? 'unknown';
            result.byPod[pod] = (result.byPod[pod] ?? 0) + 1;
            result.byVersion[version] = (result.byVersion[version] ?? 0) + 1;
          } else result.errors[`HTTP ${res.statusCode}`] = (result.errors[`HTTP ${res.statusCode}`] ?? 0) + 1;
          resolve();
        });
      });
      const fail = (code: string) => {
        result.errors[code] = (result.errors[code] ?? 0) + 1;
        resolve();
      };
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
      req.end();
    });
  const worker = async () => {
    while (next < count) {
      next++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  result.seconds = (performance.now() - started) / 1000;
  await tracer.shutdown();
  return result;
}
