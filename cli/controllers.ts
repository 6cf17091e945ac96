// The controller replicas the CLI talks to. Each replica of the local cluster has its own socket,
// and each agent is connected to one replica at a time, so what concerns agents is asked of every
// replica and merged; what only the leader does is sent to the leader.

import { AmbitError } from '../shared/errors.js';
import { ControllerClient } from '../controller/api/client.js';
import type { AgentStatus } from '../controller/push/server.js';
import { replicaStateDir } from '../cluster/mesh-controller.js';
import { readState, topologyOf } from '../cluster/state.js';
import type { CliContext } from './context.js';

export interface Replica {
  identity: string;
  client: ControllerClient;
}

export function replicas(ctx: CliContext): Replica[] {
  const state = readState(ctx.stateDir);
  const controllers = state ? topologyOf(state).controllers : [{ identity: 'controller', index: 0 }];
  return controllers.map((r) => ({ identity: r.identity, client: new ControllerClient(replicaStateDir(ctx.stateDir, r.index)) }));
}

/** Every replica's answer; replicas that do not answer are left out, unless none answers. */
export async function askEveryReplica<T>(ctx: CliContext, ask: (c: ControllerClient) => Promise<T>): Promise<{ identity: string; answer: T }[]> {
  const all = replicas(ctx);
  const settled = await Promise.allSettled(all.map((r) => ask(r.client)));
  const answers = settled.flatMap((s, i) => (s.status === 'fulfilled' ? [{ identity: all[i]!.identity, answer: s.value }] : []));
  if (answers.length) return answers;
  throw (settled.find((s) => s.status === 'rejected') as PromiseRejectedResult).reason;
}

/** One line per node: the replica it is connected to, else the latest any replica knows of it. */
export function mergeAgents(lists: { identity: string; agents: AgentStatus[] }[]): (AgentStatus & { controller?: string })[] {
  const byNode = new Map<string, AgentStatus & { controller?: string }>();
  for (const { identity, agents } of lists) {
    for (const a of agents) {
      const known = byNode.get(a.node);
      const newer = !known || (!known.connected && (a.connected || (a.disconnectedAt ?? '') > (known.disconnectedAt ?? '')));
      if (newer) byNode.set(a.node, a.connected ? { ...a, controller: identity } : a);
    }
  }
  return [...byNode.values()].sort((a, b) => a.node.localeCompare(b.node));
}

/** The replica holding the leader Lease (the CA's rotation is its alone). */
export async function leader(ctx: CliContext): Promise<ControllerClient> {
  const answers = await askEveryReplica(ctx, async (c) => ({ c, health: await c.request<{ leader?: boolean }>('GET', '/healthz', undefined, 5000) }));
  const lead = answers.find((a) => a.answer.health.leader);
  if (!lead) throw new AmbitError('NoLeader', 'no controller replica holds the leader Lease right now (kubectl get lease -n ambit-system ambit-controller); try again in a few seconds');
  return lead.answer.c;
}
