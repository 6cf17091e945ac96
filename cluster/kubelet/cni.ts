// A CNI executor, as the kubelet's container runtime runs one through libcni: it reads a node's
// network configuration list, runs each plugin in order per the CNI specification (1.0.0: the
// CNI_* environment, the plugin's config with name, cniVersion and prevResult on stdin, a result or
// an error object on stdout), keeps the result of each attachment as libcni's cache does, and runs
// DEL in reverse order with that cached result and config. It knows no plugin by name: whatever the
// conflist lists runs. Wiring pods with it is network.ts's.

import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../controller/store/store.js';
import { AmbitError, errorMessage } from '../../shared/errors.js';

/** The CNI specification version ambit writes and asks plugins to speak. */
export const cniVersion = '1.0.0';

/** Where Debian's containernetworking-plugins puts the standard plugins. */
export const systemPluginDir = '/usr/lib/cni';

export interface PluginConf {
  type: string;
  [field: string]: unknown;
}

/** A network configuration list (a .conflist, or a single .conf made into a list of one). */
export interface NetworkList {
  cniVersion: string;
  name: string;
  plugins: PluginConf[];
  /** The file it was read from, for errors. */
  source: string;
}

/** One attachment of a network to a container: what CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_ARGS carry. */
export interface Attachment {
  containerId: string;
  /** Path of the container's network namespace, e.g. /run/netns/NAME. */
  netns: string;
  ifName: string;
  args: [string, string][];
}

/** A CNI 1.0 result, as far as the kubelet reads it. */
export interface CniResult {
  cniVersion: string;
  interfaces?: { name: string; mac?: string; sandbox?: string }[];
  ips?: { address: string; gateway?: string; interface?: number }[];
  routes?: { dst: string; gw?: string }[];
  dns?: unknown;
  [field: string]: unknown;
}

/** A failed plugin, with the error object it printed (code, msg, details) when it printed one. */
export class CniPluginFailed extends AmbitError {
  constructor(
    readonly plugin: string,
    readonly command: 'ADD' | 'DEL',
    readonly network: string,
    readonly cniCode: number | undefined,
    readonly msg: string,
    readonly details?: string,
  ) {
    super('CniPluginFailed', `plugin type="${plugin}" name="${network}" failed (${command.toLowerCase()}): ${cniCode !== undefined ? `CNI error ${cniCode}: ` : ''}${msg}${details ? ` (${details})` : ''}`);
  }
}

export interface CniOptions {
  /** Searched in order for a plugin's executable (CNI_PATH). */
  binDirs: string[];
  /** Where results are kept per attachment (libcni's cacheDir; results/ below it). */
  cacheDir: string;
  /** Plugins run inside this network namespace (a path), as they would on the node itself. */
  pluginNetns?: string;
  /** A plugin still running after this long is killed and the command fails (default 60 s). */
  timeoutMs?: number;
}

/** What is kept of an ADD, in libcni's cache format: the config it ran with and the result. */
interface CacheEntry {
  kind: 'cniCacheV1';
  containerId: string;
  ifName: string;
  networkName: string;
  netns: string;
  cniArgs: [string, string][];
  /** The network configuration list as JSON, base64 (libcni stores the bytes). */
  config: string;
  result: CniResult;
}

/** The files a runtime reads in a configuration directory, as libcni's ConfFiles picks them. */
const confExtensions = ['.conflist', '.conf', '.json'];

/**
 * The network a runtime uses: the first configuration file in `dir` by name, as the kubelet's
 * runtime picks it (a `.conf` holds one plugin and is made a list of one).
 */
export function firstNetworkList(dir: string): NetworkList {
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => confExtensions.some((e) => f.endsWith(e))).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (files.length === 0) throw new AmbitError('CniConfigMissing', `no network configuration (${confExtensions.join(', ')}) in ${dir}: the node's network is not ready`);
  return readNetworkList(join(dir, files[0]!));
}

export function readNetworkList(path: string): NetworkList {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AmbitError('CniConfigInvalid', `${path}: ${errorMessage(err)}`);
  }
  return parseNetworkList(doc, path);
}

export function parseNetworkList(doc: unknown, source: string): NetworkList {
  const bad = (field: string, what: string) => new AmbitError('CniConfigInvalid', `${source}: ${field} ${what}`);
  if (!isObject(doc)) throw bad('the file', 'must be a JSON object');
  const single = !('plugins' in doc);
  // A .conf is one plugin with the network's name and version beside its own fields.
  const list = single ? { cniVersion: doc.cniVersion, name: doc.name, plugins: [doc] } : doc;
  if (typeof list.name !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(list.name)) throw bad('name', 'must be a network name (letters, digits, _ . -)');
  if (typeof list.cniVersion !== 'string' || list.cniVersion === '') throw bad('cniVersion', 'must be a version string such as "1.0.0"');
  if (!Array.isArray(list.plugins) || list.plugins.length === 0) throw bad('plugins', 'must be a non-empty list');
  list.plugins.forEach((p: unknown, i: number) => {
    const field = single ? 'type' : `plugins[${i}].type`;
    if (!isObject(p) || typeof p.type !== 'string' || !/^[a-zA-Z0-9_.-]+$/.test(p.type)) throw bad(field, 'must name a plugin executable');
  });
  const plugins = (list.plugins as PluginConf[]).map((p) => {
    if (!single) return p;
    const { name: _name, cniVersion: _version, ...own } = p;
    return own as PluginConf;
  });
  return { cniVersion: list.cniVersion, name: list.name, plugins, source };
}

export class CniExecutor {
  constructor(private readonly o: CniOptions) {}

  /**
   * Attaches the network: each plugin in order, each given the previous one's result. The final
   * result is cached before it is returned. A failed ADD is not undone here: the caller runs del(),
   * as the runtime does, so that what the plugins before it did is released too.
   */
  async add(list: NetworkList, at: Attachment): Promise<CniResult> {
    let prev: CniResult | undefined;
    for (const plugin of list.plugins) {
      const out = await this.exec('ADD', list, plugin, at, prev);
      if (!isObject(out) || typeof out.cniVersion !== 'string') {
        throw new CniPluginFailed(plugin.type, 'ADD', list.name, undefined, `returned no result (stdout: ${JSON.stringify(out).slice(0, 200)})`);
      }
      prev = out as CniResult;
    }
    const entry: CacheEntry = {
      kind: 'cniCacheV1',
      containerId: at.containerId,
      ifName: at.ifName,
      networkName: list.name,
      netns: at.netns,
      cniArgs: at.args,
      config: Buffer.from(JSON.stringify(listDocument(list))).toString('base64'),
      result: prev!,
    };
    mkdirSync(this.resultsDir(), { recursive: true });
    writeFileAtomic(this.cachePath(list.name, at.containerId, at.ifName), JSON.stringify(entry));
    return prev!;
  }

  /**
   * Detaches the network: each plugin in reverse order, each given the cached result as prevResult.
   * The configuration the ADD ran with is used when it was cached (the directory's may have
   * changed since), else `current`. A network never added (no cache) is still deleted, as plugins
   * must accept a DEL for what they do not know. Every plugin's DEL runs even when one after it in
   * the list failed (libcni stops at the first): a plugin missing or failing must not keep the
   * bridge's veth and lease. The first error is thrown after, and the cache kept for a retry.
   */
  async del(networkName: string, at: Omit<Attachment, 'args'> & { args?: [string, string][] }, current?: NetworkList): Promise<void> {
    const cached = this.cached(networkName, at.containerId, at.ifName);
    const list = cached ? parseNetworkList(JSON.parse(Buffer.from(cached.config, 'base64').toString('utf8')), `the cached configuration of ${at.containerId}`) : current;
    if (!list) return;
    const args = at.args ?? cached?.cniArgs ?? [];
    let failed: unknown;
    for (const plugin of [...list.plugins].reverse()) {
      try {
        await this.exec('DEL', list, plugin, { ...at, args }, cached?.result);
      } catch (err) {
        failed ??= err;
      }
    }
    if (failed) throw failed;
    rmSync(this.cachePath(networkName, at.containerId, at.ifName), { force: true });
  }

  /** The cached ADD of an attachment, if any. */
  cached(networkName: string, containerId: string, ifName: string): CacheEntry | undefined {
    try {
      return JSON.parse(readFileSync(this.cachePath(networkName, containerId, ifName), 'utf8')) as CacheEntry;
    } catch {
      return undefined;
    }
  }

  /** Every cached attachment (what a runtime lists to clean up after sandboxes it lost track of). */
  attachments(): { networkName: string; containerId: string; ifName: string; netns: string }[] {
    let files: string[];
    try {
      files = readdirSync(this.resultsDir());
    } catch {
      return [];
    }
    const out = [];
    for (const f of files) {
      try {
        const e = JSON.parse(readFileSync(join(this.resultsDir(), f), 'utf8')) as CacheEntry;
        out.push({ networkName: e.networkName, containerId: e.containerId, ifName: e.ifName, netns: e.netns });
      } catch {
        // A file being written (atomically, under another name) or not ours.
      }
    }
    return out;
  }

  /** A plugin's executable: the first of the bin directories that holds it. */
  findPlugin(type: string, network: string): string {
    for (const dir of this.o.binDirs) {
      const path = join(dir, type);
      try {
        accessSync(path, constants.X_OK);
        return path;
      } catch {
        // Not in this one.
      }
    }
    throw new AmbitError('CniPluginNotFound', `network ${network}: plugin type "${type}" not found in ${this.o.binDirs.join(', ')}`);
  }

  private resultsDir(): string {
    return join(this.o.cacheDir, 'results');
  }

  private cachePath(network: string, containerId: string, ifName: string): string {
    return join(this.resultsDir(), `${network}-${containerId}-${ifName}`);
  }

  private async exec(command: 'ADD' | 'DEL', list: NetworkList, plugin: PluginConf, at: Attachment, prev: CniResult | undefined): Promise<unknown> {
    const path = this.findPlugin(plugin.type, list.name);
    // The spec's derived config: the list's name and version in each plugin's, and prevResult.
    const config = { ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prev ? { prevResult: prev } : {}) };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: at.containerId,
      CNI_NETNS: at.netns,
      CNI_IFNAME: at.ifName,
      CNI_ARGS: at.args.map(([k, v]) => `${k}=${v}`).join(';'),
      CNI_PATH: this.o.binDirs.join(':'),
    };
    const argv = this.o.pluginNetns ? ['nsenter', `--net=${this.o.pluginNetns}`, '--', path] : [path];
    const { code, stdout, stderr } = await runPlugin(argv, env, JSON.stringify(config), this.o.timeoutMs ?? 60_000);
    if (code === null) throw new CniPluginFailed(plugin.type, command, list.name, undefined, `did not finish within ${(this.o.timeoutMs ?? 60_000) / 1000} s and was killed`);
    let out: unknown;
    try {
      out = stdout.trim() ? JSON.parse(stdout) : undefined;
    } catch {
      out = undefined;
    }
    if (code !== 0) {
      // The spec's error object; a plugin that died before printing one is reported by its stderr.
      if (isObject(out) && typeof out.msg === 'string') {
        throw new CniPluginFailed(plugin.type, command, list.name, typeof out.code === 'number' ? out.code : undefined, out.msg, typeof out.details === 'string' && out.details ? out.details : undefined);
      }
      throw new CniPluginFailed(plugin.type, command, list.name, undefined, `exited ${code}: ${(stderr || stdout).trim() || 'no output'}`);
    }
    return out;
  }
}

/** The list as a configuration file holds it (what the cache keeps for DEL). */
function listDocument(list: NetworkList): Record<string, unknown> {
  return { cniVersion: list.cniVersion, name: list.name, plugins: list.plugins };
}

function runPlugin(argv: string[], env: Record<string, string>, input: string, timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new AmbitError('CniPluginFailed', `could not run ${argv.join(' ')}: ${err.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: timedOut ? null : (code ?? 1), stdout, stderr });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
