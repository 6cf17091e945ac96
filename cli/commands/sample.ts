// `ambit sample ...`: the programs the sample workloads run inside their pods.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { runHttpServer } from '../../samples/apps/http-server.js';
import { runTcpEcho } from '../../samples/apps/tcp-echo.js';
import { runLoad } from '../../samples/apps/load.js';
import { runEcho } from '../../samples/apps/echo.js';
import { runJwtIssuer } from '../../samples/apps/jwt-issuer.js';
import { runGrpcEcho } from '../../samples/apps/grpc-echo.js';
import { runGrpcClient } from '../../samples/apps/grpc-client.js';
import { runWsEcho } from '../../samples/apps/ws-echo.js';
import { runWsClient } from '../../samples/apps/ws-client.js';
import type { CliContext } from '../context.js';

export async function sample(_ctx: CliContext, args: string[]): Promise<number | void> {
  const [which, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { port: { type: 'string' }, app: { type: 'string' }, version: { type: 'string' }, count: { type: 'string' }, concurrency: { type: 'string' }, 'fail-rate': { type: 'string' }, h2c: { type: 'boolean' }, otlp: { type: 'string' }, issuer: { type: 'string' }, target: { type: 'string' }, method: { type: 'string' }, metadata: { type: 'string', multiple: true }, message: { type: 'string' } },
  });
  const port = Number(values.port ?? 8080);
  switch (which) {
    case 'http-server':
      return runHttpServer({ port, app: values.app ?? 'web', version: values.version ?? 'v1' });
    case 'echo': {
      const failRate = Number(values['fail-rate'] ?? 0);
      if (!(failRate >= 0 && failRate <= 1)) throw new AmbitError('BadArgs', `--fail-rate must be between 0 and 1, not ${values['fail-rate']}`);
      return runEcho({ port, version: values.version ?? 'v1', failRate, h2c: values.h2c === true, ...(values.otlp ? { otlp: values.otlp } : {}) });
    }
    case 'jwt-issuer':
      if (!values.issuer) throw new AmbitError('BadArgs', 'usage: ambit sample jwt-issuer --issuer ISSUER [--port 8000]');
      return runJwtIssuer({ port: Number(values.port ?? 8000), issuer: values.issuer });
    case 'tcp-echo':
      return runTcpEcho(Number(values.port ?? 9000));
    case 'grpc-echo':
      runGrpcEcho({ port: Number(values.port ?? 9090), version: values.version ?? 'v1' });
      return;
    case 'grpc-client': {
      const method = values.method ?? 'echo';
      if (!values.target || (method !== 'echo' && method !== 'stream')) throw new AmbitError('BadArgs', 'usage: ambit sample grpc-client --target HOST:PORT [--method echo|stream] [--metadata k=v]... [--count N] [--message TEXT]');
      const metadata = (values.metadata ?? []).map((kv): [string, string] => {
        const i = kv.indexOf('=');
        if (i <= 0) throw new AmbitError('BadArgs', `--metadata must be key=value, not ${kv}`);
        return [kv.slice(0, i).toLowerCase(), kv.slice(i + 1)];
      });
      return runGrpcClient({ target: values.target, method, metadata, count: Math.min(1000, Number(values.count ?? 1)), message: values.message ?? 'hello', deadlineMs: 10_000 });
    }
    case 'ws-echo':
      runWsEcho({ port: Number(values.port ?? 8081), version: values.version ?? 'v1' });
      return;
    case 'ws-client': {
      const url = values.target ?? positionals[0];
      if (!url) throw new AmbitError('BadArgs', 'usage: ambit sample ws-client ws://HOST:PORT/PATH [--count N]');
      return runWsClient({ url, count: Math.min(1000, Number(values.count ?? 3)), timeoutMs: 10_000 });
    }
    case 'load': {
      const url = positionals[0];
      if (!url) throw new AmbitError('BadArgs', 'usage: ambit sample load URL [--count N] [--concurrency C] [--otlp TRACES_URL]');
      const count = Math.min(10_000, Number(values.count ?? 20));
      const r = await runLoad(url, count, Math.min(64, Number(values.concurrency ?? 4)), 5000, values.otlp);
      process.stdout.write(JSON.stringify(r) + '\n');
      return r.ok === r.requests ? 0 : 1;
    }
    default:
      throw new AmbitError('BadArgs', 'usage: ambit sample http-server|echo|jwt-issuer|tcp-echo|grpc-echo|grpc-client|ws-echo|ws-client|load ...');
  }
}
