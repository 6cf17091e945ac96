// What ambit's CNI plugin (ambit-cni.c) and the agent say to each other over the agent's Unix
// socket, and the plugin's entry in a conflist. One request per connection: a header of the CNI
// environment, then the network configuration exactly as the runtime gave it on stdin; the answer
// is the plugin's exit status and what it prints (nothing: "print prevResult unchanged").
// The decisions are the server's (server.ts); the installer writes the entry (installer.ts).

import { dirname, join } from 'node:path';
import { isIPv4 } from 'node:net';
import { AmbitError } from '../../shared/errors.js';

/** The plugin's `type` in a conflist, and its executable's name in the CNI bin directory. */
export const pluginType = 'ambit-cni';
export const defaultCniSocket = '/var/run/ambit/cni.sock';
export const defaultCniConfDir = '/etc/cni/net.d';
export const defaultCniBinDir = '/opt/cni/bin';
/**
 * Namespaces whose pods start even when the agent cannot be asked (their ADDs still reach a running
 * agent). The mesh's own control plane and the cluster's system pods must never wait for an agent
 * that may itself wait for them (after a node reboot, say).
 */
export const defaultExcludedNamespaces = ['kube-system', 'ambit-system'];
/** How long the plugin waits for the agent's answer to an ADD. */
export const defaultTimeoutSeconds = 20;
export const supportedCniVersions = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'];

/** The plugin's entry in the primary conflist's `plugins`, as the installer writes it. */
export interface PluginEntry {
  type: typeof pluginType;
  socket: string;
  timeout_seconds: number;
  exclude_namespaces: string[];
}

export function pluginEntry(socket: string, excludeNamespaces = defaultExcludedNamespaces, timeoutSeconds = defaultTimeoutSeconds): PluginEntry {
  return { type: pluginType, socket, timeout_seconds: timeoutSeconds, exclude_namespaces: excludeNamespaces };
}

/**
 * The agent's list of enrolled namespaces, one name a line, beside its socket: what the plugin
 * reads when the agent cannot be asked, to hold the pods that must be captured (and only those).
 */
export function enrolledNamespacesPath(socket: string): string {
  return join(dirname(socket), 'enrolled-namespaces');
}

/** CNI error codes (the CNI specification's "Error" section) the agent answers with. */
export const cniError = {
  invalidEnvironment: 4,
  decode: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** Plugin-specific (100 and up): the agent will not let this pod start (its capture failed). */
  refused: 100,
} as const;

export class CniRequestInvalid extends AmbitError {
  constructor(
    readonly cniCode: number,
    message: string,
  ) {
    super('CniRequestInvalid', message);
  }
}

export interface CniRequest {
  command: string;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS, split: K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_UID, ... */
  args: Record<string, string>;
  /** The network configuration from stdin, with prevResult. */
  config: Record<string, unknown>;
  cniVersion: string;
  /** How long the plugin waits for the answer (its configuration's timeout_seconds). */
  timeoutMs: number;
}

const magic = 'AMBIT-CNI 1';

/** Reads a request as the plugin sends it; throws CniRequestInvalid naming what is wrong. */
export function parseRequest(data: Buffer): CniRequest {
  const text = data.toString('utf8');
  const end = text.indexOf('\n\n');
  if (end < 0) throw new CniRequestInvalid(cniError.decode, 'the request has no end of header (a blank line)');
  const [first, ...lines] = text.slice(0, end).split('\n');
  if (first !== magic) throw new CniRequestInvalid(cniError.decode, `the request begins with ${JSON.stringify(first?.slice(0, 40))}, not "${magic}": plugin and agent are of different versions?`);
  const env: Record<string, string> = {};
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq <= 0) throw new CniRequestInvalid(cniError.decode, `header line ${JSON.stringify(line.slice(0, 60))} is not NAME=VALUE`);
    env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  let config: unknown;
  try {
    config = JSON.parse(text.slice(end + 2));
  } catch (err) {
    throw new CniRequestInvalid(cniError.decode, `the network configuration is not JSON: ${(err as Error).message}`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new CniRequestInvalid(cniError.decode, 'the network configuration is not a JSON object');
  const c = config as Record<string, unknown>;
  const timeout = typeof c.timeout_seconds === 'number' && c.timeout_seconds > 0 ? c.timeout_seconds : defaultTimeoutSeconds;
  return {
    command: env.CNI_COMMAND ?? '',
    containerId: env.CNI_CONTAINERID ?? '',
    netns: env.CNI_NETNS ?? '',
    ifname: env.CNI_IFNAME ?? '',
    args: parseCniArgs(env.CNI_ARGS ?? ''),
    config: c,
    cniVersion: typeof c.cniVersion === 'string' ? c.cniVersion : '1.0.0',
    timeoutMs: Math.round(timeout * 1000),
  };
}

/** `IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1` as an object. */
export function parseCniArgs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of args.split(';')) {
    const eq = pair.indexOf('=');
    if (eq > 0) out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** A pod as a CNI ADD describes it. */
export interface CniPod {
  namespace: string;
  name: string;
  /** Absent from older runtimes' CNI_ARGS. */
  uid?: string;
  netns: string;
  containerId: string;
  /** The IPv4 addresses the primary plugin gave it (prevResult.ips), without prefix lengths. */
  ips: string[];
}

/** The pod of an ADD; throws CniRequestInvalid naming what is missing. */
export function podOf(r: CniRequest): CniPod {
  const namespace = r.args.K8S_POD_NAMESPACE;
  const name = r.args.K8S_POD_NAME;
  if (!namespace || !name) throw new CniRequestInvalid(cniError.invalidEnvironment, `CNI_ARGS has no ${namespace ? 'K8S_POD_NAME' : 'K8S_POD_NAMESPACE'}: ambit-cni serves Kubernetes pods only`);
  if (!r.netns) throw new CniRequestInvalid(cniError.invalidEnvironment, `CNI_NETNS is not set for pod ${namespace}/${name}`);
  if (!r.containerId) throw new CniRequestInvalid(cniError.invalidEnvironment, `CNI_CONTAINERID is not set for pod ${namespace}/${name}`);
  const prev = r.config.prevResult as { ips?: { address?: unknown }[] } | undefined;
  if (!prev || typeof prev !== 'object') throw new CniRequestInvalid(cniError.invalidConfig, 'ambit-cni is a chained plugin: it must come after the interface plugin (no prevResult)');
  const ips: string[] = [];
  for (const ip of Array.isArray(prev.ips) ? prev.ips : []) {
    const address = typeof ip?.address === 'string' ? ip.address.split('/')[0]! : '';
    if (isIPv4(address)) ips.push(address);
  }
  const uid = r.args.K8S_POD_UID;
  return { namespace, name, ...(uid ? { uid } : {}), netns: r.netns, containerId: r.containerId, ips };
}

/** The answer that lets the plugin succeed, printing prevResult unchanged. */
export function accepted(): string {
  return '0\n';
}

/** The answer that fails the plugin with a CNI error result. */
export function refused(cniVersion: string, code: number, msg: string, details?: string): string {
  return `1\n${JSON.stringify({ cniVersion, code, msg, ...(details ? { details } : {}) })}\n`;
}
