// The controller's dashboard on a real local cluster, in headless Chromium (Debian's, driven by
// playwright-core): it is served on the host's 127.0.0.1 while the controller runs in the control
// plane's namespace; the topology from Prometheus shows the client -> web edge with mTLS; after a
// DENY the same edge turns red and the live events show the denials; the explain form names the
// policy; agents, policies and certificates show; the Estimate page agrees with `ambit estimate`.
// Screenshots of each page are saved for people.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { ambit, ambitOk, applyAndWait, eventually, leftovers, status } from './helpers.js';

const dashboard = 'http://127.0.0.1:15080';
export const screenshotDir = '/tmp/ambit-e2e-screenshots';
/** Prometheus scrapes every 5 s and rates need two samples; the UI polls every 5 s. */
const trafficDeadline = 90_000;

let tmp = '';
let browser: Browser | undefined;
let page: Page;
const started = performance.now();
const phases: string[] = [];
const phase = (name: string) => phases.push(`${name} at ${((performance.now() - started) / 1000).toFixed(1)} s`);

async function shot(name: string): Promise<void> {
  const path = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  console.log(`  screenshot: ${path}`);
}

const edgeRow = (state?: string) => `table[data-testid="edges"] tr[data-source="front/client"][data-target="shop/web"]${state ? `[data-state="${state}"]` : ''}`;

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-dashboard-'));
  mkdirSync(screenshotDir, { recursive: true });
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up', '--no-samples'], 120_000);
  phase('cluster up');
  // A client that calls the web Service four times a second: 2,400 rounds at most (10 min, far past
  // the test), then it idles rather than exit (an exited container would be started again).
  await applyAndWait(
    tmp,
    `apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: Namespace
metadata: { name: front, labels: { ambit.dev/dataplane-mode: ambient } }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: client, namespace: front }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      serviceAccountName: web
      nodeName: node-2
      containers: [{ name: web, command: [ambit, sample, http-server, --app, web, --version, v1, --port, "8080"] }]
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec:
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: client, namespace: front }
spec:
  selector: { matchLabels: { app: client } }
  template:
    metadata: { labels: { app: client } }
    spec:
      serviceAccountName: client
      nodeName: node-1
      containers:
        - name: load
          command: [sh, -c, "for i in $(seq 1 2400); do curl -s -o /dev/null --max-time 2 http://web.shop/; sleep 0.25; done; sleep infinity"]
`,
  );
  await eventually('both pods running and captured', async () => {
    const s = await status();
    return s.pods.length === 2 && s.pods.every((p) => p.phase === 'Running' && p.capture === 'captured');
  }, 30_000);
  phase('load running');
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
});

test.after(async () => {
  await browser?.close();
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
  console.log(`  ${phases.join(', ')}`);
  assert.equal(await leftovers(), [], 'ambit down left something behind');
});

test('the dashboard is served on the host loopback; its API answers errors as JSON that say what to do', async () => {
  const index = await fetch(`${dashboard}/`);
  assert.is(index.status, 200);
  assert.match(await index.text(), '/assets/app.js');
  const bad = await fetch(`${dashboard}/api/topology?window=forever`);
  assert.is(bad.status, 400);
  const body = (await bad.json()) as { error: { code: string; message: string } };
  assert.is(body.error.code, 'BadRequest');
  assert.match(body.error.message, 'e.g. 1m');
  // fetch() will not send another Host; http.request will, as a rebinding page's browser would.
  const rebound = await new Promise<number>((resolve, reject) =>
    request(`${dashboard}/api/agents`, { headers: { host: 'attacker.example:15080' } }, (res) => resolve(res.resume().statusCode ?? 0)).on('error', reject).end(),
  );
  assert.is(rebound, 403, 'a Host that is not an address is refused (DNS rebinding)');
  const prom = await fetch(`${dashboard}/prometheus/-/ready`);
  assert.is(prom.status, 200, 'Prometheus is proxied under /prometheus/');
});

test('the topology shows the client -> web edge, over mutual TLS', async () => {
  await page.goto(`${dashboard}/#/topology`);
  await page.locator(edgeRow()).waitFor({ timeout: trafficDeadline });
  phase('edge shown');
  const row = page.locator(edgeRow());
  assert.is(await row.getAttribute('data-state'), 'ok');
  assert.is(await row.getAttribute('data-security'), 'mtls');
  assert.match(await row.innerText(), 'web.shop');
  assert.ok(await page.locator('[data-testid="topology-graph"] svg').count(), 'the graph is drawn');
  await shot('1-topology');
});

test('after a DENY for that caller, the same edge turns red and the live events show denials', async () => {
  await applyAndWait(
    tmp,
    `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: deny-front, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  action: DENY
  rules: [{ from: [{ source: { namespaces: [front] } }] }]
`,
  );
  phase('DENY applied');
  await page.goto(`${dashboard}/#/events`);
  await page.locator('table[data-testid="events"] tr[data-topic="denials"]').first().waitFor({ timeout: 20_000 });
  assert.match(await page.locator('table[data-testid="events"] tr[data-topic="denials"]').first().innerText(), 'deny-front');
  await shot('2-events');
  await page.goto(`${dashboard}/#/topology`);
  await page.locator(edgeRow('denied')).waitFor({ timeout: trafficDeadline });
  phase('edge red');
  // What makes it red on screen: the row's colour bar, and the graph's line.
  const bar = await page.locator(`${edgeRow('denied')} td`).first().evaluate((td) => getComputedStyle(td).borderLeftColor);
  assert.is(bar, 'rgb(211, 47, 47)');
  assert.ok(await page.locator('[data-testid="topology-graph"] path[stroke="#d32f2f"]').count(), 'a red line in the graph');
  await shot('3-topology-denied');
});

test('the explain form answers as `ambit explain` does, naming the policy', async () => {
  await page.goto(`${dashboard}/#/explain`);
  await page.fill('input[name="namespace"]', 'front');
  await page.fill('input[name="source"]', 'deploy/client');
  await page.fill('input[name="destination"]', 'web.shop:80');
  await page.click('form[data-testid="explain-form"] button[type="submit"]');
  const answer = page.locator('[data-testid="explain-answer"]');
  await answer.waitFor({ timeout: 15_000 });
  assert.is(await answer.getAttribute('data-verdict'), 'denied');
  assert.match(await answer.getAttribute('data-policy') ?? '', 'deny-front');
  const cli = await ambit(['explain', '-n', 'front', 'deploy/client', 'web.shop:80']);
  assert.is(cli.code, 3);
  assert.is(await page.locator('[data-testid="explain-output"]').innerText(), cli.stdout.trimEnd(), 'the same lines as the command prints');
  await shot('4-explain');
});

test('agents, policies and certificates: each node in sync, the DENY in force on every agent, roots and SVIDs with expiry', async () => {
  await page.goto(`${dashboard}/#/agents`);
  for (const node of ['node-1', 'node-2']) await page.locator(`table[data-testid="agents"] tr[data-node="${node}"][data-health="healthy"]`).waitFor({ timeout: 15_000 });
  await shot('5-agents');
  await page.goto(`${dashboard}/#/policies`);
  const policy = page.locator('table[data-testid="policies"] tr[data-policy="shop/deny-front"]');
  await policy.waitFor({ timeout: 10_000 });
  assert.match(await policy.innerText(), 'DENY');
  assert.match(await policy.innerText(), '2/2 agents');
  await shot('6-policies');
  await page.goto(`${dashboard}/#/certificates`);
  await page.locator('table[data-testid="workload-certs"]').waitFor({ timeout: 15_000 });
  const svids = await page.locator('table[data-testid="workload-certs"] tbody').innerText();
  assert.match(svids, 'ns/front/sa/client');
  assert.match(svids, 'ns/shop/sa/web');
  assert.is(await page.locator('table[data-testid="roots"] tbody tr').count(), 1);
  await shot('7-certificates');
});

test('the Estimate page gives the figures `ambit estimate` gives, with a chart', async () => {
  await page.goto(`${dashboard}/#/estimate`);
  for (const [name, value] of Object.entries({ nodes: '20', pods: '1000', services: '200', rps: '5000', waypoints: '2', l7Share: '0.3' })) await page.fill(`form[data-testid="estimate-form"] input[name="${name}"]`, value);
  await page.click('form[data-testid="estimate-form"] button[type="submit"]');
  const answer = page.locator('[data-testid="estimate-answer"]');
  await answer.waitFor({ timeout: 10_000 });
  const cli = JSON.parse(await ambitOk(['estimate', '--nodes', '20', '--pods', '1000', '--services', '200', '--rps', '5000', '--waypoints', '2', '--l7-share', '0.3', '-o', 'json'])) as { monthlyUsd: { ambit: number; sidecars: number } };
  assert.is(await answer.getAttribute('data-ambit-usd'), cli.monthlyUsd.ambit.toFixed(2));
  assert.is(await answer.getAttribute('data-sidecars-usd'), cli.monthlyUsd.sidecars.toFixed(2));
  assert.ok(await page.locator('[data-testid="estimate-chart"] svg path').count(), 'the bar chart is drawn');
  await shot('8-estimate');
});

test.run();
