// Source-address transparency inside a captured pod: the agent hands an inbound connection to the
// app from a socket bound to the *client's* address (IP_TRANSPARENT), so the app sees who called,
// as ztunnel does. The app's answers to that foreign address must come back to the agent, not
// leave through eth0: conntrack keeps the agent's mark on the connection and restores it on the
// app's packets, and a policy-routing rule sends marked packets to a local route (the recipe in
// shared/MACHINE.md). The same in both redirect modes; installed and removed with the capture.

import { execFile } from 'node:child_process';
import { runNft } from '../../native/nftables.js';
import { agentMark, markMask } from './redirect.js';

export const transparentTable = 'ambit_transparent';
/** The routing table holding the local route for marked packets (ztunnel's number). */
export const routeTable = 133;

const hex = (n: number) => `0x${n.toString(16)}`;

function rules(): string {
  return `table ip ${transparentTable}
delete table ip ${transparentTable}
table ip ${transparentTable} {
  chain output {
    type route hook output priority mangle; policy accept;
    meta mark & ${hex(markMask)} == ${hex(agentMark)} ct mark set meta mark
    ct mark & ${hex(markMask)} == ${hex(agentMark)} meta mark set ct mark
  }
}
`;
}

/** Runs `ip` in the pod's namespace; `-batch -` takes commands on stdin, `-force` goes past failures. */
function ip(netns: string, args: string[], input?: string): Promise<string> {
  return new Promise((done, fail) => {
    const child = execFile('nsenter', [`--net=${netns}`, '--', 'ip', ...args], (err, out, stderr) => {
      // A delete of what is already gone is the idempotent case, not a failure.
      const real = stderr.split('\n').filter((l) => l.trim() && !/No such file|No such process|Command failed/.test(l));
      if (err && real.length) fail(new Error(`ip ${args.join(' ')} in ${netns}: ${real.join('; ')}`));
      else done(out);
    });
    child.stdin?.end(input ?? '');
  });
}

const rule = `fwmark ${hex(agentMark)}/${hex(markMask)} lookup ${routeTable}`;

/** Installs the mark restore and the policy route; running it again (an agent restart) changes nothing. */
export async function installTransparency(nsFd: number, netns: string): Promise<void> {
  runNft(nsFd, rules());
  try {
    // ip rule add does not refuse a duplicate, so add only what is missing.
    const present = (await ip(netns, ['rule', 'show', ...rule.split(' ')])).trim() !== '';
    await ip(netns, ['-force', '-batch', '-'], `${present ? '' : `rule add ${rule}\n`}route replace local 0.0.0.0/0 dev lo table ${routeTable}\n`);
  } catch (err) {
    runNft(nsFd, `table ip ${transparentTable}\ndelete table ip ${transparentTable}\n`);
    throw err;
  }
}

export async function removeTransparency(nsFd: number, netns: string): Promise<void> {
  runNft(nsFd, `table ip ${transparentTable}\ndelete table ip ${transparentTable}\n`);
  await ip(netns, ['-force', '-batch', '-'], `rule del ${rule}\nroute flush table ${routeTable}\n`);
}
