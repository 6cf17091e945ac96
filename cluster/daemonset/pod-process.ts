// How the local kubelet runs a hostNetwork DaemonSet pod (the agents' DaemonSet, rendered as
// `ambit install` puts it on a cluster) without a container runtime: its one container becomes a
// process in the node's network namespace, its command and args with `$(VAR)` expanded from its
// env as Kubernetes expands them, and every path under a volume's mountPath rewritten to where that
// volume lives for this node. The nodes share one host, so a hostPath is mapped per node (each
// node's CNI directories are its own) and the other volumes are written per node (configMap,
// secret, projected token) or per start (emptyDir), as the kubelet writes them into the pod's
// directory. What the local kubelet cannot run is refused by name.

import { AmbitError } from '../../shared/errors.js';

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  command?: string[];
  args?: string[];
  env?: EnvVar[];
  volumeMounts?: { name: string; mountPath: string }[];
  readinessProbe?: { exec?: { command: string[] } };
}
export interface Volume {
  name: string;
  hostPath?: { path: string };
  configMap?: { name: string; items?: { key: string; path: string }[] };
  secret?: { secretName: string; items?: { key: string; path: string }[] };
  projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[] };
  emptyDir?: Record<string, unknown>;
}
export interface PodTemplate {
  spec: { hostNetwork?: boolean; serviceAccountName?: string; containers: Container[]; initContainers?: Container[]; volumes?: Volume[] };
}

/** Where this node keeps what the template's volumes mount. */
export interface NodeVolumes {
  /** The node's copy of a host path, or undefined when the local cluster's nodes have none. */
  hostPath(path: string): string | undefined;
  /** The directory a configMap, secret or projected volume is written into, for this node. */
  volumeDir(name: string): string;
  /** The directory an emptyDir volume is, for this start of the pod. */
  emptyDir(name: string): string;
}

export interface PodProcess {
  /** The container's command and args, expanded and with every mounted path rewritten. */
  argv: string[];
  env: Record<string, string>;
  /** The readiness probe's command, rewritten the same way; none if the container has none. */
  readiness?: string[];
  /** The volumes the kubelet writes before the start (configMap, secret, projected), with their directory. */
  written: { volume: Volume; dir: string }[];
  /** emptyDir volumes' directories, made for this start. */
  emptyDirs: string[];
}

/** The fields a fieldRef may name here, as the kubelet's downward API gives them. */
export interface PodFields {
  'metadata.name': string;
  'metadata.namespace': string;
  'spec.nodeName': string;
  'spec.serviceAccountName': string;
  'status.hostIP': string;
  'status.podIP': string;
}

/**
 * The process a node runs for `template`'s one container. `command` maps the container's
 * command[0] to what starts it on this host (the image's entry point, e.g. `ambit`).
 */
export function podProcess(template: PodTemplate, fields: PodFields, volumes: NodeVolumes, command: (entry: string) => string[] | undefined): PodProcess {
  const spec = template.spec;
  const where = `the DaemonSet's pod template`;
  if (!spec.hostNetwork) throw new AmbitError('Unsupported', `${where}: the local kubelet runs only hostNetwork DaemonSet pods (set spec.template.spec.hostNetwork: true)`);
  if (spec.containers.length !== 1 || spec.initContainers?.length) throw new AmbitError('Unsupported', `${where}: the local kubelet runs exactly one container and no init containers; it has ${spec.containers.length} and ${spec.initContainers?.length ?? 0}`);
  const c = spec.containers[0]!;
  const entry = c.command?.[0];
  const start = entry !== undefined ? command(entry) : undefined;
  if (!start) throw new AmbitError('Unsupported', `${where}: container ${c.name}'s command ${JSON.stringify(c.command ?? [])} is not one the local kubelet can start (it runs the ambit image's \`ambit\`)`);

  const mounts: [string, string][] = [];
  const written: PodProcess['written'] = [];
  const emptyDirs: string[] = [];
  const byName = new Map((spec.volumes ?? []).map((v) => [v.name, v]));
  for (const m of c.volumeMounts ?? []) {
    const v = byName.get(m.name);
    if (!v) throw new AmbitError('Invalid', `${where}: container ${c.name} mounts volume ${m.name}, which the pod does not have`);
    let dir: string | undefined;
    if (v.hostPath) {
      dir = volumes.hostPath(v.hostPath.path);
      if (dir === undefined) throw new AmbitError('Unsupported', `${where}: volume ${v.name} is hostPath ${v.hostPath.path}, which the local cluster's nodes do not have (they share one host)`);
    } else if (v.emptyDir) {
      dir = volumes.emptyDir(v.name);
      emptyDirs.push(dir);
    } else if (v.configMap || v.secret || v.projected) {
      dir = volumes.volumeDir(v.name);
      written.push({ volume: v, dir });
    } else throw new AmbitError('Unsupported', `${where}: volume ${v.name} is of a kind the local kubelet does not mount (it mounts hostPath, emptyDir, configMap, secret and projected service account tokens)`);
    mounts.push([m.mountPath.replace(/\/+$/, ''), dir]);
  }
  // The deepest mount wins, as the container's mount table resolves a path.
  mounts.sort((a, b) => b[0].length - a[0].length);
  const rewrite = (path: string) => {
    for (const [at, dir] of mounts) if (path === at || path.startsWith(`${at}/`)) return dir + path.slice(at.length);
    return path;
  };
  const rewriteArg = (arg: string) => {
    const flag = /^(--?[\w-]+=)(\/.*)$/.exec(arg);
    return flag ? flag[1]! + rewrite(flag[2]!) : arg.startsWith('/') ? rewrite(arg) : arg;
  };

  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = expand(e.value, env);
    else if (e.valueFrom?.fieldRef) {
      const path = e.valueFrom.fieldRef.fieldPath as keyof PodFields;
      if (!(path in fields)) throw new AmbitError('Unsupported', `${where}: env ${e.name} takes fieldRef ${path}, which the local kubelet does not give (it gives ${Object.keys(fields).join(', ')})`);
      env[e.name] = fields[path];
    } else throw new AmbitError('Unsupported', `${where}: env ${e.name} has a source the local kubelet does not give (value or fieldRef only)`);
  }
  const args = [...(c.command ?? []).slice(1), ...(c.args ?? [])].map((a) => rewriteArg(expand(a, env)));
  const probe = c.readinessProbe?.exec?.command.map((a) => rewriteArg(expand(a, env)));
  return { argv: [...start, ...args], env, ...(probe ? { readiness: probe } : {}), written, emptyDirs };
}

/** `$(VAR)` replaced by an earlier env var's value, `$$(VAR)` kept as `$(VAR)`, as Kubernetes expands a container's command, args and env. */
export function expand(text: string, env: Record<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name: string | undefined) => (m === '$$' ? '$' : name !== undefined && name in env ? env[name]! : m));
}
