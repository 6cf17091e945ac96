// What `ambit install` renders is valid Kubernetes: every object, in both redirect modes, validates
// against the upstream Kubernetes OpenAPI schema of its kind (kubernetes-models: Kubernetes 1.27's
// OpenAPI compiled by Ajv) and has no field upstream does not know (@kubernetes/client-node's models,
// generated from a newer upstream OpenAPI: kubectl's strict field validation). The values refuse what
// they do not know, naming the key.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as upstreamModels from '@kubernetes/client-node';
import { render } from '../../../deploy/manifests.js';
import { defaultValues, resolveValues, setOverride } from '../../../deploy/values.js';
import type { Resource } from '../../../shared/resources/types.js';

const both = () => [render(resolveValues([]), { adminToken: 'x' }), render(resolveValues([setOverride('agent.redirect=ebpf')]), { adminToken: 'x' })];

/** kubernetes-models' class of the kind: its validate() runs the upstream schema, compiled by Ajv. */
async function upstreamModel(r: Resource): Promise<{ validate(): void }> {
  const [group, version] = r.apiVersion.includes('/') ? r.apiVersion.split('/') : ['', r.apiVersion];
  const mod = (await import(group ? `kubernetes-models/${group}/${version}` : `kubernetes-models/${version}`)) as Record<string, new (o: unknown) => { validate(): void }>;
  const Model = mod[r.kind];
  if (!Model) throw new Error(`kubernetes-models has no ${r.apiVersion} ${r.kind}`);
  return new Model(r);
}

type AttributeTypeMap = { name: string; baseName: string; type: string }[];
const models = upstreamModels as unknown as Record<string, { getAttributeTypeMap?: () => AttributeTypeMap }>;

/** Fields upstream does not have, walking the object along client-node's generated models. */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const list = /^Array<(.+)>$/.exec(type);
  if (list) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, list[1]!, `${path}[${i}]`)) : [`${path}: not a list`];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value as object).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`));
  const model = models[type]?.getAttributeTypeMap;
  if (!model) return [];
  const attributes = model();
  return Object.entries(value as object).flatMap(([k, v]) => {
    const a = attributes.find((x) => x.baseName === k);
    return a ? unknownFields(v, a.type, path ? `${path}.${k}` : k) : [`${path ? `${path}.` : ''}${k}`];
  });
}

const modelName = (r: Resource) => `V1${r.kind}`;

test('every rendered object, in both redirect modes, validates against the upstream OpenAPI schema of its kind', async () => {
  for (const resources of both()) {
    for (const r of resources) {
      const model = await upstreamModel(r);
      try {
        model.validate();
      } catch (err) {
        assert.unreachable(`${r.kind} ${r.metadata.name}: ${(err as Error).message}`);
      }
    }
  }
});

test('no rendered object has a field upstream Kubernetes does not know (what strict field validation refuses)', () => {
  for (const resources of both()) {
    for (const r of resources) {
      assert.ok(models[modelName(r)]?.getAttributeTypeMap, `client-node has a model of ${r.kind}`);
      assert.equal(unknownFields(r, modelName(r), ''), [], `${r.kind} ${r.metadata.name}`);
    }
  }
});

test('the checks fail on what upstream refuses: a misspelt field, a value of the wrong type', async () => {
  const ds = structuredClone(render(defaultValues()).find((r) => r.kind === 'DaemonSet')!) as Resource & { spec: { template: { spec: Record<string, unknown> } } };
  ds.spec.template.spec.hostNetwrok = true;
  assert.equal(unknownFields(ds, 'V1DaemonSet', ''), ['spec.template.spec.hostNetwrok']);
  const dep = structuredClone(render(defaultValues()).find((r) => r.kind === 'Deployment')!) as Resource & { spec: { replicas: unknown } };
  dep.spec.replicas = 'two';
  let refused = '';
  try {
    (await upstreamModel(dep)).validate();
  } catch (err) {
    refused = (err as Error).message;
  }
  assert.match(refused, /replicas/);
});

test('the agent runs privileged only in eBPF mode, and with its four capabilities otherwise', () => {
  const [iptables, ebpf] = both().map((rs) => rs.find((r) => r.kind === 'DaemonSet') as unknown as { spec: { template: { spec: { containers: { securityContext: Record<string, unknown> }[]; volumes: { name: string }[] } } } });
  assert.equal(iptables!.spec.template.spec.containers[0]!.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN', 'SYS_PTRACE'] });
  assert.is(iptables!.spec.template.spec.containers[0]!.securityContext.privileged, false);
  assert.is(ebpf!.spec.template.spec.containers[0]!.securityContext.privileged, true);
  assert.ok(ebpf!.spec.template.spec.volumes.some((v) => v.name === 'bpffs'));
  assert.not.ok(iptables!.spec.template.spec.volumes.some((v) => v.name === 'bpffs'));
});

test('values refuse an unknown key, a wrong type and a bad choice, naming the key', () => {
  assert.throws(() => resolveValues([setOverride('agent.redirct=ebpf')]), /agent\.redirct is not a value ambit install knows/);
  assert.throws(() => resolveValues([setOverride('controller.replicas=many')]), /controller\.replicas: must be a whole number/);
  assert.throws(() => resolveValues([setOverride('agent.redirect=tc')]), /agent\.redirect: must be iptables, ebpf, not "tc"/);
  assert.throws(() => resolveValues([setOverride('agent.drainGraceSeconds=60')]), /terminationGracePeriodSeconds \(45\) must exceed agent\.drainGraceSeconds \(60\)/);
  assert.throws(() => setOverride('image'), /must be KEY=VALUE/);
  const v = resolveValues([{ controller: { resources: { limits: { memory: '2Gi' } } } }, setOverride('controller.replicas=3')]);
  assert.is(v.controller.replicas, 3);
  assert.equal(v.controller.resources.limits, { memory: '2Gi' });
});

test.run();
