// A fixed-rate HTTP load client (open loop: requests start on schedule whether or not earlier ones
// finished, so a slow path shows as latency, not as a lower rate), for the mesh benchmark's
// "moderate rate" figures; wrk 4 has no rate option. Keep-alive connections, bounded in time.
//
//   node dist/scripts/bench/rate-client.js URL RATE SECONDS [CONNECTIONS] ['NAME: VALUE'...]   -> JSON on stdout

import { Agent, request } from 'node:http';

const [url, rateText, secondsText, connectionsText, ...headerLines] = process.argv.slice(2);
if (!url || !rateText || !secondsText) {
  process.stderr.write("usage: rate-client URL RATE SECONDS [CONNECTIONS] ['NAME: VALUE'...]\n");
  process.exit(2);
}
const rate = Number(rateText);
const seconds = Number(secondsText);
/** Sent with every request (a bearer token for the L7 security measures). */
const headers = Object.fromEntries(headerLines.map((h) => [h.slice(0, h.indexOf(':')).trim(), h.slice(h.indexOf(':') + 1).trim()]));
const agent = new Agent({ keepAlive: true, maxSockets: Number(connectionsText ?? 16) });
const latencies: number[] = [];
let errors = 0;
let pending = 0;
const total = Math.round(rate * seconds);
const started = performance.now();

function one(): void {
  pending++;
  const t0 = performance.now();
  const req = request(url!, { agent, headers, timeout: 5000 }, (res) => {
    res.resume();
    res.on('end', () => {
      if (res.statusCode === 200) latencies.push(performance.now() - t0);
      else errors++;
      pending--;
    });
  });
  req.on('error', () => {
    errors++;
    pending--;
  });
  req.on('timeout', () => req.destroy());
  req.end();
}

let sent = 0;
const tick = setInterval(() => {
  // Catch up to the schedule: the number of requests that should have started by now.
  const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
  while (sent < due) {
    one();
    sent++;
  }
  if (sent >= total) {
    clearInterval(tick);
    const deadline = performance.now() + 5000;
    const wait = setInterval(() => {
      if (pending > 0 && performance.now() < deadline) return;
      clearInterval(wait);
      latencies.sort((a, b) => a - b);
      const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
      process.stdout.write(JSON.stringify({ rate, seconds, ok: latencies.length, errors, p50: q(0.5), p99: q(0.99) }) + '\n');
      agent.destroy();
    }, 20);
  }
}, 2);
