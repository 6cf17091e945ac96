// `ambit demo`: shows the local cluster working, from the sample client pod (a request to a pod on
// the other node by its IP, requests to the web Service spread over both versions, bytes through
// the echo Service by name), then the tour of the mesh (cli/demo/tour.ts). `--cluster-only` stops
// after the first part. Exits 1 when a claim of either part did not hold.

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { tour } from '../demo/tour.js';
import type { ClusterStatus } from '../../cluster/status.js';
import { ClusterClient } from '../../cluster/api.js';
import type { CliContext } from '../context.js';
import { spawnInPod } from './exec.js';

export async function demo(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { 'cluster-only': { type: 'boolean' } } });
  const s = await new ClusterClient(ctx.stateDir).request<ClusterStatus>('GET', '/v1/status');
  const client = s.pods.find((p) => p.namespace === 'client' && p.labels.app === 'client' && p.phase === 'Running');
  const webs = s.pods.filter((p) => p.namespace === 'shop' && p.labels.app === 'web' && p.phase === 'Running');
  if (!client || webs.length === 0) throw new AmbitError('NoSamples', 'the sample workloads are not running; run `ambit up` (without --no-samples)');
  const remote = webs.find((w) => w.node !== client.node) ?? webs[0]!;
  const inClient = (argv: string[]) => runIn(client, argv);

  const say = (line: string) => process.stdout.write(`${line}\n`);
  say(`Client pod ${client.name} (${client.ip}) on ${client.node}.\n`);
  say(`1. By pod IP, to ${remote.name} on ${remote.node}:  curl http://${remote.ip}:8080/`);
  say(`   ${(await inClient(['curl', '-sS', '--max-time', '5', `http://${remote.ip}:8080/`])).trim()}`);
  say(`\n2. By Service, 20 requests, one connection each:  curl http://web.shop/ (ClusterIP ${s.services.find((x) => x.name === 'web')?.clusterIP})`);
  const load = JSON.parse(await inClient(['ambit', 'sample', 'load', 'http://web.shop/', '--count', '20'])) as { byPod: Record<string, number>; ok: number };
  for (const [pod, n] of Object.entries(load.byPod)) say(`   ${String(n).padStart(3)} answered by ${pod} (${s.pods.find((p) => p.name === pod)?.node})`);
  say(`\n3. TCP through the echo Service by name:  echo ... | nc echo.shop 9000`);
  const echo = await inClient(['node', '-e', "const s=require('net').connect(9000,'echo.shop',()=>s.end('hello through the echo service\\n'));s.pipe(process.stdout)"]);
  say(`   ${echo.trim()}`);
  if (values['cluster-only']) return load.ok === 20 ? 0 : 1;

  say('\n== The mesh ==\n');
  const claims = await tour(ctx, say);
  const checks: [string, boolean][] = [
    ['plaintext on the wire before enrolment', claims.plaintextBefore],
    ['no plaintext on the wire after enrolment', !claims.plaintextAfter],
    ['HBONE to 15008 after enrolment', claims.hboneAfter],
    ['the metrics say mutual_tls', claims.mutualTlsInMetrics],
    ['the DENY policy refused the client', claims.deniedWithPolicy],
    ['ambit explain named the policy', claims.explainedDenial],
    ['allowed again once the policy was deleted', claims.allowedAgain],
    ...(claims.deniedInPrometheus === undefined ? [] : [['Prometheus counts the denial (response_flags DENY)', claims.deniedInPrometheus] as [string, boolean]]),
    ['the waypoint split web 90/10 between v1 and v2 (an HTTPRoute)', claims.canarySplit === true],
  ];
  say('\nWhat the tour showed:');
  for (const [what, ok] of checks) say(`  ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  return load.ok === 20 && checks.every(([, ok]) => ok) ? 0 : 1;
}

function runIn(pod: { node: string; uid: string; namespace: string; name: string }, argv: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawnInPod(pod, argv, ['ignore', 'pipe', 'inherit']);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new AmbitError('DemoFailed', `${argv.join(' ')} exited with ${code}`))));
  });
}
