// Sockets inside other network namespaces, for a process that stays in its own. A socket belongs
// to the namespace in which socket() ran, so the thread switches in (setns), makes the socket with
// every option that must precede bind or connect, and switches back before returning. Only the
// main thread switches (setns is per thread), and never across an await.

import * as libc from './libc.js';

const { constants: k } = libc;

/** This thread's own namespace, to come back to. */
let home: number | undefined;

export function openNetns(path: string): number {
  return libc.open(path, k.O_RDONLY | k.O_CLOEXEC);
}

/** This thread's own namespace, opened once. */
function ownNetns(): number {
  return (home ??= libc.open('/proc/thread-self/ns/net', k.O_RDONLY | k.O_CLOEXEC));
}

/** Runs `fn` with the thread inside the namespace `nsFd`, and always comes back. */
export function inNetns<T>(nsFd: number, fn: () => T): T {
  const own = ownNetns();
  libc.setns(nsFd, k.CLONE_NEWNET);
  try {
    return fn();
  } finally {
    returnHome(own);
  }
}

/**
 * Back to the thread's own namespace. If that fails, every later socket of this process would open
 * inside a pod, so there is nothing safe left to do: the process ends at once, before any other
 * code runs (ztunnel treats this as fatal too), and its supervisor starts a fresh one.
 */
function returnHome(fd: number): void {
  try {
    libc.setns(fd, k.CLONE_NEWNET);
  } catch (err) {
    fatal(`cannot return to the agent's own network namespace: ${(err as Error).message}`);
  }
}

function fatal(message: string): never {
  process.stderr.write(`fatal: ${message}\n`);
  process.abort();
}

export interface SocketOptions {
  /** SO_MARK: lets the capture rules recognise the agent's own traffic. */
  mark?: number;
  /** IP_TRANSPARENT: bind a foreign address (the client's, for source preservation). */
  transparent?: boolean;
  /** SO_REUSEPORT: a new agent can listen beside the old one during a handover. */
  reusePort?: boolean;
  /** SO_REUSEADDR alone: a restarted server binds its port while old connections sit in TIME_WAIT (Node's own listen() sets it). */
  reuseAddress?: boolean;
  /** Bind before connect (a source address), or before listen. */
  bind?: { ip: string; port: number };
}

/** A non-blocking TCP socket made inside `nsFd`, options set; hand it to `new net.Socket({fd})` or `listen({fd})`. */
export function tcpSocketIn(nsFd: number, o: SocketOptions = {}): number {
  return inNetns(nsFd, () => {
    const fd = libc.socket(k.AF_INET, k.SOCK_STREAM | k.SOCK_NONBLOCK | k.SOCK_CLOEXEC);
    try {
      if (o.mark !== undefined) libc.setsockoptInt(fd, k.SOL_SOCKET, k.SO_MARK, o.mark, 'SO_MARK');
      if (o.transparent) libc.setsockoptInt(fd, k.SOL_IP, k.IP_TRANSPARENT, 1, 'IP_TRANSPARENT');
      if (o.reuseAddress && !o.reusePort) libc.setsockoptInt(fd, k.SOL_SOCKET, k.SO_REUSEADDR, 1, 'SO_REUSEADDR');
      if (o.reusePort) {
        libc.setsockoptInt(fd, k.SOL_SOCKET, k.SO_REUSEADDR, 1, 'SO_REUSEADDR');
        libc.setsockoptInt(fd, k.SOL_SOCKET, k.SO_REUSEPORT, 1, 'SO_REUSEPORT');
      }
      if (o.bind) libc.bind(fd, o.bind.ip, o.bind.port);
      return fd;
    } catch (err) {
      libc.close(fd);
      throw err;
    }
  });
}

/** A listening socket inside `nsFd`, for `server.listen({ fd })`. */
export function listenerIn(nsFd: number, ip: string, port: number, o: Omit<SocketOptions, 'bind'> = {}, backlog = 511): number {
  const fd = tcpSocketIn(nsFd, { ...o, bind: { ip, port } });
  try {
    libc.listen(fd, backlog);
  } catch (err) {
    libc.close(fd);
    throw err;
  }
  return fd;
}

/** A listening socket in this thread's own namespace, with options Node cannot set (SO_REUSEPORT). */
export function listenerHere(ip: string, port: number, o: Omit<SocketOptions, 'bind'> = {}, backlog = 511): number {
  return listenerIn(ownNetns(), ip, port, o, backlog);
}

export { originalDestination, netnsCookie, close as closeFd, NativeCallFailed } from './libc.js';
