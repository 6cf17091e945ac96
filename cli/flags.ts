// Flags more than one subcommand reads, parsed one way.

import { AmbitError } from '../shared/errors.js';

/** `FLAG HOST:PORT` (or the default) or `off`; `NETNS_FLAG PATH` to listen in another namespace. */
export function listenFlag(flag: string, listen: string | undefined, fallback: string, netnsFlag: string, netns: string | undefined): { host: string; port: number; netns?: string } | undefined {
  if (listen === 'off') return undefined;
  const [host, port] = (listen ?? fallback).split(':');
  if (!host || !port || !/^\d+$/.test(port) || Number(port) > 65535) throw new AmbitError('BadFlag', `${flag} ${listen}: must be HOST:PORT or off`);
  // A listener made in another namespace is bound by native/, which takes IPv4 addresses.
  if (netns && !/^\d{1,3}(\.\d{1,3}){3}$/.test(host)) throw new AmbitError('BadFlag', `${flag} ${listen}: with ${netnsFlag} the host must be an IPv4 address`);
  return { host, port: Number(port), ...(netns ? { netns } : {}) };
}
