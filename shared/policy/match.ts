// The L4 matchers of AuthorizationPolicy, compiled once from policy values: Istio's string match,
// IPv4 blocks as integer ranges, ports, service accounts; and a Match, a conjunction of them over one
// connection (ztunnel's RbacMatch). Which policy field feeds which matcher is authorization-rules.ts's.

/** Istio's string match: `abc` exact, `abc*` prefix, `*abc` suffix, `*` any non-empty value. */
export interface StringMatch {
  kind: 'exact' | 'prefix' | 'suffix' | 'presence';
  value: string;
}

// https://istio.io/latest/docs/reference/config/security/authorization-policy/#Rule: "Exact match:
// abc will match on value abc. Prefix match: abc* ... Suffix match: *abc ... Presence match: * will
// match when value is not empty." A leading `*` wins over a trailing one, as istiod's stringToMatch.
export function stringMatch(text: string): StringMatch {
  if (text === '*') return { kind: 'presence', value: '' };
  if (text.startsWith('*')) return { kind: 'suffix', value: text.slice(1) };
  if (text.endsWith('*')) return { kind: 'prefix', value: text.slice(0, -1) };
  return { kind: 'exact', value: text };
}

export function matchesString(m: StringMatch, value: string): boolean {
  switch (m.kind) {
    case 'exact':
      return value === m.value;
    case 'prefix':
      return value.startsWith(m.value);
    case 'suffix':
      return value.endsWith(m.value);
    case 'presence':
      return value.length > 0;
  }
}

/** An IPv4 block as the inclusive range of its addresses, as unsigned integers. */
export interface IpRange {
  first: number;
  last: number;
}

/**
 * An IPv4 address as an unsigned integer, or -1 when the text is not one. Reads characters without
 * allocating, as it runs once per connection for each address a policy looks at.
 */
export function ipv4(text: string): number {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return -1;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      octet = octet * 10 + (c - 48);
      digits++;
      if (octet > 255) return -1;
    } else {
      return -1;
    }
  }
  return digits === 0 || dots !== 3 ? -1 : n * 256 + octet;
}

/** `ipBlocks` entry: a single address (a /32) or a CIDR block /0 to /32; host bits are ignored. */
export function ipRange(text: string): IpRange | undefined {
  const slash = text.indexOf('/');
  const addr = ipv4(slash < 0 ? text : text.slice(0, slash));
  if (addr < 0) return undefined;
  let bits = 32;
  if (slash >= 0) {
    const b = text.slice(slash + 1);
    if (!/^\d{1,2}$/.test(b) || Number(b) > 32) return undefined;
    bits = Number(b);
  }
  const size = 2 ** (32 - bits);
  const first = addr - (addr % size);
  return { first, last: first + size - 1 };
}

/** A port number written as a string, as `ports` and `destination.port` values are; 0 to 65535. */
export function port(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/** What a Match looks at, prepared once per decision from the connection's attributes. */
export interface ConnectionFacts {
  /** -1 when not an IPv4 address: then no block contains it. */
  sourceIp: number;
  destinationIp: number;
  destinationPort: number;
  /** '' for a plaintext connection. */
  principal: string;
  namespace: string;
}

/**
 * A conjunction: every list that is set must contain the connection's value, every `not` list must
 * not. Service accounts are kept as principal suffixes, `/ns/<namespace>/sa/<name>`. An empty Match
 * matches every connection (Istio: "If not set, any ... is allowed").
 */
export interface Match {
  principals?: StringMatch[];
  notPrincipals?: StringMatch[];
  namespaces?: StringMatch[];
  notNamespaces?: StringMatch[];
  serviceAccounts?: string[];
  notServiceAccounts?: string[];
  sourceIps?: IpRange[];
  notSourceIps?: IpRange[];
  destinationIps?: IpRange[];
  notDestinationIps?: IpRange[];
  destinationPorts?: number[];
  notDestinationPorts?: number[];
}

function anyString(list: StringMatch[], value: string): boolean {
  for (let i = 0; i < list.length; i++) if (matchesString(list[i]!, value)) return true;
  return false;
}

function anyIp(list: IpRange[], ip: number): boolean {
  for (let i = 0; i < list.length; i++) if (ip >= list[i]!.first && ip <= list[i]!.last) return true;
  return false;
}

// `serviceAccounts` ignores the trust domain (ztunnel's ServiceAccountMatch compares namespace and
// name only): the principal must be `<trust-domain>` + suffix, and a trust domain has no '/'.
export function matchesServiceAccount(suffix: string, principal: string): boolean {
  return principal.endsWith(suffix) && principal.indexOf('/') === principal.length - suffix.length && principal.length > suffix.length;
}

function anyServiceAccount(list: string[], principal: string): boolean {
  for (let i = 0; i < list.length; i++) if (matchesServiceAccount(list[i]!, principal)) return true;
  return false;
}

function anyPort(list: number[], p: number): boolean {
  return list.includes(p);
}

function required<T, V>(list: T[] | undefined, not: T[] | undefined, value: V, any: (l: T[], v: V) => boolean): boolean {
  if (list !== undefined && !any(list, value)) return false;
  return not === undefined || !any(not, value);
}

export function matches(m: Match, c: ConnectionFacts): boolean {
  return (
    required(m.principals, m.notPrincipals, c.principal, anyString) &&
    required(m.namespaces, m.notNamespaces, c.namespace, anyString) &&
    required(m.serviceAccounts, m.notServiceAccounts, c.principal, anyServiceAccount) &&
    required(m.sourceIps, m.notSourceIps, c.sourceIp, anyIp) &&
    required(m.destinationIps, m.notDestinationIps, c.destinationIp, anyIp) &&
    required(m.destinationPorts, m.notDestinationPorts, c.destinationPort, anyPort)
  );
}
