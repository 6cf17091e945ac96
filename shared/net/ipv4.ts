// IPv4 addresses and CIDR blocks as numbers: parsing, formatting, membership and the n-th host.

import { AmbitError } from '../errors.js';

export interface Cidr {
  base: number;
  bits: number;
  text: string;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4) throw new AmbitError('InvalidAddress', `${ip} is not an IPv4 address`);
  let n = 0;
  for (const p of parts) {
    const v = Number(p);
    if (!/^\d{1,3}$/.test(p) || v > 255) throw new AmbitError('InvalidAddress', `${ip} is not an IPv4 address`);
    n = n * 256 + v;
  }
  return n;
}

export function intToIp(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

export function parseCidr(text: string): Cidr {
  const [ip, bitsText] = text.split('/');
  const bits = Number(bitsText);
  if (!ip || !/^\d+$/.test(bitsText ?? '') || bits < 8 || bits > 30) {
    throw new AmbitError('InvalidCidr', `${text} is not an IPv4 CIDR block between /8 and /30`);
  }
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  const base = (ipToInt(ip) & mask) >>> 0;
  return { base, bits, text: `${intToIp(base)}/${bits}` };
}

export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.bits);
}

export function contains(c: Cidr, ip: string): boolean {
  const n = ipToInt(ip);
  return n >= c.base && n < c.base + cidrSize(c);
}

/** The n-th address of a block (0 is the network address). */
export function host(c: Cidr, n: number): string {
  if (n < 0 || n >= cidrSize(c)) throw new AmbitError('InvalidCidr', `${c.text} has no host number ${n}`);
  return intToIp(c.base + n);
}

/** The i-th subnet of `bits` inside a block: subnet(10.244.0.0/16, 24, 1) is 10.244.1.0/24. */
export function subnet(c: Cidr, bits: number, i: number): Cidr {
  const size = 2 ** (32 - bits);
  if (bits < c.bits || (i + 1) * size > cidrSize(c)) throw new AmbitError('InvalidCidr', `${c.text} has no /${bits} subnet number ${i}`);
  return parseCidr(`${intToIp(c.base + i * size)}/${bits}`);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + cidrSize(b) && b.base < a.base + cidrSize(a);
}
