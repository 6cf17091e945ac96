// Puts ambit's CNI plugin in place on the node, as istio-cni's installer does: the executable into
// the CNI bin directory, and its entry at the end of the `plugins` of the primary configuration
// (the first *.conf, *.conflist or *.json by name, the one the runtime uses; a single-plugin .conf
// becomes a .conflist). The directory is watched: when the primary plugin's own installer rewrites
// the file without ambit's entry, the entry goes back. Every write is atomic (a temporary file
// renamed), so the runtime never reads a half-written configuration. `uninstallCni` takes it all out.

import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../shared/log.js';
import { errorMessage } from '../../shared/errors.js';
import { writeFileAtomic } from '../../shared/host/files.js';
import { enrolledNamespacesPath, pluginType, type PluginEntry } from './protocol.js';

/** The plugin as the build leaves it, beside this module (scripts/setup.sh compiles it). */
export const builtPlugin = fileURLToPath(new URL(`./${pluginType}`, import.meta.url));

export interface CniInstallerOptions {
  confDir: string;
  binDir: string;
  entry: PluginEntry;
  log: Logger;
  /** The executable to copy; the build's by default. */
  pluginBinary?: string;
}

/** How often the directory is looked at besides its change events (they are lost if it is replaced). */
const recheckMs = 5000;
/** Changes come in bursts (a write, then a rename): one look after a burst. */
const settleMs = 100;

type Conf = Record<string, unknown> & { plugins?: unknown };

export class CniInstaller extends EventEmitter<{ installed: [file: string]; waiting: [reason: string] }> {
  private watcher: FSWatcher | undefined;
  private interval: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private lastReason: string | undefined;

  constructor(private readonly o: CniInstallerOptions) {
    super();
  }

  start(): void {
    this.run();
    this.interval = setInterval(() => this.run(), recheckMs);
  }

  stop(): void {
    clearInterval(this.interval);
    clearTimeout(this.soon);
    this.watcher?.close();
    this.watcher = undefined;
  }

  private run(): void {
    this.soon = undefined;
    this.watchDir();
    try {
      this.ensure();
    } catch (err) {
      this.wait(`cannot install the CNI plugin: ${errorMessage(err)}`);
    }
  }

  private watchDir(): void {
    if (this.watcher || !existsSync(this.o.confDir)) return;
    try {
      const w = watch(this.o.confDir, () => {
        this.soon ??= setTimeout(() => this.run(), settleMs);
      });
      // The directory itself was removed or replaced: the next look watches it again.
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = undefined;
      });
      this.watcher = w;
    } catch {
      // Not there after all; the next look tries again.
    }
  }

  private wait(reason: string): void {
    if (reason !== this.lastReason) this.o.log.warn({ confDir: this.o.confDir }, reason);
    this.lastReason = reason;
    this.emit('waiting', reason);
  }

  /**
   * Puts the executable and the entry in place now, if either is missing or different. Returns the
   * configuration file holding the entry, or undefined (the reason is logged and emitted).
   */
  ensure(): string | undefined {
    this.copyPlugin();
    const file = primaryConfFile(this.o.confDir);
    if (!file) return void this.wait(`no CNI configuration in ${this.o.confDir} yet; ambit's plugin goes in once the primary plugin has written its own`);
    const path = join(this.o.confDir, file);
    let conf: Conf;
    try {
      conf = readConf(path);
    } catch (err) {
      return void this.wait(`the primary CNI configuration ${path} cannot be read (${errorMessage(err)}); trying again when it changes`);
    }
    const list = asConflist(conf, file);
    if (typeof list === 'string') return void this.wait(`the primary CNI configuration ${path} ${list}; trying again when it changes`);
    const plugins = (list.plugins as Conf[]).filter((p) => p?.type !== pluginType);
    const next = { ...list, plugins: [...plugins, this.o.entry] };
    const target = file.endsWith('.conflist') ? path : join(this.o.confDir, `${stem(file)}.conflist`);
    this.lastReason = undefined;
    if (target === path && JSON.stringify(next) === JSON.stringify(conf)) return path;
    writeFileAtomic(target, `${JSON.stringify(next, null, 2)}\n`, statSync(path).mode & 0o777);
    // A .conf turned into a .conflist: the .conf would otherwise stay first and be used.
    if (target !== path) rmSync(path, { force: true });
    this.o.log.info({ file: target, converted: target !== path ? file : undefined }, "ambit's CNI plugin entry inserted");
    this.emit('installed', target);
    return target;
  }

  private copyPlugin(): void {
    const from = this.o.pluginBinary ?? builtPlugin;
    const to = join(this.o.binDir, pluginType);
    let binary: Buffer;
    try {
      binary = readFileSync(from);
    } catch (err) {
      throw new Error(`cannot read the plugin executable ${from} (built by scripts/setup.sh): ${errorMessage(err)}`, { cause: err });
    }
    if (existsSync(to) && readFileSync(to).equals(binary)) return;
    writeFileAtomic(to, binary, 0o755);
    this.o.log.info({ file: to }, 'CNI plugin executable installed');
  }
}

/** The configuration file the runtime uses: the first by name of *.conf, *.conflist and *.json, as libcni sorts them. */
export function primaryConfFile(confDir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(confDir);
  } catch {
    return undefined;
  }
  return names.filter(isConfName).sort()[0];
}

/**
 * Takes ambit's entry out of every configuration in `confDir` (a list left with no plugin goes, as
 * it was ambit's alone), and removes the executable and the agent's list of enrolled namespaces.
 * Returns the paths changed or removed.
 */
export function uninstallCni(o: { confDir: string; binDir: string; socket: string }): string[] {
  const changed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(o.confDir).filter(isConfName);
  } catch {
    // No directory: nothing of ambit's in it.
  }
  for (const name of names) {
    const path = join(o.confDir, name);
    let conf: Conf;
    try {
      conf = readConf(path);
    } catch {
      continue;
    }
    if (!Array.isArray(conf.plugins) || !conf.plugins.some((p: Conf) => p?.type === pluginType)) continue;
    const plugins = conf.plugins.filter((p: Conf) => p?.type !== pluginType);
    if (plugins.length === 0) rmSync(path, { force: true });
    else writeFileAtomic(path, `${JSON.stringify({ ...conf, plugins }, null, 2)}\n`, statSync(path).mode & 0o777);
    changed.push(path);
  }
  for (const path of [join(o.binDir, pluginType), enrolledNamespacesPath(o.socket)]) {
    if (!existsSync(path)) continue;
    rmSync(path, { force: true });
    changed.push(path);
  }
  return changed;
}

function isConfName(name: string): boolean {
  return /\.(conf|conflist|json)$/.test(name);
}

function stem(file: string): string {
  return basename(file).replace(/\.(conf|conflist|json)$/, '');
}

function readConf(path: string): Conf {
  const conf = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (typeof conf !== 'object' || conf === null || Array.isArray(conf)) throw new Error('not a JSON object');
  return conf as Conf;
}

/** The configuration as a list, as libcni reads it: a .conf or .json is one plugin. Or what is wrong. */
function asConflist(conf: Conf, file: string): Conf | string {
  if (Array.isArray(conf.plugins)) return conf;
  if (file.endsWith('.conflist')) return 'has no "plugins" list';
  if (typeof conf.type !== 'string') return 'names no plugin "type"';
  return { cniVersion: conf.cniVersion, name: conf.name, plugins: [conf] };
}
