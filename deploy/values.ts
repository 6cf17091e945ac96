// What a user may choose when installing ambit on a cluster (`ambit install --set key=value`, `-f
// values.yaml`, or the Helm chart's values.yaml, which is made from `defaultValues`): one typed
// object, checked whole before anything is rendered, each problem naming its key.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { AmbitError } from '../shared/errors.js';

export type RedirectMode = 'iptables' | 'ebpf';

export interface ResourceRequirements {
  requests: Record<string, string>;
  limits: Record<string, string>;
}

export interface InstallValues {
  /** The ambit image (deploy/Containerfile), `REPOSITORY:TAG`. */
  image: string;
  imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** SPIFFE trust domain of the workload identities. */
  trustDomain: string;
  /** Istio's root namespace: its policies apply mesh-wide. */
  rootNamespace: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  controller: {
    replicas: number;
    resources: ResourceRequirements;
  };
  agent: {
    /** How pods' traffic is captured: nftables rules in each pod (iptables) or eBPF programs on its cgroup. */
    redirect: RedirectMode;
    /** The controller replicas' agent channel, comma-separated; the controller's Service by default. */
    controllerUrl: string;
    /** The cluster's name in telemetry (source_cluster, destination_cluster). */
    clusterName: string;
    /** The node's CNI configuration and plugin directories, where the agent inserts ambit's chained plugin. */
    cniConfDir: string;
    cniBinDir: string;
    /**
     * The kubelet's pod cgroups below the cgroup2 mount (the systemd driver's `/kubepods.slice`; the
     * cgroupfs driver's `/kubepods`), where the agent's /proc scan and eBPF capture find pods.
     * `$(NODE_NAME)` is expanded, as in any container argument.
     */
    podCgroupRoot: string;
    /** Where the agent's query API (WebSocket, also its readiness) listens, `HOST:PORT` in the node's network. */
    adminListen: string;
    /** Event loops carrying traffic in each agent (threads sharing its listeners); 0: the agent's default, 2 or the cores if fewer. */
    workers: number;
    /**
     * V8's heap limits for each of the agent's event loops (Node's --max-semi-space-size and
     * --max-old-space-size, in MB; 0 leaves Node's default). The defaults come from the agent's heap
     * measured under load (BENCHMARKS.md, "Memory"): a young generation that cannot grow past a few
     * MB, and an old generation with room for tens of thousands of connections per event loop, so
     * that a leak ends in V8's out-of-memory error well before the container's limit.
     */
    heap: { maxSemiSpaceMb: number; maxOldSpaceMb: number };
    /** How long a stopping agent lets open connections run (its terminationGracePeriodSeconds is this plus 15 s). */
    drainGraceSeconds: number;
    terminationGracePeriodSeconds: number;
    resources: ResourceRequirements;
  };
}

export const installNamespace = 'ambit-system';
export const controllerServiceName = 'ambit-controller';
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function defaultValues(): InstallValues {
  return {
    image: `ambit:${version}`,
    imagePullPolicy: 'IfNotPresent',
    trustDomain: 'cluster.local',
    rootNamespace: 'istio-system',
    logLevel: 'info',
    controller: {
      replicas: 2,
      resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    },
    agent: {
      redirect: 'iptables',
      controllerUrl: `wss://${controllerServiceName}.${installNamespace}.svc:15012`,
      clusterName: 'Kubernetes',
      cniConfDir: '/etc/cni/net.d',
      cniBinDir: '/opt/cni/bin',
      podCgroupRoot: '/kubepods.slice',
      adminListen: '127.0.0.1:15021',
      workers: 0,
      heap: { maxSemiSpaceMb: 8, maxOldSpaceMb: 256 },
      drainGraceSeconds: 30,
      terminationGracePeriodSeconds: 45,
      resources: { requests: { cpu: '200m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    },
  };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Keys whose value is a free map (resource names to quantities), not a fixed set of fields. */
const freeMaps = new Set(['controller.resources.requests', 'controller.resources.limits', 'agent.resources.requests', 'agent.resources.limits']);

/** Lays `overrides` over `base`, refusing a key the values do not have and a value of another type. */
function merge(base: Json, overrides: Json, at: string): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(overrides)) {
    const key = at ? `${at}.${k}` : k;
    if (freeMaps.has(at)) {
      if (typeof v !== 'string' && typeof v !== 'number') throw new AmbitError('BadValue', `${key}: must be a quantity such as 500m or 1Gi`);
      out[k] = String(v);
      continue;
    }
    if (!(k in base)) throw new AmbitError('BadValue', `${key} is not a value ambit install knows (known here: ${Object.keys(base).map((b) => (at ? `${at}.${b}` : b)).join(', ')})`);
    const was = base[k];
    if (isObject(was)) {
      if (!isObject(v)) throw new AmbitError('BadValue', `${key}: must be a mapping`);
      out[k] = freeMaps.has(key) ? merge({}, v, key) : merge(was, v, key);
    } else if (typeof was === 'number') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new AmbitError('BadValue', `${key}: must be a whole number, not ${JSON.stringify(v)}`);
      out[k] = v;
    } else {
      if (typeof v !== 'string' || v === '') throw new AmbitError('BadValue', `${key}: must be a non-empty string, not ${JSON.stringify(v)}`);
      out[k] = v;
    }
  }
  return out;
}

/** `key=value` of `--set`, as Helm reads it: dotted keys, numbers as numbers. */
export function setOverride(assignment: string): Json {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new AmbitError('BadFlag', `--set ${assignment}: must be KEY=VALUE (e.g. agent.redirect=ebpf)`);
  const path = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  let value: unknown = /^\d+$/.test(raw) ? Number(raw) : raw;
  for (const part of path.reverse()) value = { [part]: value };
  return value as Json;
}

export function valuesFile(path: string): Json {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AmbitError('BadValue', `${path}: ${(err as Error).message}`);
  }
  if (doc === null || doc === undefined) return {};
  if (!isObject(doc)) throw new AmbitError('BadValue', `${path}: must be a mapping of values`);
  return doc;
}

/** The defaults with each override laid over them in turn, then checked as a whole. */
export function resolveValues(overrides: Json[]): InstallValues {
  let v = defaultValues() as unknown as Json;
  for (const o of overrides) v = merge(v, o, '');
  const values = v as unknown as InstallValues;
  const problems: string[] = [];
  const oneOf = (key: string, value: string, allowed: readonly string[]) => {
    if (!allowed.includes(value)) problems.push(`${key}: must be ${allowed.join(', ')}, not ${JSON.stringify(value)}`);
  };
  oneOf('agent.redirect', values.agent.redirect, ['iptables', 'ebpf']);
  oneOf('logLevel', values.logLevel, ['debug', 'info', 'warn', 'error']);
  oneOf('imagePullPolicy', values.imagePullPolicy, ['Always', 'IfNotPresent', 'Never']);
  if (values.controller.replicas < 1) problems.push('controller.replicas: must be at least 1');
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(values.trustDomain)) problems.push(`trustDomain: ${JSON.stringify(values.trustDomain)} must be a DNS name (lower case)`);
  for (const url of values.agent.controllerUrl.split(',')) if (!/^wss:\/\/[^/\s]+$/.test(url.trim())) problems.push(`agent.controllerUrl: ${JSON.stringify(url)} must be wss://HOST:PORT`);
  for (const key of ['cniConfDir', 'cniBinDir'] as const) if (!values.agent[key].startsWith('/')) problems.push(`agent.${key}: must be an absolute path`);
  if (values.agent.terminationGracePeriodSeconds <= values.agent.drainGraceSeconds) {
    problems.push(`agent.terminationGracePeriodSeconds (${values.agent.terminationGracePeriodSeconds}) must exceed agent.drainGraceSeconds (${values.agent.drainGraceSeconds}), or the kubelet kills a draining agent`);
  }
  if (problems.length) throw new AmbitError('BadValue', problems.join('; '));
  return values;
}
