// `ambit agent`: runs a node agent in the foreground (`ambit up` starts one per node).

import { parseArgs } from 'node:util';
import { AmbitError } from '../../shared/errors.js';
import { parseDuration } from '../../shared/duration.js';
import { availableParallelism } from 'node:os';
import { defaultAdminPort, defaultMetricsPort, defaultWorkers } from '../../agent/config.js';
import { runAgent } from '../../agent/main.js';
import { redirectModes, type RedirectMode } from '../../agent/capture/redirect.js';
import { defaultCniBinDir, defaultCniConfDir, defaultCniSocket } from '../../agent/cni/protocol.js';
import { uninstallCni } from '../../agent/cni/installer.js';
import type { CliContext } from '../context.js';

export async function agent(_ctx: CliContext, args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      node: { type: 'string' },
      controller: { type: 'string' },
      'controller-ca': { type: 'string' },
      'token-file': { type: 'string' },
      'admin-listen': { type: 'string' },
      'admin-token-file': { type: 'string' },
      'log-level': { type: 'string' },
      'trust-domain': { type: 'string' },
      'cert-ttl': { type: 'string' },
      'key-type': { type: 'string' },
      redirect: { type: 'string' },
      'bpf-object': { type: 'string' },
      'root-namespace': { type: 'string' },
      'metrics-listen': { type: 'string' },
      'cluster-name': { type: 'string' },
      'max-hbone-connections': { type: 'string' },
      'max-streams-per-connection': { type: 'string' },
      'drain-grace': { type: 'string' },
      'ready-file': { type: 'string' },
      'cni-conf-dir': { type: 'string' },
      'cni-bin-dir': { type: 'string' },
      'cni-socket': { type: 'string' },
      'cni-uninstall': { type: 'boolean' },
      'pod-cgroup-root': { type: 'string' },
      'proc-root': { type: 'string' },
      workers: { type: 'string' },
    },
  });
  const cni = {
    // `none`: no installer (a node whose runtime has no CNI configuration of ambit's to keep).
    confDir: values['cni-conf-dir'] ?? defaultCniConfDir,
    binDir: values['cni-bin-dir'] ?? defaultCniBinDir,
    socket: values['cni-socket'] ?? defaultCniSocket,
  };
  for (const flag of ['cni-conf-dir', 'cni-bin-dir', 'cni-socket'] as const) {
    const v = values[flag];
    if (v !== undefined && !v.startsWith('/') && !(flag === 'cni-conf-dir' && v === 'none')) throw new AmbitError('BadFlag', `--${flag} ${v}: must be an absolute path${flag === 'cni-conf-dir' ? ' (or none, for no installer)' : ''}`);
  }
  const cgroupRoot = values['pod-cgroup-root'];
  if (cgroupRoot !== undefined && !/^\/[^\0]*[^/]$/.test(cgroupRoot)) throw new AmbitError('BadFlag', `--pod-cgroup-root ${cgroupRoot}: must be a cgroup path below the cgroup2 mount, as /proc/PID/cgroup shows it (e.g. /kubepods.slice)`);
  const procRoot = values['proc-root'];
  if (procRoot !== undefined && !procRoot.startsWith('/')) throw new AmbitError('BadFlag', `--proc-root ${procRoot}: must be an absolute path (the host's /proc as mounted in the agent's container, e.g. /host/proc)`);
  // A Unix socket's path holds at most 107 bytes.
  if (Buffer.byteLength(cni.socket) > 107) throw new AmbitError('BadFlag', `--cni-socket ${cni.socket}: a Unix socket path must be at most 107 bytes`);
  if (values['cni-uninstall']) {
    // What an uninstall leaves on the node: no plugin entry, executable or list of namespaces.
    const removed = uninstallCni({ confDir: cni.confDir === 'none' ? defaultCniConfDir : cni.confDir, binDir: cni.binDir, socket: cni.socket });
    process.stdout.write(removed.length ? `removed ambit's CNI plugin: ${removed.join(', ')}\n` : 'ambit\'s CNI plugin was not installed\n');
    return;
  }
  for (const flag of ['node', 'controller', 'controller-ca', 'token-file', 'admin-token-file'] as const) {
    if (!values[flag]) throw new AmbitError('BadFlag', `agent needs --${flag}`);
  }
  const keyType = values['key-type'] ?? 'ecdsa';
  if (keyType !== 'ecdsa' && keyType !== 'rsa') throw new AmbitError('BadFlag', `--key-type ${keyType}: must be ecdsa or rsa`);
  const redirect = (values.redirect ?? 'iptables') as RedirectMode;
  if (!redirectModes.includes(redirect)) throw new AmbitError('BadFlag', `--redirect ${values.redirect}: must be ${redirectModes.join(' or ')}`);
  const limit = (flag: 'max-hbone-connections' | 'max-streams-per-connection', fallback: number) => {
    const v = values[flag] ?? String(fallback);
    if (!/^\d+$/.test(v) || Number(v) < 1) throw new AmbitError('BadFlag', `--${flag} ${v}: must be a positive integer`);
    return Number(v);
  };
  const listen = (flag: 'metrics-listen' | 'admin-listen', fallback: string) => {
    const [host, port] = (values[flag] ?? fallback).split(':');
    if (!host || !port || !/^\d+$/.test(port)) throw new AmbitError('BadFlag', `--${flag} ${values[flag]}: must be HOST:PORT`);
    return { host, port: Number(port) };
  };
  // 0, or no flag: ztunnel's default (the DaemonSet passes its value, 0 unless set).
  const workers = values.workers === undefined || values.workers === '0' ? String(defaultWorkers(availableParallelism())) : values.workers;
  if (!/^\d+$/.test(workers) || Number(workers) < 1 || Number(workers) > 64) throw new AmbitError('BadFlag', `--workers ${workers}: must be a whole number from 0 to 64 (event loops carrying traffic; 0: 2, or the cores if fewer)`);
  const metrics = listen('metrics-listen', `0.0.0.0:${defaultMetricsPort}`);
  const admin = listen('admin-listen', `127.0.0.1:${defaultAdminPort}`);
  await runAgent({
    node: values.node!,
    // One or more replicas, comma-separated: the agent moves to the next when one fails.
    controllerUrls: values.controller!.split(',').map((u) => u.trim()).filter(Boolean),
    controllerCaFile: values['controller-ca']!,
    tokenFile: values['token-file']!,
    adminHost: admin.host,
    adminPort: admin.port,
    adminTokenFile: values['admin-token-file']!,
    logLevel: values['log-level'] ?? 'info',
    trustDomain: values['trust-domain'] ?? 'cluster.local',
    certTtlSeconds: parseDuration(values['cert-ttl'] ?? '24h', '--cert-ttl'),
    keyType,
    redirect,
    rootNamespace: values['root-namespace'] ?? 'istio-system',
    hboneHost: '0.0.0.0',
    metricsHost: metrics.host,
    metricsPort: metrics.port,
    clusterName: values['cluster-name'] ?? 'Kubernetes',
    hboneLimits: { maxSessions: limit('max-hbone-connections', 10_000), maxConcurrentStreams: limit('max-streams-per-connection', 100) },
    drainSeconds: parseDuration(values['drain-grace'] ?? '30s', '--drain-grace'),
    ...(values['ready-file'] ? { readyFile: values['ready-file'] } : {}),
    ...(values['bpf-object'] ? { bpfObject: values['bpf-object'] } : {}),
    cni: { binDir: cni.binDir, socket: cni.socket, ...(cni.confDir !== 'none' ? { confDir: cni.confDir } : {}) },
    ...(values['pod-cgroup-root'] ? { podCgroupRoot: values['pod-cgroup-root'] } : {}),
    ...(procRoot ? { procRoot } : {}),
    workers: Number(workers),
  });
}
