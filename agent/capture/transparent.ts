// What every captured pod gets beside its redirect, in both capture modes:
// - Source-address transparency: the agent hands an inbound connection to the app from a socket
//   bound to the *client's* address (IP_TRANSPARENT), so the app sees who called, as ztunnel does.
//   The app's answers to that foreign address must come back to the agent, not leave through eth0.
//   Only connections the agent opened *to the app* are marked for that: their packets loop through
//   the pod's `lo` into prerouting still carrying the agent's mark (0x539), and conntrack records a
//   second mark (0x111) there; the app's packets of such a connection get 0x111 back in output, and
//   a policy-routing rule sends 0x111 to a local route (Istio's in-pod recipe, shared/MACHINE.md).
//   The agent's own connections *out of* the pod (to a destination outside the mesh) also carry
//   0x539 but never pass prerouting in the pod, so they are routed as usual.
// - IPv6 closed: both redirects capture IPv4 only, so an enrolled pod may use IPv6 on loopback and
//   nowhere else (no uncaptured path, e.g. over the link-local addresses of the pod's interface).
// Installed and removed with the capture, all or nothing.

import { execFile } from 'node:child_process';
import { runNft } from '../../native/nftables.js';
import { agentMark, markMask } from './redirect.js';

export const transparentTable = 'ambit_transparent';
export const ipv6Table = 'ambit_ipv6';
/** The routing table holding the local route for marked packets (ztunnel's number). */
export const routeTable = 133;
/** The conntrack and packet mark of connections the agent opened to the app (Istio's in-pod mark). */
export const transparentMark = 0x111;

const hex = (n: number) => `0x${n.toString(16)}`;
const keep = hex(~markMask >>> 0);

/**
 * Both tables in one transaction, created if missing, their chains flushed and filled: a chain
 * deleted and made again would leave, for the moment of the transaction, a reply of a transparent
 * connection without its mark, routed out of the pod (an agent installing beside its predecessor).
 */
function rules(): string {
  return `table ip ${transparentTable} {
  chain prerouting {
    type filter hook prerouting priority mangle; policy accept;
  }
  chain output {
    type route hook output priority mangle; policy accept;
  }
}
flush chain ip ${transparentTable} prerouting
flush chain ip ${transparentTable} output
add rule ip ${transparentTable} prerouting iif lo meta mark & ${hex(markMask)} == ${hex(agentMark)} ct mark set ct mark & ${keep} | ${hex(transparentMark)}
add rule ip ${transparentTable} output ct mark & ${hex(markMask)} == ${hex(transparentMark)} meta mark set meta mark & ${keep} | ${hex(transparentMark)}
table ip6 ${ipv6Table} {
  chain input {
    type filter hook input priority filter; policy drop;
  }
  chain output {
    type filter hook output priority filter; policy drop;
  }
}
flush chain ip6 ${ipv6Table} input
flush chain ip6 ${ipv6Table} output
add rule ip6 ${ipv6Table} input iif lo accept
add rule ip6 ${ipv6Table} output oif lo accept
`;
}

const removal = `table ip ${transparentTable}\ndelete table ip ${transparentTable}\ntable ip6 ${ipv6Table}\ndelete table ip6 ${ipv6Table}\n`;

/** Runs `ip` in the pod's namespace; `-batch -` takes commands on stdin, `-force` goes past failures. */
function ip(netns: string, args: string[], input?: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = execFile('nsenter', [`--net=${netns}`, '--', 'ip', ...args], (err, out, stderr) => {
      // A delete of what is already gone is the idempotent case, not a failure.
      const real = stderr.split('\n').filter((l) => l.trim() && !/No such file|No such process|Command failed/.test(l));
      if (err && real.length) fail(new Error(`ip ${args.join(' ')} in ${netns}: ${real.join('; ')}`));
      else done(out);
    });
    // A command that reads no input may exit before its stdin is written (EPIPE): its own exit
    // status and output say how it went, so that error is not one.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

const rule = `fwmark ${hex(transparentMark)}/${hex(markMask)} lookup ${routeTable}`;
/** The rule earlier agents installed, which caught the agent's own outbound connections too: removed on an upgrade from them. */
const oldRule = `fwmark ${hex(agentMark)}/${hex(markMask)} lookup ${routeTable}`;

/** Installs the mark restore, the policy route and the IPv6 block; running it again changes nothing. */
export async function installTransparency(nsFd: number, netns: string): Promise<void> {
  runNft(nsFd, rules());
  try {
    // ip rule add does not refuse a duplicate, so add only what is missing.
    const present = (await ip(netns, ['rule', 'show', ...rule.split(' ')])).trim() !== '';
    const old = (await ip(netns, ['rule', 'show', ...oldRule.split(' ')])).trim() !== '';
    await ip(netns, ['-force', '-batch', '-'], `${old ? `rule del ${oldRule}\n` : ''}${present ? '' : `rule add ${rule}\n`}route replace local 0.0.0.0/0 dev lo table ${routeTable}\n`);
  } catch (err) {
    runNft(nsFd, removal);
    throw err;
  }
}

export async function removeTransparency(nsFd: number, netns: string): Promise<void> {
  runNft(nsFd, removal);
  await ip(netns, ['-force', '-batch', '-'], `rule del ${rule}\nrule del ${oldRule}\nroute flush table ${routeTable}\n`);
}
