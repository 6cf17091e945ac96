// `ambit up`: the local cluster, then the sample workloads, waiting until their pods run.

import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { AmbitError } from '../../shared/errors.js';
import { up as bringUp } from '../../cluster/up.js';
import type { ClusterStatus } from '../../cluster/status.js';
import { ClusterClient } from '../../cluster/api.js';
import { cliEntry, type CliContext } from '../context.js';
import { apply } from './apply.js';
import { printStatus } from './status.js';
import { prometheusUrl } from '../../cluster/prometheus.js';
import { defaultDashboardPort, defaultKubeApiPort } from '../../controller/config.js';
import { agentName } from '../../deploy/manifests.js';

export async function up(ctx: CliContext, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { cluster: { type: 'string' }, redirect: { type: 'string' }, 'no-samples': { type: 'boolean' }, 'no-prometheus': { type: 'boolean' }, timeout: { type: 'string' } } });
  const redirect = values.redirect;
  if (redirect !== undefined && redirect !== 'iptables' && redirect !== 'ebpf') throw new AmbitError('BadFlag', `--redirect ${redirect}: must be iptables or ebpf`);
  const started = performance.now();
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const result = await bringUp({ stateDir: ctx.stateDir, ...(values.cluster ? { clusterFile: values.cluster } : {}), ...(redirect ? { redirect } : {}), ...(values['no-prometheus'] ? { prometheus: false } : {}), cliEntry, say });
  if (result.already) {
    say(`The local cluster is already up (${result.topology.nodes.length} nodes); \`ambit down\` removes it.`);
    return 0;
  }
  say(`Nodes up: ${result.topology.nodes.map((n) => `${n.name} (${n.ip}, pods ${n.podCIDR.text})`).join(', ')}`);
  if (result.topology.prometheus) say(`Prometheus: ${prometheusUrl(result.topology)}/ in the control-plane namespace (ip netns exec ${result.topology.control.netns} curl ...), scraping every agent and the controller`);
  say(`Kubernetes API: https://127.0.0.1:${defaultKubeApiPort} (export KUBECONFIG=$(ambit kubeconfig); kubectl get pods -A)`);
  say(`Dashboard: http://127.0.0.1:${defaultDashboardPort}/ (topology, agents, policies, certificates, explain, live events${result.topology.prometheus ? '; Prometheus under /prometheus/' : ''})`);
  const timeoutMs = Number(values.timeout ?? 30) * 1000;
  if (!values['no-samples']) {
    await apply(ctx, ['-f', join(ctx.root, 'samples', 'manifests')]);
    printStatus(await waitForPods(ctx, timeoutMs));
  } else await waitForPods(ctx, timeoutMs, { samples: false });
  say(`\nCluster ready in ${((performance.now() - started) / 1000).toFixed(2)} s. Try \`ambit demo\`, \`ambit status\`, \`ambit down\`.`);
  return 0;
}

/** Until every node's agent is ready and, unless `samples` is false, the pods of every Deployment run. */
export async function waitForPods(ctx: CliContext, timeoutMs: number, o: { samples?: boolean } = {}): Promise<ClusterStatus> {
  const client = new ClusterClient(ctx.stateDir);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.request<ClusterStatus>('GET', '/v1/status');
    const failed = s.pods.find((p) => p.phase === 'Failed');
    if (failed) throw new AmbitError('PodFailed', `pod ${failed.namespace}/${failed.name} failed: ${failed.message ?? 'see ambit logs'}`);
    // Every Deployment's pods made and running, not only those made so far: the kubelet makes a
    // sandbox in its own time, and the pods of the Deployments applied last may not exist yet. And
    // every node's agent ready (its query API listening): pods outside the mesh run without it.
    const agents = s.agentsReady;
    const agentsReady = !agents || agents.ready >= agents.desired;
    if ((o.samples === false || s.pods.length > 0) && s.pods.every((p) => p.phase === 'Running') && (s.deployments ?? []).every((d) => d.running >= d.replicas) && agentsReady) return s;
    if (Date.now() > deadline) {
      const waiting = [
        ...(agentsReady ? [] : [`ds/${agentName} (${agents!.ready}/${agents!.desired} agents ready)`]),
        ...s.pods.filter((p) => p.phase !== 'Running').map((p) => `${p.name}${p.message ? ` (${p.message})` : ''}`),
        ...(s.deployments ?? []).filter((d) => d.running < d.replicas).map((d) => `deploy/${d.name} (${d.running}/${d.replicas} running)`),
      ];
      throw new AmbitError('Timeout', `pods not running after ${timeoutMs / 1000} s: ${waiting.join(', ')}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
