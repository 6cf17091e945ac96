// A worker thread of the agent: a node proxy on its own event loop, on copies of the main thread's
// configuration and certificates, with its own listener in every captured pod and on 15008. Its
// connections, metrics and events are its own; the main thread asks for them (host.ts).

import { parentPort, workerData } from 'node:worker_threads';
import type { Server } from 'node:net';
import { createLogger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { closeFd, openNetns } from '../../native/netns.js';
import { AgentState } from '../state/state.js';
import { EventLog } from '../api/events.js';
import { destinationReader } from '../capture/destinations.js';
import { podListener, type CapturedPod } from '../capture/manager.js';
import { CertificateSet, workloadCertificate } from '../identity/set.js';
import { NodeProxy } from '../proxy/proxy.js';
import { AgentMetrics, metricsEvents } from '../telemetry/metrics.js';
import { cpuProfile } from '../../shared/telemetry/profile.js';
import type { FromWorker, Question, SharedPod, ToWorker, WorkerSetup } from './protocol.js';

const setup = workerData as WorkerSetup;
const port = parentPort!;
const post = (m: FromWorker) => port.postMessage(m);
const log = createLogger('agent', setup.logLevel).child({ node: setup.node, worker: setup.index });
const access = createLogger('agent', 'info', undefined, 1).child({ node: setup.node, log: 'access' });
const state = new AgentState(setup.node);
const certificates = new CertificateSet();
const pods = new Map<string, { pod: CapturedPod; servers: Server[] }>();
const byIp = new Map<string, CapturedPod>();
const proxy: NodeProxy = new NodeProxy({
  state,
  certificates,
  trustDomain: setup.trustDomain,
  rootNamespace: setup.rootNamespace,
  podAt: (ip) => byIp.get(ip),
  log: log.child({ component: 'proxy' }),
  access,
  limits: setup.hboneLimits,
  events: metricsEvents(() => metrics),
  worker: { index: setup.index, count: setup.count },
});
const metrics: AgentMetrics = new AgentMetrics({ cluster: setup.clusterName, trustDomain: setup.trustDomain, connections: proxy.connections, sockets: () => proxy.openSockets, counters: () => proxy.eventCounts() });
const events = new EventLog(0);
const subscriptions = new Map<string, () => void>();

async function capture(p: SharedPod, listeners: { outbound: number; inbound: number }): Promise<void> {
  drained(p.key);
  let nsFd = -1;
  const servers: Server[] = [];
  try {
    // Its own handle on the namespace, which lives as long as this worker's copy of the pod.
    nsFd = openNetns(p.netns);
    const pod: CapturedPod = { key: p.key, workload: p.workload, nsFd, netns: p.netns, redirect: { how: p.how, source: p.source, ...destinationReader(p.source), remove() {}, finish() {} } };
    for (const dir of ['outbound', 'inbound'] as const) {
      const fd = listeners[dir];
      listeners[dir] = -1;
      servers.push(await podListener(fd, (socket) => proxy.handlers[dir](pod, socket), (err) => log.warn({ workload: p.key, err: err.message }, 'capture listener error')));
    }
    pods.set(p.key, { pod, servers });
    byIp.set(p.workload.ip, pod);
  } catch (err) {
    // The pod went meanwhile: this worker takes none of its connections, the others do.
    log.warn({ workload: p.key, err: errorMessage(err) }, 'cannot take over a captured pod');
    for (const s of servers) s.close();
    for (const fd of [listeners.outbound, listeners.inbound]) if (fd >= 0) closeFd(fd);
    if (nsFd >= 0) closeFd(nsFd);
  }
}

function released(key: string): void {
  const p = pods.get(key);
  if (p && byIp.get(p.pod.workload.ip) === p.pod) byIp.delete(p.pod.workload.ip);
}

function drained(key: string): void {
  const p = pods.get(key);
  if (!p) return;
  released(key);
  pods.delete(key);
  for (const s of p.servers) s.close();
  closeFd(p.pod.nsFd);
}

async function answer(q: Question): Promise<unknown> {
  switch (q.ask) {
    case 'listen':
      return void (await proxy.listen(q.host));
    case 'size':
      return proxy.connections.size;
    case 'holds':
      return proxy.holds(q.workload);
    case 'counters':
      return proxy.counters(q.workloads.map((key) => ({ key }) as CapturedPod));
    case 'metrics':
      return metrics.registry.getMetricsAsJSON();
    case 'load':
      return proxy.load(setup.index);
    case 'profile':
      return cpuProfile(q.ms);
    case 'stop': {
      // The main thread's drain grace is over: what is still open is cut, as there.
      for (const c of [...proxy.connections.values()]) c.terminate('the agent stopped after its drain grace period');
      await proxy.close(0);
      for (const key of [...pods.keys()]) drained(key);
      for (const stop of subscriptions.values()) stop();
      access.flush();
      log.flush();
      return undefined;
    }
  }
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'push':
      return state.apply(m.push);
    case 'certificate':
      return certificates.put(workloadCertificate(m.certificate));
    case 'certificate-dropped':
      return certificates.drop(m.id);
    case 'capture':
      return capture(m.pod, m.listeners);
    case 'release':
      return released(m.key);
    case 'drained':
      return drained(m.key);
    case 'stop-accepting':
      for (const p of pods.values()) for (const s of p.servers) s.close();
      void proxy.stopAccepting(m.graceMs);
      return;
    case 'subscribe':
      subscriptions.get(m.topic)?.();
      subscriptions.set(m.topic, events.subscribe((e) => post({ type: 'event', topic: e.topic, data: e.data }), new Set([m.topic])));
      return;
    case 'unsubscribe':
      subscriptions.get(m.topic)?.();
      subscriptions.delete(m.topic);
      return;
    case 'ask':
      return reply(m.id, m.question);
  }
}

async function reply(id: number, question: Question): Promise<void> {
  try {
    post({ type: 'reply', id, value: await answer(question) });
  } catch (err) {
    post({ type: 'reply', id, value: undefined, error: errorMessage(err) });
  }
}

// In order, one at a time: a pod's release never overtakes its capture.
let queue: Promise<void> = Promise.resolve();
port.on('message', (m: ToWorker) => {
  // A profile samples for seconds; the pods and pushes that arrive meanwhile must not wait for it.
  if (m.type === 'ask' && m.question.ask === 'profile') return void reply(m.id, m.question);
  queue = queue.then(() => handle(m)).catch((err: unknown) => log.error({ message: m.type, err: errorMessage(err) }, 'worker message failed'));
});
post({ type: 'ready' });
