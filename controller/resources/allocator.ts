// ClusterIP allocation from the service CIDR, as the Kubernetes API server does it: an address the
// user asked for is checked, otherwise the lowest free one is given. .0 and .1 are never handed out
// (.1 is where Kubernetes puts its own API Service).

import { type Cidr, cidrSize, contains, host } from '../../shared/net/ipv4.js';
import type { Service } from '../../shared/resources/types.js';

export class ClusterIPAllocator {
  constructor(private readonly cidr: Cidr) {}

  /** Returns an error message, or undefined when every Service got a valid, unique address. */
  assign(services: Service[], existing: Service[]): { index: number; message: string }[] {
    const problems: { index: number; message: string }[] = [];
    const owner = new Map<string, string>();
    const id = (s: Service) => `${s.metadata.namespace}/${s.metadata.name}`;
    const incoming = new Set(services.map(id));
    for (const s of existing) if (s.spec?.clusterIP && !incoming.has(id(s))) owner.set(s.spec.clusterIP, id(s));
    const previous = new Map(existing.map((s) => [id(s), s.spec?.clusterIP]));
    services.forEach((s, index) => {
      const spec = s.spec!;
      const before = previous.get(id(s));
      if (spec.clusterIP && before && spec.clusterIP !== before) {
        problems.push({ index, message: `spec.clusterIP is immutable: it is ${before}; delete the Service to change it` });
        return;
      }
      spec.clusterIP ??= before;
      if (spec.clusterIP) {
        if (!contains(this.cidr, spec.clusterIP)) problems.push({ index, message: `spec.clusterIP ${spec.clusterIP} is outside the service CIDR ${this.cidr.text}` });
        else if (owner.has(spec.clusterIP)) problems.push({ index, message: `spec.clusterIP ${spec.clusterIP} is already used by Service ${owner.get(spec.clusterIP)}` });
        else owner.set(spec.clusterIP, id(s));
      }
    });
    for (const s of services) {
      if (s.spec!.clusterIP) continue;
      for (let n = 10; n < cidrSize(this.cidr) - 1; n++) {
        const ip = host(this.cidr, n);
        if (owner.has(ip)) continue;
        s.spec!.clusterIP = ip;
        owner.set(ip, id(s));
        break;
      }
      if (!s.spec!.clusterIP) problems.push({ index: services.indexOf(s), message: `the service CIDR ${this.cidr.text} is full` });
    }
    return problems;
  }
}
