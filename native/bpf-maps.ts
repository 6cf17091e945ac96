// The byte layouts of bpf/capture.bpf.c's maps, mirrored once here: each key and value as the C
// struct lays it out (x86-64, little-endian host; addresses and ports in the byte order the C
// comments say). Change a struct there, change it here.

/** The map and program names of the object, as the C source names them. */
export const captureMaps = ['pod_config', 'cookie_orig', 'tuple_orig', 'inbound_listeners', 'settings', 'stats'] as const;
export type CaptureMap = (typeof captureMaps)[number];
export const capturePrograms = { connect4: 'ambit_connect4', sockops: 'ambit_sockops', tcInbound: 'ambit_inbound' } as const; // at most 15 characters: the kernel's name limit

/** The tc filter's identity on the pod's interface: ours is the one with this handle and priority. */
export const tcFilter = { handle: 0xa3b1, priority: 1 } as const;

/** struct bpf_tc_hook { size_t sz; int ifindex; int attach_point; u32 parent; } (libbpf 1.1), ingress. */
export function tcHook(ifindex: number, attachPoint = 1 /* BPF_TC_INGRESS */): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeInt32LE(ifindex, 8);
  b.writeInt32LE(attachPoint, 12);
  return b;
}

/** struct bpf_tc_opts { size_t sz; int prog_fd; u32 flags; u32 prog_id; u32 handle; u32 priority; }. */
export function tcOpts(progFd = 0): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(32n, 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(tcFilter.handle, 20);
  b.writeUInt32LE(tcFilter.priority, 24);
  return b;
}

export const tcOptsProgId = (b: Buffer) => b.readUInt32LE(16);

/** enum stat, in order. */
export const statNames = ['outboundRedirected', 'outboundKeyed', 'outboundUnkeyed', 'inboundAssigned', 'inboundNoListener'] as const;
export type CaptureStats = Record<(typeof statNames)[number], number>;

/** An IPv4 address in network byte order, as a u32 read by a little-endian host, written into `b` at `at`. */
function writeIp(b: Buffer, at: number, ip: string): void {
  const o = ip.split('.');
  for (let i = 0; i < 4; i++) b[at + i] = Number(o[i]);
}

function readIp(b: Buffer, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/** u64 cgroup id (pod_config key). */
export function cgroupIdKey(id: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(id);
  return b;
}

/** struct pod_config { u32 agent_ip4; u16 agent_port (network order); u16 pad; } */
export function podConfigValue(ip: string, port: number): Buffer {
  const b = Buffer.alloc(8);
  writeIp(b, 0, ip);
  b.writeUInt16BE(port, 4);
  return b;
}

/** struct tuple { u64 netns_cookie; u32 ip4 (network order); u16 port (host order); u16 pad; }, into a reused buffer. */
export function writeTupleKey(b: Buffer, netnsCookie: bigint, ip: string, port: number): Buffer {
  b.writeBigUInt64LE(netnsCookie, 0);
  writeIp(b, 8, ip);
  b.writeUInt16LE(port, 12);
  b.writeUInt16LE(0, 14);
  return b;
}
export const tupleKeySize = 16;

/** struct destination { u32 ip4; u16 port; u16 pad; }, both in network order. */
export function readDestination(b: Buffer): { ip: string; port: number } {
  return { ip: readIp(b, 0), port: b.readUInt16BE(4) };
}
export const destinationSize = 8;

/** inbound_listeners: key u32 pod address (network order), value u64 socket fd on update. */
export function podAddressKey(ip: string): Buffer {
  const b = Buffer.alloc(4);
  writeIp(b, 0, ip);
  return b;
}

export function socketFdValue(fd: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(fd));
  return b;
}

/** struct settings { u32 probe_ip4; } at key 0. */
export function settingsValue(probeIp: string | undefined): Buffer {
  const b = Buffer.alloc(4);
  if (probeIp) writeIp(b, 0, probeIp);
  return b;
}

export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}
