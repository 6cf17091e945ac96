// `ambit install` and `ambit uninstall` against the local API server (in process, over HTTPS), and
// the Helm chart beside the renderer: kubectl's server-side dry run accepts the rendered YAML; an
// install creates everything, a second changes nothing; a CRD another installer made is kept; the
// uninstall takes the webhook configuration first and the CRDs only when purging; the chart on disk
// is the one the renderer makes, and its templates expanded with the defaults are the rendered objects.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { KubeClient } from '../../../shared/kube/client.js';
import { loadKubeconfig } from '../../../shared/kube/config.js';
import { resourceKind } from '../../../shared/kube/paths.js';
import { applyResources, deleteResources } from '../../../cli/kube.js';
import { printYaml } from '../../../cli/commands/install.js';
import { planInstall, uninstallRefs } from '../../../deploy/install.js';
import { render } from '../../../deploy/manifests.js';
import { chartFiles, valueAt } from '../../../deploy/helm.js';
import { defaultValues, type InstallValues } from '../../../deploy/values.js';
import { projectRoot } from '../../../cli/context.js';
import { startApi } from '../apiserver/helpers.js';

test('kubectl apply --dry-run=server accepts the rendered manifests', async () => {
  const t = await startApi();
  try {
    // The namespace first, as on the local cluster, whose control plane made it (a dry run stores no namespace to put objects in).
    // And its ServiceAccounts: the local API server refuses a Deployment whose ServiceAccount is missing
    // (a real one does not check), and a dry run stores none.
    writeFileSync(join(t.dir, 'ns.yaml'), printYaml(render(defaultValues()).filter((r) => r.kind === 'Namespace' || r.kind === 'ServiceAccount')));
    const made = await t.kubectl('apply', '-f', join(t.dir, 'ns.yaml'));
    assert.is(made.code, 0, made.stderr);
    const file = join(t.dir, 'ambit.yaml');
    writeFileSync(file, printYaml(render(defaultValues(), { adminToken: 'token' })));
    const r = await t.kubectl('apply', '--dry-run=server', '-f', file);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /daemonset.apps\/ambit-agent (created|configured) \(server dry run\)/);
    assert.match(r.stdout, /clusterrole.rbac.authorization.k8s.io\/ambit-controller created \(server dry run\)/);
  } finally {
    await t.close();
  }
});

test('install creates, a second install changes nothing, another installer\'s CRD is kept, uninstall removes what install made', async () => {
  const t = await startApi();
  const client = new KubeClient(loadKubeconfig(t.kubeconfig));
  const CRD = resourceKind('CustomResourceDefinition');
  try {
    // An Istio that came first: its own AuthorizationPolicy CRD, without ambit's label.
    const ours = (await client.get(CRD, '', 'authorizationpolicies.security.istio.io'))!;
    await client.delete(CRD, '', ours.metadata.name);
    const istios = { apiVersion: ours.apiVersion, kind: ours.kind, metadata: { name: ours.metadata.name, labels: { app: 'istio-pilot' } }, spec: ours.spec };
    await client.create(CRD, istios);

    const plan = await planInstall(client, defaultValues());
    assert.equal(plan.kept, ['authorizationpolicies.security.istio.io']);
    const first = await applyResources(client, plan.resources, false);
    const created = first.results.filter((r) => r.action === 'created').map((r) => r.resource);
    for (const want of ['DaemonSet ambit-system/ambit-agent', 'Deployment ambit-system/ambit-controller', 'ClusterRole ambit-controller', 'PodDisruptionBudget ambit-system/ambit-controller', 'ValidatingWebhookConfiguration ambit-validation']) {
      assert.ok(created.some((c) => c.toLowerCase() === want.toLowerCase()), `${want} created (${created.join(', ')})`);
    }
    // The same token is kept: nothing new the second time, and the agents' Secret holds the same token.
    const token = (await client.get(resourceKind('Secret'), 'ambit-system', 'ambit-agent-admin-token')) as unknown as { data: { token: string } };
    // A second later (managedFields carry times by the second): still nothing written.
    await new Promise((r) => setTimeout(r, 1100));
    const second = await applyResources(client, (await planInstall(client, defaultValues())).resources, false);
    assert.equal(second.results.filter((r) => r.action !== 'unchanged'), []);
    assert.equal(((await client.get(resourceKind('Secret'), 'ambit-system', 'ambit-agent-admin-token')) as unknown as { data: { token: string } }).data.token, token.data.token);

    const refs = await uninstallRefs(client, true);
    assert.is(refs[0]!.kind, 'ValidatingWebhookConfiguration', 'the webhook configuration goes first');
    await deleteResources(client, refs, { ignoreNotFound: true });
    assert.not.ok(await client.get(resourceKind('DaemonSet'), 'ambit-system', 'ambit-agent'));
    assert.not.ok(await client.get(resourceKind('ClusterRole'), '', 'ambit-controller'));
    assert.not.ok(await client.get(CRD, '', 'httproutes.gateway.networking.k8s.io'), "ambit's CRDs go with --purge");
    assert.ok(await client.get(CRD, '', 'authorizationpolicies.security.istio.io'), "Istio's CRD stays");
  } finally {
    client.close();
    await t.close();
  }
});

test('the Helm chart on disk is the one the renderer makes (regenerate: ambit install --helm-chart deploy/helm/ambit)', () => {
  for (const [path, content] of chartFiles()) assert.is(readFileSync(join(projectRoot, 'deploy', 'helm', 'ambit', path), 'utf8'), content, path);
});

/** Helm's expansion of the few constructs the generator writes (helm itself is not installed here). */
function expand(template: string, v: InstallValues): string {
  return template
    .replace(/\{\{- if eq \.Values\.agent\.redirect "ebpf" \}\}\n([\s\S]*?)\{\{- else \}\}\n([\s\S]*?)\{\{- end \}\}\n/g, (_m, ebpf: string, other: string) => (v.agent.redirect === 'ebpf' ? ebpf : other))
    .replace(/\n *\{\{- toYaml \.Values\.([\w.]+) \| nindent (\d+) \}\}/g, (_m, path: string, n: string) => '\n' + stringify(valueAt(v, path)).trimEnd().split('\n').map((l) => ' '.repeat(Number(n)) + l).join('\n'))
    .replace(/\{\{ \.Values\.([\w.]+) \| quote \}\}/g, (_m, path: string) => JSON.stringify(String(valueAt(v, path))))
    .replace(/\{\{ \.Values\.([\w.]+) \}\}/g, (_m, path: string) => String(valueAt(v, path)));
}

test('the chart\'s templates, expanded with the values, are the rendered objects, in both redirect modes', () => {
  for (const redirect of ['iptables', 'ebpf'] as const) {
    const v = defaultValues();
    v.agent.redirect = redirect;
    v.controller.replicas = 3;
    const files = chartFiles();
    const fromChart = [...files].filter(([p]) => p.startsWith('templates/') && !p.includes('secret-')).flatMap(([, t]) => parseAllDocuments(expand(t, v)).map((d) => d.toJS() as unknown));
    const fromCrds = [...files].filter(([p]) => p.startsWith('crds/')).map(([, t]) => parseAllDocuments(t)[0]!.toJS() as unknown);
    const rendered = render(v);
    assert.equal(fromChart, rendered.filter((r) => r.kind !== 'Namespace' && r.kind !== 'CustomResourceDefinition'));
    assert.equal(fromCrds, rendered.filter((r) => r.kind === 'CustomResourceDefinition'));
  }
});

test.run();
