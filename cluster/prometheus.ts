// The local cluster's Prometheus: Debian's `prometheus`, run as a process on the control-plane
// host (where the controller runs, and from where every node's address is reachable), scraping
// each agent's 15020 and the controller's 15014 every 5 s, with bounded retention. The runtime
// starts it and restarts it when it exits; `ambit down` takes it with the cluster's cgroups.

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { writeFileAtomic } from '../controller/store/store.js';
import { defaultMetricsPort } from '../agent/config.js';
import { clusterCgroupRoot, createCgroup, isAlive, spawnInCgroup } from './kubelet/pods.js';
import type { Topology } from './topology.js';
import type { Pod } from '../shared/resources/types.js';

export const prometheusPort = 9090;
/** The controller's dashboard serves Prometheus under this path, so its links point there. */
export const prometheusPathPrefix = '/prometheus';
/** Scrapes are frequent so a test or a demo sees a change within seconds; retention keeps it small. */
const scrapeInterval = '5s';
const retention = { time: '6h', size: '512MB' };

export interface PrometheusLaunch {
  /** The URL people open it at (through the controller's dashboard); Prometheus builds its links on it. */
  external: string;
}

export const prometheusDir = (stateDir: string) => join(stateDir, 'prometheus');
const pidPath = (stateDir: string) => join(prometheusDir(stateDir), 'pid');
export const prometheusCgroup = () => join(clusterCgroupRoot(), 'control', 'prometheus');

/** Where Prometheus answers, from the control-plane host (the controller's namespace). */
export function prometheusUrl(t: Topology): string {
  return `http://${t.control.ip}:${prometheusPort}${prometheusPathPrefix}`;
}

/**
 * The scrape configuration: every agent by its node's address, the controller, and the pods that ask
 * for it with Kubernetes' usual annotations (`prometheus.io/scrape: "true"`, `prometheus.io/port`,
 * `prometheus.io/path`), as a cluster's Prometheus finds them with kubernetes_sd: here the runtime
 * writes them to a file Prometheus rereads (podTargets). Waypoints ask for it.
 */
export function prometheusConfig(t: Topology, podTargetsFile?: string): string {
  return stringify({
    global: { scrape_interval: scrapeInterval, evaluation_interval: scrapeInterval, external_labels: { cluster: t.name } },
    scrape_configs: [
      {
        job_name: 'ambit-agent',
        static_configs: t.nodes.map((n) => ({ targets: [`${n.ip}:${defaultMetricsPort}`], labels: { node: n.name } })),
      },
      { job_name: 'ambit-controller', static_configs: [{ targets: t.controllers.map((c) => `${t.control.ip}:${c.monitoringPort}`) }] },
      ...(podTargetsFile ? [{ job_name: 'kubernetes-pods', file_sd_configs: [{ files: [podTargetsFile], refresh_interval: scrapeInterval }] }] : []),
    ],
  });
}

export const podTargetsPath = (stateDir: string) => join(prometheusDir(stateDir), 'pods.json');
let lastTargets = '';

/** Writes the pods Prometheus scrapes (file_sd), when they changed: running pods annotated prometheus.io/scrape. */
export function writePodTargets(stateDir: string, pods: Pod[]): void {
  const groups = pods
    .filter((p) => p.status.phase === 'Running' && p.status.podIP && p.metadata.annotations?.['prometheus.io/scrape'] === 'true')
    .map((p) => ({
      targets: [`${p.status.podIP}:${p.metadata.annotations?.['prometheus.io/port'] ?? '80'}`],
      labels: { namespace: p.metadata.namespace!, pod: p.metadata.name, node: p.spec.nodeName, __metrics_path__: p.metadata.annotations?.['prometheus.io/path'] ?? '/metrics' },
    }))
    .sort((a, b) => (a.targets[0]! < b.targets[0]! ? -1 : 1));
  const text = JSON.stringify(groups);
  if (text === lastTargets && existsSync(podTargetsPath(stateDir))) return;
  mkdirSync(prometheusDir(stateDir), { recursive: true });
  writeFileAtomic(podTargetsPath(stateDir), text);
  lastTargets = text;
}

export function prometheusPid(stateDir: string): number | undefined {
  const path = pidPath(stateDir);
  if (!existsSync(path)) return undefined;
  const pid = Number(readFileSync(path, 'utf8'));
  return isAlive(pid, prometheusCgroup()) ? pid : undefined;
}

/**
 * Starts Prometheus in this process's network namespace (the control-plane host's). Its web
 * address is the control-plane address, which the host's own namespace cannot reach: people open
 * it through the dashboard (`external`, the URL Prometheus puts in its links).
 */
export function startPrometheus(stateDir: string, t: Topology, o: PrometheusLaunch): number {
  const dir = prometheusDir(stateDir);
  mkdirSync(join(dir, 'data'), { recursive: true });
  const config = join(dir, 'prometheus.yml');
  writeFileAtomic(config, prometheusConfig(t, podTargetsPath(stateDir)));
  createCgroup(prometheusCgroup());
  const pid = spawnInCgroup(
    prometheusCgroup(),
    [
      'prometheus',
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--storage.tsdb.retention.time=${retention.time}`,
      `--storage.tsdb.retention.size=${retention.size}`,
      `--web.listen-address=${t.control.ip}:${prometheusPort}`,
      `--web.external-url=${o.external}`,
      `--web.route-prefix=${prometheusPathPrefix}`,
    ],
    { log: join(dir, 'prometheus.log') },
  );
  writeFileAtomic(pidPath(stateDir), String(pid));
  return pid;
}
