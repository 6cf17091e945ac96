// The local cluster's runtime: the part of Kubernetes that turns Deployments into ReplicaSets and
// running pods, Services into EndpointSlices (controller-manager, scheduler and kubelet) and into
// node rules (kube-proxy). It runs inside the controller
// process when the controller serves the local cluster, reads the store and writes Pods back to it.

import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { AmbitError } from '../shared/errors.js';
import { writeFileAtomic } from '../controller/store/store.js';
import { join } from 'node:path';
import type { Logger } from '../shared/log.js';
import { errorMessage } from '../shared/errors.js';
import { type Container, type ContainerStatus, type Deployment, type EndpointSlice, type Pod, type ReplicaSet, selectorMatches, type Service } from '../shared/resources/types.js';
import { planDeployments } from './controllers/deployments.js';
import { planReplicaSets, podMetadataFor } from './controllers/replicasets.js';
import { planEndpointSlices } from './controllers/endpointslices.js';
import type { Store } from '../controller/store/store.js';
import { inNetns } from './kubelet/exec.js';
import { pidsInNetns } from './kubelet/network.js';
import { createCgroup, isAlive, onChildExit, type PodEnv, removeHosts, signal, sleep, startContainer, stopCgroup, writeHosts, podCgroup } from './kubelet/pods.js';
import { PodSandboxes } from './kubelet/sandboxes.js';
import { endpointsOf, hostsFor, servicesRuleset } from './kube-proxy/services.js';
import { type NodeLayout, podNetns, type Topology } from './topology.js';
import { type AgentDaemonSet, type AgentLaunch, AgentTokens, agentCgroup, agentDir, agentPid, agentPidPath, agentTokenPath, refreshVolumes, removeExitedPodDirs, runningTemplate, startAgent, templateHash, writeTemplateHash } from './daemonset/agents.js';
import { agentName } from '../deploy/manifests.js';
import { installNamespace } from '../deploy/values.js';
import { type PrometheusLaunch, prometheusPid, startPrometheus, writePodTargets } from './prometheus.js';
import { podOwner } from '../shared/resources/owners.js';

export interface RuntimeOptions {
  store: Store;
  topology: Topology;
  stateDir: string;
  binDir: string;
  log: Logger;
  /** How long a stopping pod's processes get after SIGTERM. */
  graceMs?: number;
  /** Run a node agent on every node (the DaemonSet). */
  agents?: AgentLaunch;
  /** Run the cluster's Prometheus (when the topology asks for it). */
  prometheus?: PrometheusLaunch;
}

const maxBackoffMs = 30_000;

interface Tracked {
  env: PodEnv;
  /** When each container may be started again after it exited (crash-loop backoff). */
  nextStart: Map<string, number>;
}

export class LocalClusterRuntime {
  private readonly tracked = new Map<string, Tracked>();
  private readonly nodeRules = new Map<string, string>();
  private readonly hosts = new Map<string, string>();
  private dirty = false;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastError: string | undefined;
  private stopWatchingExits: (() => void) | undefined;
  /** When each node's agent may be started again (so a crashing agent is not restarted in a loop). */
  private readonly agentNextStart = new Map<string, number>();
  private prometheusNextStart = 0;
  private agentTokens: AgentTokens | undefined;
  /** A rollout of the agents' DaemonSet is under way (one node at a time). */
  private rolling = false;
  /** Each node's agent as last seen, and its readiness (probed until it passes). */
  private readonly agents = new Map<string, { pid: number; ready: boolean; probe?: () => Promise<boolean> }>();
  /** Where the agents' ConfigMap, Secret and token volumes come from, and what was last written of them. */
  private readonly agentSources = { get: (kind: string, namespace: string, name: string) => this.o.store.get(kind, namespace, name), written: new Map<string, string>() };

  private readonly sandboxes: PodSandboxes;
  /**
   * Sandboxes being made, by pod uid. They are made beside the reconcile loop, as the kubelet's pod
   * workers make them beside its sync loop: a slow or hanging CNI plugin holds up only its own pod,
   * never the Deployments, other pods' containers or the Service rules.
   */
  private readonly making = new Map<string, Promise<void>>();

  constructor(private readonly o: RuntimeOptions) {
    this.sandboxes = new PodSandboxes({ store: o.store, topology: o.topology, stateDir: o.stateDir, log: o.log.child({ component: 'sandboxes' }), graceMs: o.graceMs ?? 2000 });
  }

  start(): void {
    this.o.store.on('change', () => this.schedule());
    this.stopWatchingExits = onChildExit(() => this.schedule());
    this.schedule();
    // Containers and agents this process started are noticed at their exit; those adopted from a
    // previous controller by polling their cgroups.
    this.timer = setInterval(() => this.schedule(), 500);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    this.stopWatchingExits?.();
    await this.running;
    await Promise.all(this.making.values());
  }

  /** Resolves when no reconcile is pending or running. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  schedule(): void {
    this.dirty = true;
    if (this.running || this.stopped) return;
    this.running = (async () => {
      // Yield once, so that `running` is set before any reconcile code runs: a store commit in
      // it calls schedule() again synchronously, which must not start a second loop.
      await Promise.resolve();
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        try {
          await this.reconcile();
          this.lastError = undefined;
        } catch (err) {
          // Retried on the next tick; said once per distinct failure, not twice a second.
          const message = errorMessage(err);
          if (message !== this.lastError) this.o.log.error({ err: message }, 'reconcile failed');
          this.lastError = message;
        }
      }
      this.running = undefined;
    })();
  }

  private pods(): Pod[] {
    return this.o.store.list('Pod') as Pod[];
  }

  private async reconcile(): Promise<void> {
    // The controller-manager's part: Deployments to ReplicaSets, ReplicaSets to pods. Pods whose
    // owners are deleted go with them (controller/resources/garbage-collector.ts), not from here.
    const deployments = this.o.store.list('Deployment') as Deployment[];
    const rollout = planDeployments(deployments, this.o.store.list('ReplicaSet') as ReplicaSet[], this.pods());
    if (rollout.upserts.length || rollout.deletes.length) this.o.store.commit(rollout.upserts, rollout.deletes);
    const replicaSets = this.o.store.list('ReplicaSet') as ReplicaSet[];
    const { adopted, doomed, wanted } = planReplicaSets(replicaSets, this.pods());
    if (adopted.length) this.o.store.commit(adopted);
    const pods = this.pods();

    // Each phase runs even when another fails (a pod that will not go away must not stop
    // crashed containers from being restarted); the failures are reported together.
    const failures: string[] = [];
    const phase = async (what: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        failures.push(`${what}: ${errorMessage(err)}`);
      }
    };

    // Pods removed from the store by someone else (`ambit delete pod`, a deleted namespace).
    // A pod is forgotten only once its teardown worked, so a failed one is tried again.
    const inStore = new Set(pods.map(keyOfPod));
    const orphans = [...this.tracked.entries()].filter(([key]) => !inStore.has(key));
    for (const [key, t] of orphans) await phase(`removing pod ${key}`, async () => {
      await this.teardownPod(t.env);
      this.tracked.delete(key);
    });

    const gone: Pod[] = [];
    for (const p of doomed) await phase(`deleting pod ${keyOfPod(p)}`, async () => {
      await this.deletePod(p);
      gone.push(p);
    });
    if (gone.length) this.o.store.commit([], gone.map((p) => ({ kind: 'Pod', namespace: p.metadata.namespace!, name: p.metadata.name })));

    await phase('removing what a previous run left', () => this.sandboxes.cleanStrays(pods));
    await phase('creating pods', async () => {
      const created: Pod[] = [];
      for (const rs of wanted) created.push(this.planPod(rs, [...this.pods(), ...created]));
      if (created.length) this.o.store.commit(created);
    });
    // New pods, and those whose network failed before and are due again (the kubelet retries).
    for (const p of this.sandboxes.due(this.pods())) {
      const uid = p.metadata.uid!;
      if (this.making.has(uid)) continue;
      const made = this.createPod(p)
        .catch((err: unknown) => this.o.log.error({ pod: keyOfPod(p), err: errorMessage(err) }, 'pod sandbox failed'))
        .finally(() => {
          this.making.delete(uid);
          this.schedule();
        });
      this.making.set(uid, made);
    }
    await phase('supervising agents', () => this.superviseAgents());
    await phase('supervising Prometheus', () => this.supervisePrometheus());
    await phase('supervising containers', () => this.superviseContainers());
    await phase('Service rules', () => this.syncServices());
    await phase('EndpointSlices', () => this.syncEndpointSlices());
    if (failures.length) throw new Error(failures.join('; '));
  }

  /** The agents' DaemonSet, as the local install applied it (or as someone changed it since). */
  private agentDaemonSet(): AgentDaemonSet | undefined {
    return this.o.store.get('DaemonSet', installNamespace, agentName) as AgentDaemonSet | undefined;
  }

  private async superviseAgents(): Promise<void> {
    const launch = this.o.agents;
    const ds = this.agentDaemonSet();
    if (!launch || !ds) return;
    this.agentTokens ??= new AgentTokens(this.o.stateDir, launch.requestToken);
    const sources = this.agentSources;
    const failures: string[] = [];
    const hash = templateHash(ds.spec.template);
    for (const node of this.o.topology.nodes) {
      try {
        await this.agentTokens.refresh(node.name);
      } catch (err) {
        failures.push(`the token of ${node.name}'s agent: ${errorMessage(err)}`);
        // An agent with a token still good runs on; one with none cannot prove its node.
        if (!existsSync(agentTokenPath(this.o.stateDir, node.name))) continue;
      }
      removeExitedPodDirs(this.o.stateDir, node.name);
      const running = agentPid(this.o.stateDir, node.name);
      if (running !== undefined) {
        try {
          refreshVolumes(launch, this.o.stateDir, node, ds, sources);
        } catch (err) {
          failures.push(`the volumes of ${node.name}'s agent: ${errorMessage(err)}`);
        }
        // The DaemonSet's template changed (an upgrade, an edit): roll this node's agent, one node at a time.
        if (runningTemplate(this.o.stateDir, node.name) !== hash && !this.rolling) this.rollAgent(node.name);
        continue;
      }
      const now = Date.now();
      if (now < (this.agentNextStart.get(node.name) ?? 0)) continue;
      this.agentNextStart.set(node.name, now + 2000);
      try {
        const agent = startAgent(launch, this.o.stateDir, node, ds, sources);
        this.agents.set(node.name, { pid: agent.pid, probe: agent.ready, ready: false });
        this.o.log.info({ node: node.name, pid: agent.pid }, 'agent started');
      } catch (err) {
        // Until the controller published the mesh's roots (the ConfigMap the agents trust it by), the pod waits.
        if (err instanceof AmbitError && err.code === 'VolumeNotReady') this.o.log.debug({ node: node.name, err: err.message }, 'agent waits for its volumes');
        else failures.push(`the agent of ${node.name}: ${errorMessage(err)}`);
      }
    }
    await this.writeAgentStatus(ds, hash);
    if (failures.length) throw new Error(failures.join('; '));
  }

  /**
   * The DaemonSet's status, as its controller keeps it: how many nodes should run the agent, run
   * it, run it ready (its readiness probe, asked again while it has not passed) and run the current
   * template; `kubectl rollout status ds/ambit-agent` and `kubectl get ds` read it.
   */
  private async writeAgentStatus(ds: AgentDaemonSet, hash: string): Promise<void> {
    let current = 0;
    let ready = 0;
    let updated = 0;
    for (const node of this.o.topology.nodes) {
      const pid = agentPid(this.o.stateDir, node.name);
      if (pid === undefined) continue;
      current++;
      let known = this.agents.get(node.name);
      // An agent this process did not start (adopted, or left by a rollout) is ready if it was found running.
      if (known?.pid !== pid) this.agents.set(node.name, (known = { pid, ready: true }));
      if (!known.ready && known.probe) known.ready = await known.probe();
      if (known.ready) ready++;
      if (runningTemplate(this.o.stateDir, node.name) === hash) updated++;
    }
    const generation = (ds.metadata as { generation?: number }).generation ?? 1;
    const status = { observedGeneration: generation, desiredNumberScheduled: this.o.topology.nodes.length, currentNumberScheduled: current, numberReady: ready, updatedNumberScheduled: updated, numberAvailable: ready, numberUnavailable: this.o.topology.nodes.length - ready, numberMisscheduled: 0 };
    if (JSON.stringify(ds.status) === JSON.stringify(status)) return;
    this.o.store.commit([{ ...ds, status }]);
  }

  /** Rolls one node's agent to the DaemonSet's current template; the next supervision rolls the next node. */
  private rollAgent(node: string): void {
    this.rolling = true;
    this.o.log.info({ node }, "the agents' DaemonSet changed: rolling the node's agent");
    this.restartAgent(node)
      .catch((err: unknown) => this.o.log.warn({ node, err: errorMessage(err) }, 'agent rollout failed; the old agent keeps serving and it is tried again'))
      .finally(() => {
        this.rolling = false;
        this.schedule();
      });
  }

  private supervisePrometheus(): void {
    const launch = this.o.prometheus;
    if (!launch || !this.o.topology.prometheus) return;
    writePodTargets(this.o.stateDir, this.pods());
    const now = Date.now();
    if (prometheusPid(this.o.stateDir) !== undefined || now < this.prometheusNextStart) return;
    const pid = startPrometheus(this.o.stateDir, this.o.topology, launch);
    // Restarted at most every 10 s: a Prometheus that cannot start (a bad flag) must not spin.
    this.prometheusNextStart = now + 10_000;
    this.o.log.info({ pid }, 'prometheus started');
  }

  /**
   * A rolling update of one node's agent, as a DaemonSet with maxSurge does it: the new agent starts
   * beside the old one and opens its listeners in every pod and on 15008 (SO_REUSEPORT); once it
   * says it serves every pod, the old one gets SIGTERM and drains (its open connections run to
   * their end; the queued ones move to the new agent). If the new agent is not ready in time it is
   * stopped and the old one keeps serving.
   */
  async restartAgent(nodeName: string, timeoutMs = 30_000): Promise<{ node: string; oldPid?: number; newPid: number; readyMs: number }> {
    const launch = this.o.agents;
    const ds = this.agentDaemonSet();
    if (!launch || !ds) throw new AmbitError('NotFound', `this cluster runs no agents (no DaemonSet ${installNamespace}/${agentName})`);
    const node = this.o.topology.nodes.find((n) => n.name === nodeName);
    if (!node) throw new AmbitError('NotFound', `no node ${JSON.stringify(nodeName)}; nodes: ${this.o.topology.nodes.map((n) => n.name).join(', ')}`);
    const old = agentPid(this.o.stateDir, node.name);
    const oldTemplate = runningTemplate(this.o.stateDir, node.name);
    const started = performance.now();
    const agent = startAgent(launch, this.o.stateDir, node, ds, this.agentSources);
    const pid = agent.pid;
    this.o.log.info({ node: node.name, pid, oldPid: old }, 'agent update: new agent started beside the old one');
    try {
      // Its readiness probe: it passes once the agent serves every pod of the node.
      while (!(await agent.ready())) {
        if (!isAlive(pid, agentCgroup(node.name))) throw new AmbitError('AgentNotReady', `the new agent of ${node.name} (pid ${pid}) exited before it was ready; see ${join(agentDir(this.o.stateDir, node.name), 'agent.log')}`);
        if (performance.now() - started > timeoutMs) throw new AmbitError('AgentNotReady', `the new agent of ${node.name} (pid ${pid}) was not ready after ${timeoutMs / 1000} s; the old one keeps serving`);
        await sleep(100);
      }
    } catch (err) {
      signal(pid, 'SIGKILL');
      if (old !== undefined) writeFileAtomic(agentPidPath(this.o.stateDir, node.name), String(old));
      if (old !== undefined && oldTemplate !== undefined) writeTemplateHash(this.o.stateDir, node.name, oldTemplate);
      throw err;
    }
    const readyMs = Math.round(performance.now() - started);
    this.agents.set(node.name, { pid, ready: true });
    if (old !== undefined) signal(old, 'SIGTERM');
    this.o.log.info({ node: node.name, pid, oldPid: old, readyMs }, 'agent update: new agent ready; the old one drains');
    return { node: node.name, ...(old !== undefined ? { oldPid: old } : {}), newPid: pid, readyMs };
  }

  private planPod(rs: ReplicaSet, pods: Pod[]): Pod {
    const tpl = rs.spec.template;
    const name = `${rs.metadata.name}-${randomSuffix()}`;
    const metadata = podMetadataFor(rs, name);
    const node = this.pickNode(rs.metadata.namespace!, podOwner({ metadata }), tpl.spec.nodeName, pods, metadata.labels ?? {});
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata,
      spec: { ...structuredClone(tpl.spec), serviceAccountName: tpl.spec.serviceAccountName ?? 'default', nodeName: node.name },
      // No address yet: the node's CNI chain gives it when the sandbox is made (createPod).
      status: {
        phase: 'Pending',
        podIP: '',
        hostIP: node.ip,
        restarts: 0,
        containerStatuses: tpl.spec.containers.map((c) => ({ name: c.name, restartCount: 0, state: 'waiting' })),
      },
    };
  }

  /** Spreads a Deployment's pods: fewest of its own pods first, then fewest pods at all. */
  private pickNode(namespace: string, owner: string, nodeName: string | undefined, pods: Pod[], labels: Record<string, string>): NodeLayout {
    const nodes = this.o.topology.nodes;
    if (nodeName) return nodes.find((n) => n.name === nodeName) ?? nodes[0]!;
    // As kube-scheduler's default spreading: away from the pods of the same owner first, then from
    // the other pods the same Services select (web-v1 and web-v2 behind one Service), then the busiest node.
    const services = (this.o.store.list('Service', namespace) as Service[]).filter((svc) => selectorMatches(svc.spec?.selector, labels));
    const score = (n: NodeLayout) => {
      const on = pods.filter((p) => p.spec.nodeName === n.name);
      const own = on.filter((p) => p.metadata.namespace === namespace && podOwner(p) === owner);
      const peers = on.filter((p) => p.metadata.namespace === namespace && services.some((svc) => selectorMatches(svc.spec?.selector, p.metadata.labels)));
      return own.length * 10_000 + peers.length * 100 + on.length;
    };
    return [...nodes].sort((a, b) => score(a) - score(b) || a.index - b.index)[0]!;
  }

  private envOf(p: Pod): PodEnv {
    const node = this.o.topology.nodes.find((n) => n.name === p.spec.nodeName)!;
    return {
      namespace: p.metadata.namespace!,
      name: p.metadata.name,
      uid: p.metadata.uid!,
      ip: p.status.podIP,
      node: node.name,
      serviceAccount: p.spec.serviceAccountName ?? 'default',
      netns: podNetns(p.metadata.namespace!, p.metadata.name),
      cgroup: podCgroup(node.name, p.metadata.uid!),
      logDir: join(this.o.stateDir, 'logs', `${p.metadata.namespace}.${p.metadata.name}`),
      binDir: this.o.binDir,
    };
  }

  /**
   * The pod's sandbox: its network through the node's CNI chain, which gives its address, then its
   * cgroup and /etc/hosts. The address and where the sandbox is (netns path, cgroup) are written to
   * the Pod in one change. A failed chain leaves the pod Pending with the plugin's error as its
   * message (and an Event); it is tried again after a backoff.
   */
  private async createPod(p: Pod): Promise<void> {
    const env = this.envOf(p);
    const node = this.o.topology.nodes.find((n) => n.name === env.node)!;
    const log = this.o.log.child({ pod: `${env.namespace}/${env.name}`, node: env.node });
    // The pod's cgroup comes first, as the runtime puts the sandbox in it before the CNI ADD: the
    // agent's eBPF capture attaches to it while it answers the ADD.
    createCgroup(env.cgroup);
    const made = await this.sandboxes.create(p, env, node);
    if ('error' in made) {
      log.warn({ err: made.error }, 'pod sandbox failed; retrying after a backoff');
      this.updateStatus(p, { message: made.error });
      return;
    }
    const fresh = this.o.store.get('Pod', env.namespace, env.name) as Pod | undefined;
    if (fresh?.metadata.uid !== env.uid) {
      // Deleted (or replaced by a pod of the same name) while its network was made.
      await this.sandboxes.remove(env, node);
      return;
    }
    env.ip = made.ip;
    try {
      // Every Service, as the cluster DNS would answer (short names only in the pod's namespace).
      const hosts = hostsFor(env.namespace, this.o.store.list('Service') as Service[]);
      writeHosts(env.netns, hosts);
      this.hosts.set(env.netns, hosts);
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'pod creation failed');
      await this.teardownPod(env);
      this.updateStatus(p, { phase: 'Failed', message: errorMessage(err) });
      return;
    }
    this.tracked.set(keyOfPod(p), { env, nextStart: new Map() });
    const status: Pod['status'] = { ...fresh.status, podIP: made.ip };
    delete status.message;
    this.o.store.commit([{ ...fresh, status }]);
    log.info({ ip: made.ip }, 'pod created');
  }

  /** Starts containers that are not running (first start, or a restart after the backoff). */
  private async superviseContainers(): Promise<void> {
    const now = Date.now();
    for (const p of this.pods()) {
      if (p.status.phase === 'Failed') continue;
      let t = this.tracked.get(keyOfPod(p));
      // Its sandbox is not made yet (createPod tries, and tries again).
      if (!t && !p.status.podIP) continue;
      if (!t) {
        // A pod from a previous controller run: adopt it if its namespace survived.
        const env = this.envOf(p);
        if (!existsSync(`/run/netns/${env.netns}`)) {
          this.updateStatus(p, { phase: 'Failed', message: 'the pod network namespace is gone (host restarted?); delete the pod to replace it' });
          continue;
        }
        createCgroup(env.cgroup);
        t = { env, nextStart: new Map() };
        this.tracked.set(keyOfPod(p), t);
      }
      const statuses: ContainerStatus[] = [];
      let changed = false;
      for (const c of p.spec.containers) {
        const s = p.status.containerStatuses.find((x) => x.name === c.name) ?? { name: c.name, restartCount: 0, state: 'waiting' as const };
        if (s.pid && isAlive(s.pid, t.env.cgroup)) {
          statuses.push(s);
          continue;
        }
        const wasRunning = s.state === 'running';
        const next = t.nextStart.get(c.name) ?? 0;
        if (wasRunning) {
          // Crash-loop backoff: 1 s, 2 s, 4 s ... up to 30 s.
          t.nextStart.set(c.name, now + Math.min(maxBackoffMs, 1000 * 2 ** s.restartCount));
          statuses.push({ name: c.name, restartCount: s.restartCount + 1, state: 'waiting' });
          this.o.log.warn({ pod: `${t.env.namespace}/${t.env.name}`, container: c.name, restarts: s.restartCount + 1 }, 'container exited; restarting after backoff');
          changed = true;
          continue;
        }
        if (now < next) {
          statuses.push(s);
          continue;
        }
        const { pid } = startContainer(t.env, this.o.agents ? profiledWaypoint(c, this.o.agents.cliEntry) : c);
        statuses.push({ name: c.name, pid, restartCount: s.restartCount, state: 'running' });
        changed = true;
      }
      if (changed) {
        const restarts = statuses.reduce((n, s) => n + s.restartCount, 0);
        const running = statuses.every((s) => s.state === 'running');
        this.updateStatus(p, {
          message: undefined,
          phase: running || p.status.phase === 'Running' ? 'Running' : 'Pending',
          restarts,
          containerStatuses: statuses,
          startTime: p.status.startTime ?? new Date().toISOString(),
        });
      }
    }
  }

  /** Merges `patch` into the pod's stored status; a key patched to undefined is removed. */
  private updateStatus(p: Pod, patch: Partial<Pod['status']>): void {
    const fresh = this.o.store.get('Pod', p.metadata.namespace!, p.metadata.name) as Pod | undefined;
    if (!fresh) return;
    const status = { ...fresh.status, ...patch } as Record<string, unknown>;
    for (const [k, v] of Object.entries(patch)) if (v === undefined) delete status[k];
    this.o.store.commit([{ ...fresh, status: status as unknown as Pod['status'] }]);
  }


  private async deletePod(p: Pod): Promise<void> {
    // A sandbox still being made is finished first, so its network is not made after it was removed.
    await this.making.get(p.metadata.uid!);
    const env = this.tracked.get(keyOfPod(p))?.env ?? this.envOf(p);
    await this.teardownPod(env);
    this.tracked.delete(keyOfPod(p));
    this.o.log.info({ pod: `${env.namespace}/${env.name}` }, 'pod deleted');
  }

  private async teardownPod(env: PodEnv): Promise<void> {
    this.hosts.delete(env.netns);
    await stopCgroup(env.cgroup, this.o.graceMs ?? 2000);
    // Processes that entered the namespace without its cgroup (a debugging shell, say).
    if (existsSync(`/run/netns/${env.netns}`)) for (const pid of await pidsInNetns(env.netns)) signal(pid, 'SIGKILL');
    const node = this.o.topology.nodes.find((n) => n.name === env.node)!;
    await this.sandboxes.remove(env, node);
    removeHosts(env.netns);
  }

  /**
   * The EndpointSlice controller's part: slices follow the Services and the pods' phases. A commit
   * here schedules one more reconcile, which finds nothing to change.
   */
  private syncEndpointSlices(): void {
    const store = this.o.store;
    const plan = planEndpointSlices(store.list('Service') as Service[], this.pods(), store.list('EndpointSlice') as EndpointSlice[]);
    if (plan.upserts.length || plan.deletes.length) store.commit(plan.upserts, plan.deletes);
  }

  private async syncServices(): Promise<void> {
    const services = this.o.store.list('Service') as Service[];
    const pods = this.pods();
    const ports = endpointsOf(services, pods);
    const rules = servicesRuleset(this.o.topology, ports);
    await Promise.all(
      this.o.topology.nodes.map(async (n) => {
        if (this.nodeRules.get(n.name) === rules) return;
        await inNetns(n.netns, 'nft', ['-f', '-'], { input: rules });
        this.nodeRules.set(n.name, rules);
      }),
    );
    for (const p of pods) {
      const t = this.tracked.get(keyOfPod(p));
      if (!t) continue;
      const text = hostsFor(t.env.namespace, services);
      if (this.hosts.get(t.env.netns) === text) continue;
      writeHosts(t.env.netns, text);
      this.hosts.set(t.env.netns, text);
    }
  }
}

function keyOfPod(p: Pod): string {
  return `${p.metadata.namespace}/${p.metadata.name}`;
}

const suffixAlphabet = 'bcdfghjklmnpqrstvwxz2456789';
function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += suffixAlphabet[randomInt(suffixAlphabet.length)];
  return s;
}

/**
 * For profiling a local cluster's waypoints: AMBIT_WAYPOINT_NODE_OPTIONS (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof") runs a waypoint's `ambit` under Node with those flags, as
 * AMBIT_AGENT_NODE_OPTIONS does for the agents (Node refuses --cpu-prof in NODE_OPTIONS). A waypoint
 * writes its profile when it stops (SIGTERM, as `ambit down` sends).
 */
function profiledWaypoint(c: Container, cliEntry: string): Container {
  const flags = process.env.AMBIT_WAYPOINT_NODE_OPTIONS?.split(' ').filter(Boolean);
  if (!flags?.length || c.command[0] !== 'ambit' || c.command[1] !== 'waypoint') return c;
  return { ...c, command: [process.execPath, ...flags, cliEntry, ...c.command.slice(1)] };
}
