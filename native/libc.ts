// The libc calls the agent needs that Node does not offer, through koffi: network namespaces
// (setns), sockets created in a chosen namespace with options set before connect or bind (SO_MARK,
// IP_TRANSPARENT, SO_REUSEPORT), and SO_ORIGINAL_DST. Each call is declared once; a failure throws
// NativeCallFailed naming the call and the errno. Nothing else in the tree calls FFI.

import koffi from 'koffi';
import { AmbitError } from '../shared/errors.js';

const libc = koffi.load('libc.so.6');

const c = {
  open: libc.func('int open(const char *path, int flags)'),
  close: libc.func('int close(int fd)'),
  setns: libc.func('int setns(int fd, int nstype)'),
  socket: libc.func('int socket(int domain, int type, int protocol)'),
  setsockopt: libc.func('int setsockopt(int fd, int level, int name, const void *value, uint32_t len)'),
  getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ uint32_t *len)'),
  bind: libc.func('int bind(int fd, const void *addr, uint32_t len)'),
  listen: libc.func('int listen(int fd, int backlog)'),
  strerror: libc.func('const char *strerror(int errnum)'),
  if_nametoindex: libc.func('unsigned int if_nametoindex(const char *name)'),
};

export const constants = {
  O_RDONLY: 0,
  O_CLOEXEC: 0o2000000,
  O_DIRECTORY: 0o200000,
  CLONE_NEWNET: 0x40000000,
  AF_INET: 2,
  SOCK_STREAM: 1,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SOL_IP: 0,
  SO_REUSEADDR: 2,
  SO_REUSEPORT: 15,
  SO_MARK: 36,
  IP_TRANSPARENT: 19,
  SO_ORIGINAL_DST: 80,
  SO_NETNS_COOKIE: 71,
} as const;

export class NativeCallFailed extends AmbitError {
  constructor(
    readonly call: string,
    readonly errno: number,
  ) {
    super('NativeCallFailed', `${call} failed: ${c.strerror(errno) as string} (errno ${errno})`);
  }
}

function check(call: string, rc: number): number {
  if (rc < 0) throw new NativeCallFailed(call, koffi.errno());
  return rc;
}

export function open(path: string, flags: number): number {
  return check(`open(${path})`, c.open(path, flags) as number);
}

export function close(fd: number): void {
  check('close', c.close(fd) as number);
}

export function setns(fd: number, nstype: number): void {
  check('setns', c.setns(fd, nstype) as number);
}

export function socket(domain: number, type: number, protocol = 0): number {
  return check('socket', c.socket(domain, type, protocol) as number);
}

export function setsockoptInt(fd: number, level: number, name: number, value: number, what: string): void {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  check(`setsockopt(${what})`, c.setsockopt(fd, level, name, b, 4) as number);
}

/** struct sockaddr_in, network byte order. */
export function sockaddrIn(ip: string, port: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(constants.AF_INET, 0);
  b.writeUInt16BE(port, 2);
  ip.split('.').forEach((o, i) => b.writeUInt8(Number(o), 4 + i));
  return b;
}

export function bind(fd: number, ip: string, port: number): void {
  check(`bind(${ip}:${port})`, c.bind(fd, sockaddrIn(ip, port), 16) as number);
}

export function listen(fd: number, backlog: number): void {
  check('listen', c.listen(fd, backlog) as number);
}

/** The destination a connection had before a NAT REDIRECT sent it to us (netfilter's SO_ORIGINAL_DST). */
export function originalDestination(fd: number): { ip: string; port: number } {
  const b = Buffer.alloc(16);
  const len = [16];
  check('getsockopt(SO_ORIGINAL_DST)', c.getsockopt(fd, constants.SOL_IP, constants.SO_ORIGINAL_DST, b, len) as number);
  return { ip: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: b.readUInt16BE(2) };
}

/** The cookie of the network namespace a socket belongs to (what bpf_get_netns_cookie returns). */
export function netnsCookie(fd: number): bigint {
  const b = Buffer.alloc(8);
  const len = [8];
  check('getsockopt(SO_NETNS_COOKIE)', c.getsockopt(fd, constants.SOL_SOCKET, constants.SO_NETNS_COOKIE, b, len) as number);
  return b.readBigUInt64LE();
}

/** The index of a network interface of the calling thread's namespace. */
export function ifIndex(name: string): number {
  const index = c.if_nametoindex(name) as number;
  if (index === 0) throw new NativeCallFailed(`if_nametoindex(${name})`, koffi.errno());
  return index;
}
