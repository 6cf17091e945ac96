// The local kubelet runs the agents' DaemonSet as rendered for users: the process it starts for a
// node is the template's container with $(VAR) expanded and every mounted path moved to where that
// node keeps the volume; what it cannot run is refused by name.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { render } from '../../../deploy/manifests.js';
import { defaultValues } from '../../../deploy/values.js';
import { expand, type NodeVolumes, podProcess, type PodTemplate } from '../../../cluster/daemonset/pod-process.js';

const values = defaultValues();
values.agent.podCgroupRoot = '/ambit/$(NODE_NAME)/kubepods.slice';
const daemonSet = render(values, { adminToken: 't' }).find((r) => r.kind === 'DaemonSet') as unknown as { spec: { template: PodTemplate } };
const fields = { 'metadata.name': 'ambit-agent-x', 'metadata.namespace': 'ambit-system', 'spec.nodeName': 'node-2', 'spec.serviceAccountName': 'ambit-agent', 'status.hostIP': '10.250.0.2', 'status.podIP': '10.250.0.2' };
const hostPaths: Record<string, string> = { '/proc': '/proc', '/sys/fs/cgroup': '/sys/fs/cgroup', '/var/run/netns': '/run/netns', '/etc/cni/net.d': '/state/nodes/node-2/cni/net.d', '/opt/cni/bin': '/state/nodes/node-2/cni/bin', '/var/run/ambit': '/state/agents/node-2/run' };
const volumes: NodeVolumes = { hostPath: (p) => hostPaths[p], volumeDir: (n) => `/state/agents/node-2/volumes/${n}`, emptyDir: (n) => `/state/agents/node-2/pod-1/${n}` };
const ambit = (entry: string) => (entry === 'ambit' ? ['node', 'cli.js'] : undefined);
const flag = (argv: string[], name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

test("the rendered agent DaemonSet runs as `ambit agent` with this node's paths and name", () => {
  const p = podProcess(daemonSet.spec.template, fields, volumes, ambit);
  assert.equal(p.argv.slice(0, 3), ['node', 'cli.js', 'agent']);
  assert.is(flag(p.argv, 'node'), 'node-2', '$(NODE_NAME) from the downward API');
  assert.is(flag(p.argv, 'pod-cgroup-root'), '/ambit/node-2/kubepods.slice');
  assert.is(flag(p.argv, 'cni-conf-dir'), '/state/nodes/node-2/cni/net.d', 'the container path /host/etc/cni/net.d is the node\'s own directory');
  assert.is(flag(p.argv, 'cni-bin-dir'), '/state/nodes/node-2/cni/bin');
  assert.is(flag(p.argv, 'cni-socket'), '/state/agents/node-2/run/cni.sock');
  assert.is(flag(p.argv, 'proc-root'), '/proc');
  assert.is(flag(p.argv, 'token-file'), '/state/agents/node-2/volumes/controller-token/token');
  assert.is(flag(p.argv, 'controller-ca'), '/state/agents/node-2/volumes/controller-ca/root-cert.pem');
  assert.is(flag(p.argv, 'ready-file'), '/state/agents/node-2/pod-1/ready/ready', 'an emptyDir is this start\'s');
  assert.equal(p.readiness, ['test', '-s', '/state/agents/node-2/pod-1/ready/ready'], 'the readiness probe sees the same file');
  assert.equal(p.written.map((w) => w.volume.name).sort(), ['admin-token', 'controller-ca', 'controller-token']);
  assert.equal(p.env, { NODE_NAME: 'node-2', NODE_OPTIONS: '--max-semi-space-size=8 --max-old-space-size=256' }, 'the heap limits reach the agent through NODE_OPTIONS');
});

test('what the local kubelet cannot run is refused, naming it', () => {
  const t = structuredClone(daemonSet.spec.template);
  assert.throws(() => podProcess({ spec: { ...t.spec, hostNetwork: false } }, fields, volumes, ambit), /only hostNetwork/);
  const other = structuredClone(t);
  other.spec.volumes!.find((v) => v.name === 'cni-bin')!.hostPath!.path = '/usr/libexec/cni';
  assert.throws(() => podProcess(other, fields, volumes, ambit), /volume cni-bin is hostPath \/usr\/libexec\/cni/);
  const image = structuredClone(t);
  image.spec.containers[0]!.command = ['/usr/bin/envoy'];
  assert.throws(() => podProcess(image, fields, volumes, ambit), /envoy/);
  const env = structuredClone(t);
  env.spec.containers[0]!.env = [{ name: 'LIMIT', valueFrom: { fieldRef: { fieldPath: 'metadata.labels' } } }];
  assert.throws(() => podProcess(env, fields, volumes, ambit), /env LIMIT takes fieldRef metadata.labels/);
});

test('$(VAR) is expanded as Kubernetes does: known names only, $$ escapes', () => {
  assert.is(expand('--node=$(NODE_NAME)', { NODE_NAME: 'n1' }), '--node=n1');
  assert.is(expand('$(MISSING)/x', {}), '$(MISSING)/x');
  assert.is(expand('$$(NODE_NAME)', { NODE_NAME: 'n1' }), '$(NODE_NAME)');
});

test.run();
