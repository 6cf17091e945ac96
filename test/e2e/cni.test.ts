// The agents in the local cluster's CNI chain, as istio-cni's plugin is on a node: each agent puts
// ambit-cni at the end of its node's conflist; a pod of an enrolled namespace is captured through
// the CNI ADD before its workload starts; with its node's agent not answering, a new pod of an
// enrolled namespace does not start (the ADD fails, the kubelet retries) and starts captured once
// the agent answers again; an agent replaced finds the running pods again, with one copy of each rule.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ambit, ambitOk, eventually, leftovers, sh, stateDir, status } from './helpers.js';

let tmp = '';
const kubectl = (args: string) => sh(`kubectl --kubeconfig ${join(stateDir, 'kubeconfig')} ${args}`);
const agentPid = (node: string) => Number(readFileSync(join(stateDir, 'agents', node, 'pid'), 'utf8'));
/** The container checks, as its first act, whether its pod's capture rules are there. */
const deployment = (name: string, node: string) => `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: cnitest }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      nodeName: ${node}
      containers:
        - name: app
          command: [sh, -c, 'if nft list table ip ambit_capture >/dev/null 2>&1; then echo captured-at-start; else echo NOT-captured-at-start; fi; exec sleep 3600']
`;
const apply = async (name: string, yaml: string) => {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, yaml);
  await ambitOk(['apply', '-f', file]);
};
const running = async (app: string) => (await status()).pods.find((p) => p.namespace === 'cnitest' && p.labels.app === app && p.phase === 'Running');
const nftTable = (pod: string) => sh(`ip netns exec ambit-pod-cnitest.${pod} nft list table ip ambit_capture`);

test.before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ambit-e2e-cni-'));
  assert.equal(await leftovers(), [], 'a cluster is up or an earlier run leaked; run `ambit down`');
  await ambitOk(['up', '--no-samples'], 120_000);
});

test.after(async () => {
  for (const node of ['node-1', 'node-2']) {
    try {
      process.kill(agentPid(node), 'SIGCONT');
    } catch {
      // Not stopped, or gone.
    }
  }
  await ambit(['down']);
  rmSync(tmp, { recursive: true, force: true });
});

test("each agent puts ambit-cni last in its node's conflist", async () => {
  for (const node of ['node-1', 'node-2']) {
    const dir = join(stateDir, 'nodes', node, 'cni', 'net.d');
    await eventually(`ambit-cni in ${node}'s chain`, async () => {
      const file = readdirSync(dir).filter((f) => f.endsWith('.conflist')).sort()[0];
      const types = file ? (JSON.parse(readFileSync(join(dir, file), 'utf8')) as { plugins: { type: string }[] }).plugins.map((p) => p.type) : [];
      return types.at(-1) === 'ambit-cni';
    });
  }
});

test('a pod of an enrolled namespace is captured through the CNI ADD before its workload starts', async () => {
  await apply('ns', 'apiVersion: v1\nkind: Namespace\nmetadata: { name: cnitest, labels: { ambit.dev/dataplane-mode: ambient } }\n');
  await apply('first', deployment('first', 'node-1'));
  const pod = await eventually('the pod running', () => running('first'), 30_000);
  assert.match(await ambitOk(['logs', '-n', 'cnitest', pod.name]), 'captured-at-start');
  assert.match(readFileSync(join(stateDir, 'agents', 'node-1', 'agent.log'), 'utf8'), new RegExp(`"workload":"cnitest/${pod.name}".*"msg":"CNI ADD answered"`));
  assert.is((await status()).pods.find((p) => p.name === pod.name)!.capture, 'captured');
});

test("with its node's agent not answering, a new pod of an enrolled namespace does not start; it starts captured once the agent answers", async () => {
  const pid = agentPid('node-2');
  process.kill(pid, 'SIGSTOP');
  try {
    await apply('second', deployment('second', 'node-2'));
    // The plugin waits for the agent (20 s), then fails the ADD; the kubelet records it and retries.
    const event = await eventually(
      'a failed sandbox',
      async () => {
        const events = JSON.parse(await kubectl('get events -n cnitest -o json')) as { items: { reason: string; message: string; involvedObject: { name: string } }[] };
        return events.items.find((e) => e.reason === 'FailedCreatePodSandBox' && e.involvedObject.name.startsWith('second-'));
      },
      45_000,
    );
    assert.match(event.message, 'ambit-cni');
    assert.is(await running('second'), undefined, 'the pod did not start');
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const pod = await eventually('the pod running once the agent answers', () => running('second'), 90_000);
  assert.match(await ambitOk(['logs', '-n', 'cnitest', pod.name]), 'captured-at-start');
});

test('an agent replaced finds the running pods again, with one copy of each rule', async () => {
  const pod = (await running('first'))!;
  const before = await nftTable(pod.name);
  assert.match(before, 'ambit_capture');
  await ambitOk(['agents', '--restart', 'node-1'], 90_000);
  const after = await nftTable(pod.name);
  const rules = (text: string) => text.split('\n').filter((l) => /^\s+(meta|ip|tcp|counter|jump|redirect|tproxy|mark)/.test(l)).length;
  assert.ok(rules(before) > 0, `the count sees the pod's rules:\n${before}`);
  assert.is(rules(after), rules(before), `same rules after the restart:\n${after}`);
  assert.is((await status()).pods.find((p) => p.name === pod.name)!.capture, 'captured');
});

test("the agents run from the DaemonSet users install, and a changed template rolls them one node at a time", async () => {
  const ds = JSON.parse(await kubectl('get daemonset ambit-agent -n ambit-system -o json')) as { metadata: object; spec: { template: { spec: { containers: { args: string[] }[] } } } };
  const args = ds.spec.template.spec.containers[0]!.args;
  assert.ok(args.includes('--node=$(NODE_NAME)'), args.join(' '));
  const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  const before = ['node-1', 'node-2'].map(agentPid);
  assert.ok(cmdline(before[0]!).includes('--node=node-1'), 'the running agent is the template, expanded for its node');
  // An edit of the template, as an upgrade makes one: a log level.
  const edited = structuredClone(ds) as { metadata: { resourceVersion?: string }; spec: { template: { spec: { containers: { args: string[] }[] } } } };
  delete edited.metadata.resourceVersion;
  edited.spec.template.spec.containers[0]!.args = args.map((a) => (a.startsWith('--log-level=') ? '--log-level=debug' : a));
  const file = join(tmp, 'ds.json');
  writeFileSync(file, JSON.stringify(edited));
  await kubectl(`replace -f ${file}`);
  await eventually('both agents rolled to the new template', async () => ['node-1', 'node-2'].every((n, i) => agentPid(n) !== before[i] && cmdline(agentPid(n)).includes('--log-level=debug')), 90_000);
  // What an operator watches a rollout with: the DaemonSet's status, as its controller keeps it.
  assert.match(await kubectl('rollout status daemonset/ambit-agent -n ambit-system --timeout=60s'), 'successfully rolled out');
  const row = (await kubectl('get daemonset ambit-agent -n ambit-system --no-headers')).trim().split(/\s+/);
  assert.equal(row.slice(0, 6), ['ambit-agent', '2', '2', '2', '2', '2'], 'NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE');
  const pod = (await running('first'))!;
  assert.is((await status()).pods.find((p) => p.name === pod.name)!.capture, 'captured');
});

test('ambit down leaves nothing behind', async () => {
  await ambitOk(['down']);
  assert.equal(await leftovers(), []);
});

test.run();
