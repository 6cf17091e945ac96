// `ambit explain SRC DST:PORT`: every decision on the path of a hypothetical connection, from the
// code the proxies run: the source's agent says whether the pod is captured, where the destination
// resolves (Service endpoint, pod, passthrough) and how it would travel (HBONE with which
// identities, or plaintext); the destination's agent says which mTLS mode and which policy and
// rule would allow or deny it, and warns about policy parts it does not enforce. Through a waypoint,
// the waypoint's hop too: the routes attached, and with `--http METHOD PATH` (and `--jwt TOKEN`) what
// the waypoint's security decides (asked of the waypoint pod), the rule a request matches, its
// backends and filters, then the endpoint it goes on to. Nothing connects.
// The questions and the wording live in shared/explain/ (the dashboard asks the same); this command
// reaches the agents by re-entering their nodes' namespaces.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { explainConnection, explainLines, parseExplainArgs, usage } from '../../shared/explain/explain.js';
import { ClusterClient } from '../../cluster/api.js';
import type { ClusterStatus } from '../../cluster/status.js';
import type { CliContext } from '../context.js';
import { listResources, withCluster } from '../kube.js';
import type { RouteObject } from '../../shared/routing/index.js';
import { outputFormat, printData } from '../output.js';
import { findPod } from './exec.js';
import { callAgent } from './query.js';

export async function explain(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o' }, http: { type: 'string' }, header: { type: 'string', short: 'H', multiple: true }, jwt: { type: 'string' } },
  });
  // `--http METHOD PATH`: the method is the flag's value, the path the third positional.
  const [src, dst, path] = positionals;
  if (!src || !dst || positionals.length !== (values.http ? 3 : 2) || (values.http && !path?.startsWith('/'))) throw new AmbitError('BadArgs', usage);
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const i = h.indexOf(':');
    if (i <= 0) throw new AmbitError('BadArgs', `-H ${JSON.stringify(h)}: write a header as 'name: value'`);
    headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
  }
  // `--jwt TOKEN`: sent where RequestAuthentication looks first, as `Authorization: Bearer`.
  if (values.jwt !== undefined) {
    if (!values.http) throw new AmbitError('BadArgs', `--jwt needs --http METHOD PATH; ${usage}`);
    headers.authorization = `Bearer ${values.jwt}`;
  }
  const req = parseExplainArgs(src, dst, values.namespace);
  const source = await findPod(ctx, req.sourceName, req.sourceNamespace);
  const api = new ClusterClient(ctx.stateDir);
  const status = await api.request<ClusterStatus>('GET', '/v1/status');
  const routes: RouteObject[] = [];
  for (const kind of ['HTTPRoute', 'GRPCRoute'] as const) {
    const items = await withCluster(ctx, (client) => listResources(client, kind));
    for (const r of items) routes.push({ kind, namespace: r.metadata.namespace!, name: r.metadata.name, ...(r.metadata.creationTimestamp ? { creationTimestamp: r.metadata.creationTimestamp } : {}), spec: r.spec });
  }
  const l7 = { routes, ...(values.http ? { http: { method: values.http.toUpperCase(), path: path!, headers } } : {}) };
  const result = await explainConnection(source, req, status, (node, method, params) => callAgent(ctx, node, method, params), l7);
  const code = result.verdict === 'allowed' ? 0 : 3;
  if (printData(outputFormat(values.output), result)) return code;
  process.stdout.write(explainLines(result).join('\n') + '\n');
  return code;
}
