// The eBPF capture's programs and maps (bpf/capture.bpf.c) through libbpf, via koffi: load the
// object once per agent with its maps pinned under <pinRoot>/maps (a restarted agent reuses them),
// attach the outbound programs to a pod's cgroup as links pinned under <pinRoot>/pods/<pod>/ (they
// outlive the agent; unlinking the pins detaches them) and the inbound one as a tc filter on the
// pod's interface, and read and write the maps. Every libbpf call is declared once here and fails
// with NativeCallFailed.

import koffi from 'koffi';
import { existsSync, mkdirSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { NativeCallFailed, close, constants, ifIndex, open } from './libc.js';
import { inNetns } from './netns.js';
import {
  capturePrograms,
  cgroupIdKey,
  destinationSize,
  podAddressKey,
  podConfigValue,
  readDestination,
  settingsValue,
  socketFdValue,
  statNames,
  tcHook,
  tcOpts,
  tcOptsProgId,
  tupleKeySize,
  u32Key,
  writeTupleKey,
  type CaptureMap,
  type CaptureStats,
  captureMaps,
} from './bpf-maps.js';

/** Where agents pin, one directory per node. */
export const bpfPinBase = '/sys/fs/bpf/ambit';

let lib: ReturnType<typeof declare> | undefined;

function declare() {
  const l = koffi.load('libbpf.so.1');
  koffi.opaque('bpf_object');
  koffi.opaque('bpf_program');
  koffi.opaque('bpf_map');
  koffi.opaque('bpf_link');
  return {
    openFile: l.func('bpf_object *bpf_object__open_file(const char *path, void *opts)'),
    load: l.func('int bpf_object__load(bpf_object *obj)'),
    closeObject: l.func('void bpf_object__close(bpf_object *obj)'),
    findProgram: l.func('bpf_program *bpf_object__find_program_by_name(bpf_object *obj, const char *name)'),
    findMap: l.func('bpf_map *bpf_object__find_map_by_name(bpf_object *obj, const char *name)'),
    setPinPath: l.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
    mapFd: l.func('int bpf_map__fd(bpf_map *map)'),
    attachCgroup: l.func('bpf_link *bpf_program__attach_cgroup(bpf_program *prog, int cgroup_fd)'),
    programFd: l.func('int bpf_program__fd(bpf_program *prog)'),
    tcHookCreate: l.func('int bpf_tc_hook_create(void *hook)'),
    tcHookDestroy: l.func('int bpf_tc_hook_destroy(void *hook)'),
    tcAttach: l.func('int bpf_tc_attach(void *hook, void *opts)'),
    tcDetach: l.func('int bpf_tc_detach(void *hook, void *opts)'),
    tcQuery: l.func('int bpf_tc_query(void *hook, _Inout_ void *opts)'),
    setPrint: l.func('void *libbpf_set_print(void *fn)'),
    pinLink: l.func('int bpf_link__pin(bpf_link *link, const char *path)'),
    destroyLink: l.func('int bpf_link__destroy(bpf_link *link)'),
    update: l.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    lookup: l.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    remove: l.func('int bpf_map_delete_elem(int fd, const void *key)'),
  };
}

function libbpf() {
  lib ??= declare();
  return lib;
}

const ENOENT = 2;
const EEXIST = 17;
const EINVAL = 22;

/** libbpf 1.x returns -errno from int calls. */
function check(call: string, rc: number): number {
  if (rc < 0) throw new NativeCallFailed(call, -rc);
  return rc;
}

function notNull<T>(call: string, p: T | null): T {
  if (p === null) throw new NativeCallFailed(call, koffi.errno());
  return p;
}

/** Where a pod's links are pinned, one file per program. */
const linkNames = ['connect4', 'sockops'] as const;

/** The interface of a pod, as CNI plugins name it in Kubernetes. */
export const podInterface = 'eth0';

/**
 * The programs' record of outbound connections' original destinations (the map tuple_orig), by
 * the map's fd: any event loop of the process reads it (a worker thread as the main one).
 */
export class OriginalDestinations {
  private readonly key = Buffer.alloc(tupleKeySize);
  private readonly value = Buffer.alloc(destinationSize);

  constructor(readonly mapFd: number) {}

  /**
   * The original destination of an outbound connection, by its peer as the agent's listener sees
   * it, taken out of the map (each is read once). Undefined when the programs recorded none.
   */
  take(netnsCookie: bigint, peerIp: string, peerPort: number): { ip: string; port: number } | undefined {
    const b = libbpf();
    writeTupleKey(this.key, netnsCookie, peerIp, peerPort);
    const rc = b.lookup(this.mapFd, this.key, this.value) as number;
    if (rc === -ENOENT) return undefined;
    check('bpf_map_lookup_elem(tuple_orig)', rc);
    b.remove(this.mapFd, this.key);
    return readDestination(this.value);
  }
}

export class CapturePrograms {
  private readonly fds = {} as Record<CaptureMap, number>;
  readonly destinations: OriginalDestinations;

  private constructor(
    private readonly obj: unknown,
    readonly pinRoot: string,
  ) {
    for (const name of captureMaps) this.fds[name] = check(`bpf_map__fd(${name})`, libbpf().mapFd(libbpf().findMap(obj, name)) as number);
    this.destinations = new OriginalDestinations(this.fds.tuple_orig);
  }

  /**
   * Opens and loads the object; maps already pinned under `pinRoot` (a previous run's) are reused
   * with their entries, the others are created and pinned.
   */
  static load(objectPath: string, pinRoot: string): CapturePrograms {
    if (!existsSync(objectPath)) throw new NativeCallFailed(`bpf_object__open_file(${objectPath})`, ENOENT);
    const b = libbpf();
    mkdirSync(join(pinRoot, 'maps'), { recursive: true });
    mkdirSync(join(pinRoot, 'pods'), { recursive: true });
    const obj = notNull(`bpf_object__open_file(${objectPath})`, b.openFile(objectPath, null));
    try {
      for (const name of captureMaps) {
        const map = notNull(`bpf_object__find_map_by_name(${name})`, b.findMap(obj, name));
        check(`bpf_map__set_pin_path(${name})`, b.setPinPath(map, join(pinRoot, 'maps', name)) as number);
      }
      check(`bpf_object__load(${objectPath})`, b.load(obj) as number);
      return new CapturePrograms(obj, pinRoot);
    } catch (err) {
      b.closeObject(obj);
      throw err;
    }
  }

  private podDir(pod: string): string {
    return join(this.pinRoot, 'pods', pod);
  }

  /** Pods whose cgroup programs are pinned (attached), by the name given to attachPod. */
  pinnedPods(): string[] {
    return readdirSync(join(this.pinRoot, 'pods'));
  }

  /** Both cgroup links pinned and the tc filter on the pod's interface. */
  isAttached(pod: string, nsFd: number): boolean {
    return linkNames.every((n) => existsSync(join(this.podDir(pod), n))) && this.tcAttached(nsFd);
  }

  /**
   * Attaches connect4 and sockops to the pod's cgroup, each as a pinned link, and the inbound tc
   * filter to the ingress of the pod's interface. A pod with all of it in place already (a previous
   * run's) is adopted as it is; a partial set is removed first. Either everything ends up attached
   * or nothing.
   */
  attachPod(pod: string, cgroupDir: string, nsFd: number): 'attached' | 'adopted' {
    if (this.isAttached(pod, nsFd)) return 'adopted';
    this.detachPod(pod, nsFd);
    const b = libbpf();
    const dir = this.podDir(pod);
    mkdirSync(dir, { recursive: true });
    const cgFd = open(cgroupDir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_CLOEXEC);
    try {
      for (const [file, program] of [
        ['connect4', capturePrograms.connect4],
        ['sockops', capturePrograms.sockops],
      ] as const) {
        const prog = notNull(`bpf_object__find_program_by_name(${program})`, b.findProgram(this.obj, program));
        const link = notNull(`bpf_program__attach_cgroup(${program}, ${cgroupDir})`, b.attachCgroup(prog, cgFd));
        // The pin holds the link; destroying our handle only closes its fd (for these link types
        // libbpf's detach is that close), so the program stays attached until the pin goes.
        try {
          check(`bpf_link__pin(${join(dir, file)})`, b.pinLink(link, join(dir, file)) as number);
        } finally {
          b.destroyLink(link);
        }
      }
      const prog = notNull(`bpf_object__find_program_by_name(${capturePrograms.tcInbound})`, b.findProgram(this.obj, capturePrograms.tcInbound));
      const progFd = check('bpf_program__fd', b.programFd(prog) as number);
      inNetns(nsFd, () => {
        const hook = tcHook(ifIndex(podInterface));
        const rc = b.tcHookCreate(hook) as number;
        if (rc !== -EEXIST) check(`bpf_tc_hook_create(${podInterface} ingress)`, rc);
        check(`bpf_tc_attach(${podInterface} ingress)`, b.tcAttach(hook, tcOpts(progFd)) as number);
      });
      return 'attached';
    } catch (err) {
      this.detachPod(pod, nsFd);
      throw err;
    } finally {
      close(cgFd);
    }
  }

  /**
   * Detaches the pod's programs: unpins its cgroup links and, when its namespace is given, removes
   * the tc filter (and the clsact qdisc holding it). Nothing to do for what is not there.
   */
  detachPod(pod: string, nsFd?: number): void {
    const dir = this.podDir(pod);
    if (existsSync(dir)) {
      for (const n of linkNames) if (existsSync(join(dir, n))) unlinkSync(join(dir, n));
      rmSync(dir, { recursive: true, force: true });
    }
    if (nsFd === undefined || !this.tcAttached(nsFd)) return;
    inNetns(nsFd, () => {
      const index = ifIndex(podInterface);
      const hook = tcHook(index);
      const rc = libbpf().tcDetach(hook, tcOpts()) as number;
      if (rc !== -ENOENT && rc !== -EINVAL) check(`bpf_tc_detach(${podInterface} ingress)`, rc);
      // The qdisc was made for the filter; destroying the ingress+egress hook removes it.
      const both = tcHook(index, 3);
      const gone = libbpf().tcHookDestroy(both) as number;
      if (gone !== -ENOENT && gone !== -EINVAL) check(`bpf_tc_hook_destroy(${podInterface})`, gone);
    });
  }

  private tcAttached(nsFd: number): boolean {
    return inNetns(nsFd, () => {
      let index: number;
      try {
        index = ifIndex(podInterface);
      } catch {
        return false;
      }
      const opts = tcOpts();
      // Asking about an interface without a clsact qdisc is a normal "no"; keep libbpf from
      // printing the kernel's complaint about it.
      const b = libbpf();
      const print = b.setPrint(null);
      try {
        const rc = b.tcQuery(tcHook(index), opts) as number;
        return rc === 0 && tcOptsProgId(opts) > 0;
      } finally {
        b.setPrint(print);
      }
    });
  }

  configurePod(cgroupId: bigint, agentIp: string, agentPort: number): void {
    check('bpf_map_update_elem(pod_config)', libbpf().update(this.fds.pod_config, cgroupIdKey(cgroupId), podConfigValue(agentIp, agentPort), 0) as number);
  }

  unconfigurePod(cgroupId: bigint): void {
    this.removeEntry('pod_config', cgroupIdKey(cgroupId));
  }

  /** Hands new inbound connections to the pod's address to this listening socket. */
  setInboundListener(podIp: string, listenerFd: number): void {
    check('bpf_map_update_elem(inbound_listeners)', libbpf().update(this.fds.inbound_listeners, podAddressKey(podIp), socketFdValue(listenerFd), 0) as number);
  }

  removeInboundListener(podIp: string): void {
    this.removeEntry('inbound_listeners', podAddressKey(podIp));
  }

  setProbeSource(ip: string | undefined): void {
    check('bpf_map_update_elem(settings)', libbpf().update(this.fds.settings, u32Key(0), settingsValue(ip), 0) as number);
  }

  stats(): CaptureStats {
    const out = {} as CaptureStats;
    const v = Buffer.alloc(8);
    statNames.forEach((name, i) => {
      check('bpf_map_lookup_elem(stats)', libbpf().lookup(this.fds.stats, u32Key(i), v) as number);
      out[name] = Number(v.readBigUInt64LE());
    });
    return out;
  }

  private removeEntry(map: CaptureMap, key: Buffer): void {
    const rc = libbpf().remove(this.fds[map], key) as number;
    if (rc !== -ENOENT) check(`bpf_map_delete_elem(${map})`, rc);
  }

  /** Closes this process's handles; what is pinned stays. */
  close(): void {
    libbpf().closeObject(this.obj);
  }
}

/** Removes everything pinned under `pinRoot`: links (detaching their programs) and maps. */
export function removeCapturePins(pinRoot: string): void {
  rmSync(pinRoot, { recursive: true, force: true });
}
