// Services for plain traffic, as kube-proxy's nftables mode makes them: in every node, a ClusterIP
// and port jump to a chain that picks one ready endpoint at random and DNATs to it. A Service
// without endpoints refuses connections (TCP reset) instead of timing out. The table is replaced
// whole in one `nft -f` transaction, so no packet sees half a rule set.

import { type Pod, resolveTargetPort, selectorMatches, type Service } from '../../shared/resources/types.js';
import type { Topology } from '../topology.js';

export interface Endpoint {
  ip: string;
  port: number;
  pod: string;
  node: string;
}

export interface ServicePortEndpoints {
  service: Service;
  port: number;
  name?: string;
  endpoints: Endpoint[];
}

export const servicesTable = 'ambit_services';

/** Marks a connection from a pod to itself through its own Service, which must be masqueraded. */
const hairpinMark = '0x4000';

/** The endpoints of every Service port: running pods of the Service's namespace that its selector matches. */
export function endpointsOf(services: Service[], pods: Pod[]): ServicePortEndpoints[] {
  const out: ServicePortEndpoints[] = [];
  for (const s of services) {
    const spec = s.spec!;
    const members = pods.filter(
      (p) => p.metadata.namespace === s.metadata.namespace && p.status.phase === 'Running' && selectorMatches(spec.selector, p.metadata.labels),
    );
    for (const sp of spec.ports) {
      const endpoints: Endpoint[] = [];
      for (const p of members) {
        const target = resolveTargetPort(sp.targetPort ?? sp.port, p);
        if (target !== undefined) endpoints.push({ ip: p.status.podIP, port: target, pod: p.metadata.name, node: p.spec.nodeName });
      }
      endpoints.sort((a, b) => a.ip.localeCompare(b.ip, 'en', { numeric: true }));
      out.push({ service: s, port: sp.port, ...(sp.name ? { name: sp.name } : {}), endpoints });
    }
  }
  return out;
}

export function servicesRuleset(t: Topology, ports: ServicePortEndpoints[]): string {
  const chains: string[] = [];
  const dispatch: string[] = [];
  ports.forEach((sp, i) => {
    const ip = sp.service.spec!.clusterIP;
    if (!ip || sp.endpoints.length === 0) return;
    const comment = `${sp.service.metadata.namespace}/${sp.service.metadata.name}:${sp.name ?? sp.port}`;
    dispatch.push(`    ip daddr ${ip} tcp dport ${sp.port} goto svc_${i} comment "${comment}"`);
    const pick = sp.endpoints.map((_, j) => `${j} : goto ep_${i}_${j}`).join(', ');
    chains.push(`  chain svc_${i} {\n    numgen random mod ${sp.endpoints.length} vmap { ${pick} }\n  }`);
    sp.endpoints.forEach((ep, j) => {
      chains.push(`  chain ep_${i}_${j} {\n    ip saddr ${ep.ip} meta mark set meta mark | ${hairpinMark}\n    meta l4proto tcp dnat to ${ep.ip}:${ep.port}\n  }`);
    });
  });
  const vips = t.serviceCIDR.text;
  return `table ip ${servicesTable}
delete table ip ${servicesTable}
table ip ${servicesTable} {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump services
  }
  chain output {
    type nat hook output priority -100; policy accept;
    jump services
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    meta mark & ${hairpinMark} == ${hairpinMark} masquerade
  }
  chain services {
${dispatch.join('\n')}
  }
${chains.join('\n')}
  chain refuse {
    type filter hook input priority filter; policy accept;
    ip daddr ${vips} meta l4proto tcp reject with tcp reset
    ip daddr ${vips} reject
  }
}
`;
}

/** The pod's /etc/hosts: Service names as a pod's resolver would expand them in its namespace. */
export function hostsFor(namespace: string, services: Service[], clusterDomain = 'cluster.local'): string {
  const lines = ['127.0.0.1 localhost', '::1 localhost'];
  for (const s of services) {
    const ip = s.spec?.clusterIP;
    if (!ip) continue;
    const n = s.metadata.name;
    const ns = s.metadata.namespace;
    const names = [`${n}.${ns}.svc.${clusterDomain}`, `${n}.${ns}.svc`, `${n}.${ns}`];
    if (ns === namespace) names.push(n);
    lines.push(`${ip} ${names.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}
