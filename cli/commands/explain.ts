// `ambit explain SRC DST:PORT`: every decision on the path of a hypothetical connection, from the
// code the proxies run: the source's agent says whether the pod is captured, where the destination
// resolves (Service endpoint, pod, passthrough) and how it would travel (HBONE with which
// identities, or plaintext); the destination's agent says which mTLS mode and which policy and
// rule would allow or deny it, and warns about policy parts it does not enforce. Nothing connects.
// The questions and the wording live in shared/explain/ (the dashboard asks the same); this command
// reaches the agents by re-entering their nodes' namespaces.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { explainConnection, explainLines, parseExplainArgs, usage } from '../../shared/explain/explain.js';
import { ControllerClient } from '../../controller/api/client.js';
import type { ClusterStatus } from '../../cluster/status.js';
import type { CliContext } from '../context.js';
import { outputFormat, printData } from '../output.js';
import { findPod } from './exec.js';
import { callAgent } from './query.js';

export async function explain(ctx: CliContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { namespace: { type: 'string', short: 'n' }, output: { type: 'string', short: 'o' } } });
  const [src, dst] = positionals;
  if (!src || !dst || positionals.length !== 2) throw new AmbitError('BadArgs', usage);
  const req = parseExplainArgs(src, dst, values.namespace);
  const source = await findPod(ctx, req.sourceName, req.sourceNamespace);
  const status = await new ControllerClient(ctx.stateDir).request<ClusterStatus>('GET', '/v1/status');
  const result = await explainConnection(source, req, status, (node, method, params) => callAgent(ctx, node, method, params));
  const code = result.verdict === 'allowed' ? 0 : 3;
  if (printData(outputFormat(values.output), result)) return code;
  process.stdout.write(explainLines(result).join('\n') + '\n');
  return code;
}
