// What the waypoint e2e files share: their namespace (the conformance suite's, behind the waypoint
// `waypoint`), a shell in its client pod, request loops that tally status codes, the waypoint's own
// metrics and log, and the wait until the waypoint routes by the newest configuration.

import { join } from 'node:path';
import { ambit, ambitOk, eventually, root } from './helpers.js';
import type { Resource } from '../../shared/resources/types.js';

export const ns = 'gateway-conformance-mesh';

/** A shell command in the namespace's client pod. */
export const inClient = (cmd: string, timeoutMs = 120_000) => ambit(['exec', 'deploy/client', '-n', ns, '--', 'sh', '-c', cmd], timeoutMs);

/** `count` requests to `url` with curl (in `parallel` loops), and the status code of each. */
export async function statuses(url: string, count: number, parallel = 1, curlArgs = ''): Promise<number[]> {
  const loop = `for i in $(seq ${Math.ceil(count / parallel)}); do curl -s -o /dev/null -w '%{http_code}\\n' -m 10 ${curlArgs} '${url}'; done`;
  const r = await inClient(parallel === 1 ? loop : `for p in $(seq ${parallel}); do (${loop}) & done; wait`);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

export const tally = (codes: number[]) => codes.reduce<Record<number, number>>((t, c) => ((t[c] = (t[c] ?? 0) + 1), t), {});

/** The waypoint's 15020, read in its pod. */
export const waypointMetrics = async () => (await ambitOk(['exec', '-n', ns, 'deploy/waypoint', '--', 'curl', '-s', 'http://127.0.0.1:15020/metrics'])).toString();

export const podLog = async (pod: string) => (await ambit(['logs', '-n', ns, pod])).stdout;

/** The name of the waypoint's running pod. */
export async function waypointPodName(): Promise<string> {
  const pods = JSON.parse(await ambitOk(['get', 'pods', '-n', ns, '-o', 'json'])) as { items: { metadata: { name: string; labels: Record<string, string> } }[] };
  return pods.items.find((p) => p.metadata.labels['gateway.networking.k8s.io/gateway-name'] === 'waypoint')!.metadata.name;
}

/** Until the waypoint routes by the newest configuration (its 15021 says its version). */
export async function waypointCurrent(): Promise<void> {
  const { revision } = JSON.parse(await ambitOk(['agents', '-o', 'json'])) as { revision: number };
  await eventually('the waypoint to take the newest configuration', async () => {
    const r = await ambit(['exec', '-n', ns, 'deploy/waypoint', '--', 'curl', '-s', 'http://127.0.0.1:15021/config']);
    return r.code === 0 && (JSON.parse(r.stdout) as { version: number }).version >= revision;
  });
}

/**
 * The set-up every waypoint e2e file starts with: a cluster without samples, the namespace's
 * fixtures (`test/e2e/fixtures/waypoint/NAME`), its waypoint (on `workers` event loops), and the
 * ClusterIP of each Service by name.
 */
export async function upBehindWaypoint(fixtures: string[], o: { workers?: number } = {}): Promise<Map<string, string>> {
  await ambitOk(['up', '--no-samples']);
  await ambitOk(['apply', ...fixtures.flatMap((f) => ['-f', join(root, 'test/e2e/fixtures/waypoint', f)])]);
  await ambitOk(['waypoint', 'apply', '-n', ns, ...(o.workers ? ['--workers', String(o.workers)] : [])]);
  const { items } = JSON.parse(await ambitOk(['get', 'services', '-n', ns, '-o', 'json'])) as { items: Resource<string, { clusterIP: string }>[] };
  return new Map(items.map((s) => [s.metadata.name, s.spec!.clusterIP]));
}
