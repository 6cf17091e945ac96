// CustomResourceDefinitions on the local API server: a CRD is checked as Kubernetes checks one (422
// naming the field), established, and then serves its resources: REST, discovery, OpenAPI, schema
// validation, the status subresource, printer columns and kubectl; deleting it deletes its objects.
// The mesh's kinds are served the same way, by the CRDs the cluster installs at start.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { installMeshCrds, meshCrds } from '../../../cluster/apiserver/mesh-crds.js';
import { ns, startApi, type TestApi } from './helpers.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const tableAccept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
const crds = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions';
const widgets = '/apis/example.com/v1/namespaces/shop/widgets';

function widgetCrd(o: { name?: string; versions?: unknown[]; group?: string; kind?: string; conversion?: unknown } = {}) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: o.name ?? 'widgets.example.com' },
    spec: {
      group: o.group ?? 'example.com',
      names: { plural: 'widgets', singular: 'widget', kind: o.kind ?? 'Widget', shortNames: ['wd'], categories: ['toys'] },
      scope: 'Namespaced',
      ...(o.conversion ? { conversion: o.conversion } : {}),
      versions: o.versions ?? [
        {
          name: 'v1',
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Replicas', type: 'integer', jsonPath: '.spec.replicas' },
            { name: 'Size', type: 'string', jsonPath: '.spec.size' },
            { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'A Widget is a test kind.',
              properties: {
                spec: {
                  type: 'object',
                  required: ['replicas'],
                  properties: {
                    replicas: { type: 'integer', minimum: 1, maximum: 10, description: 'How many widgets.' },
                    size: { type: 'string', enum: ['small', 'large'] },
                    code: { type: 'string', pattern: '^[A-Z]{3}$' },
                    tags: { type: 'array', maxItems: 2, items: { type: 'string' }, 'x-kubernetes-list-type': 'set' },
                    note: { type: 'string', nullable: true },
                    port: { 'x-kubernetes-int-or-string': true },
                    created: { type: 'string', format: 'date-time' },
                    extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
                    template: { type: 'object', 'x-kubernetes-embedded-resource': true, 'x-kubernetes-preserve-unknown-fields': true },
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    ports: { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'], items: { type: 'object', required: ['name'], properties: { name: { type: 'string' }, port: { type: 'integer' } } } },
                    owners: { type: 'array', items: { type: 'string' } },
                  },
                },
                status: { type: 'object', properties: { conditions: { type: 'array', items: { type: 'object', properties: { type: { type: 'string' }, status: { type: 'string' } } } } } },
              },
            },
          },
        },
      ],
    },
  };
}

const widget = (name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name, namespace: 'shop' }, spec, ...extra });

let t: TestApi;
test.before.each(async () => {
  t = await startApi();
  await t.call('POST', '/api/v1/namespaces', { body: ns('shop') });
});
test.after.each(() => t.close());

test('a CRD is established and its resources are served: discovery, REST, list and watch', async () => {
  const made = await t.call('POST', crds, { body: widgetCrd() });
  assert.is(made.status, 201, made.text);
  const conditions = Object.fromEntries((made.json.status.conditions as { type: string; status: string }[]).map((c) => [c.type, c.status]));
  assert.equal(conditions, { NamesAccepted: 'True', Established: 'True' });
  assert.equal(made.json.status.acceptedNames, { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList', shortNames: ['wd'], categories: ['toys'] });

  const list = await t.call('GET', '/apis/example.com/v1');
  assert.is(list.status, 200, list.text);
  assert.equal(list.json.resources.map((r: { name: string }) => r.name), ['widgets', 'widgets/status']);
  const groups = await t.call('GET', '/apis');
  assert.ok(groups.json.groups.some((g: { name: string }) => g.name === 'example.com'));

  const w = await t.watch(`${widgets}?watch=1`);
  const created = await t.call('POST', widgets, { body: widget('one', { replicas: 3, size: 'small', port: 'http', note: null, extra: { anything: { goes: 1 } }, created: '2026-12-02T10:00:00Z' }) });
  assert.is(created.status, 201, created.text);
  assert.is(created.json.metadata.generation, 1);
  const event = await w.next();
  assert.is(event.type, 'ADDED');
  assert.is(event.object.metadata.name, 'one');
  w.abort();
  const got = await t.call('GET', `${widgets}/one`);
  assert.equal(got.json.spec.extra, { anything: { goes: 1 } });
  const all = await t.call('GET', '/apis/example.com/v1/widgets');
  assert.is(all.json.kind, 'WidgetList');
  assert.equal(all.json.items.map((x: { metadata: { name: string } }) => x.metadata.name), ['one']);
  assert.is((await t.call('PUT', `${widgets}/one`, { body: { ...got.json, spec: { ...got.json.spec, replicas: 4 } } })).json.metadata.generation, 2);
});

test('a CRD is refused with 422 naming the field: name, versions, structure, group, kind, conversion', async () => {
  const cases: [unknown, string][] = [
    [widgetCrd({ name: 'gadgets.example.com' }), 'metadata.name'],
    [widgetCrd({ group: 'example' }), 'spec.group'],
    [widgetCrd({ versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object' } } }, { name: 'v2', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object' } } }] }), 'spec.versions'],
    [widgetCrd({ versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { properties: { a: { type: 'string' } } } } } } }] }), 'spec.versions[0].schema.openAPIV3Schema.properties[spec].type'],
    [widgetCrd({ versions: [{ name: 'v1', served: true, storage: true }] }), 'spec.versions[0].schema.openAPIV3Schema'],
    [widgetCrd({ kind: 'Pod' }), 'spec.names.kind'],
    [widgetCrd({ conversion: { strategy: 'Webhook' } }), 'spec.conversion.strategy'],
    [widgetCrd({ versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'string', pattern: '([' } } } } }] }), 'spec.versions[0].schema.openAPIV3Schema'],
    [widgetCrd({ versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object' } }, additionalPrinterColumns: [{ name: 'X', type: 'string', jsonPath: '.spec[' }] }] }), 'spec.versions[0].additionalPrinterColumns[0].jsonPath'],
  ];
  for (const [body, field] of cases) {
    const r = await t.call('POST', crds, { body });
    assert.is(r.status, 422, `${field}: ${r.text}`);
    assert.ok((r.json.details.causes as { field: string }[]).some((c) => c.field === field), `${field} named in ${r.text}`);
  }
  assert.equal((await t.call('GET', crds)).json.items.map((c: { metadata: { name: string } }) => c.metadata.name).filter((n: string) => n.endsWith('example.com')), [], 'nothing stored');
  assert.is((await t.call('GET', '/apis/example.com/v1')).status, 404);
});

test("objects are checked against the version's schema: types, required, enum, pattern, bounds, format, unknown fields", async () => {
  await t.call('POST', crds, { body: widgetCrd() });
  const cases: [Record<string, unknown>, string | string[]][] = [
    [{ replicas: 'three' }, 'spec.replicas'],
    [{ size: 'small' }, 'spec.replicas'],
    [{ replicas: 11 }, 'spec.replicas'],
    [{ replicas: 1, size: 'medium' }, 'spec.size'],
    [{ replicas: 1, code: 'abc' }, 'spec.code'],
    [{ replicas: 1, tags: ['a', 'b', 'c'] }, 'spec.tags'],
    [{ replicas: 1, port: 1.5 }, 'spec.port'],
    [{ replicas: 1, created: 'yesterday' }, 'spec.created'],
    [{ replicas: 1, colour: 'red' }, 'spec.colour'],
    [{ replicas: 1, template: { metadata: {} } }, ['spec.template.apiVersion', 'spec.template.kind']],
    [{ replicas: 1, labels: { a: 1 } }, 'spec.labels.a'],
  ];
  for (const [spec, field] of cases) {
    const r = await t.call('POST', `${widgets}?fieldValidation=Strict`, { body: widget('bad', spec) });
    assert.is(r.status, 422, `${JSON.stringify(spec)}: ${r.text}`);
    assert.equal((r.json.details.causes as { field: string }[]).map((c) => c.field), Array.isArray(field) ? field : [field], r.text);
  }
  assert.is((await t.call('GET', `${widgets}/bad`)).status, 404, 'nothing stored');
  const ok = await t.call('POST', widgets, { body: widget('ok', { replicas: 1, port: 8080, template: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } }, labels: { a: 'b' } }) });
  assert.is(ok.status, 201, ok.text);
  const top = await t.call('POST', widgets, { body: { ...widget('top', { replicas: 1 }), colour: 'red' } });
  assert.is(top.status, 422);
  assert.match(top.text, /colour: field not declared in schema/);
  const noNs = await t.call('POST', '/apis/example.com/v1/namespaces/nowhere/widgets', { body: { ...widget('x', { replicas: 1 }), metadata: { name: 'x', namespace: 'nowhere' } } });
  assert.is(noNs.status, 404, 'a missing namespace is 404, as for built-in kinds');
});

test('with the status subresource, status is written only through /status and kept across updates', async () => {
  await t.call('POST', crds, { body: widgetCrd() });
  const made = await t.call('POST', widgets, { body: widget('one', { replicas: 2 }, { status: { conditions: [{ type: 'Ready', status: 'True' }] } }) });
  assert.is(made.status, 201, made.text);
  assert.is(made.json.status, undefined, 'status in a create is dropped');
  const set = await t.call('PATCH', `${widgets}/one/status`, { body: { status: { conditions: [{ type: 'Ready', status: 'True' }] } }, contentType: 'application/merge-patch+json' });
  assert.is(set.status, 200, set.text);
  const current = (await t.call('GET', `${widgets}/one`)).json;
  const updated = await t.call('PUT', `${widgets}/one`, { body: { ...current, spec: { replicas: 5 }, status: { conditions: [] } } });
  assert.is(updated.status, 200, updated.text);
  assert.equal(updated.json.status, { conditions: [{ type: 'Ready', status: 'True' }] }, 'an update of the object leaves status alone');
  assert.is(updated.json.spec.replicas, 5);
  const bad = await t.call('PATCH', `${widgets}/one/status`, { body: { status: { conditions: 'yes' } }, contentType: 'application/merge-patch+json' });
  assert.is(bad.status, 422, 'status is checked against the schema too');
});

test('Table output has the printer columns; kubectl get crd and get widgets print them', async () => {
  await t.call('POST', crds, { body: widgetCrd() });
  await t.call('POST', widgets, { body: widget('one', { replicas: 3, size: 'large' }) });
  await t.call('PATCH', `${widgets}/one/status`, { body: { status: { conditions: [{ type: 'Ready', status: 'True' }] } }, contentType: 'application/merge-patch+json' });
  const table = await t.call('GET', widgets, { accept: tableAccept });
  assert.equal(table.json.columnDefinitions.map((c: { name: string }) => c.name), ['Name', 'Replicas', 'Size', 'Ready', 'Age']);
  assert.equal(table.json.rows[0].cells.slice(0, 4), ['one', 3, 'large', 'True']);
  assert.match(table.json.rows[0].cells[4], /^\d+s$/);

  const crdList = await t.kubectl('get', 'crd');
  assert.is(crdList.code, 0, crdList.stderr);
  assert.match(crdList.stdout, /^NAME\s+CREATED AT\n/);
  assert.match(crdList.stdout, /\nwidgets\.example\.com\s+\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\n/);
  assert.match(crdList.stdout, /\nauthorizationpolicies\.security\.istio\.io\s/);
  const got = await t.kubectl('get', 'wd', '-n', 'shop');
  assert.is(got.code, 0, got.stderr);
  assert.match(got.stdout, /^NAME\s+REPLICAS\s+SIZE\s+READY\s+AGE\none\s+3\s+large\s+True\s+\d+s\n$/);
  const explain = await t.kubectl('explain', 'widgets.spec.replicas');
  assert.is(explain.code, 0, explain.stderr);
  assert.match(explain.stdout, /How many widgets\./);
});

test('kubectl apply of a CRD and an object of it; an unknown field is refused naming it (Strict)', async () => {
  const file = join(t.dir, 'widgets.yaml');
  writeFileSync(file, JSON.stringify(widgetCrd()));
  const crd = await t.kubectl('apply', '-f', file);
  assert.is(crd.code, 0, crd.stderr);
  const obj = join(t.dir, 'one.json');
  writeFileSync(obj, JSON.stringify(widget('one', { replicas: 2 })));
  const applied = await t.kubectl('apply', '-f', obj);
  assert.is(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /widget\.example\.com\/one created/);
  writeFileSync(obj, JSON.stringify(widget('one', { replicas: 2, colour: 'red' })));
  const refused = await t.kubectl('apply', '-f', obj);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /spec\.colour/);
  const ssa = await t.kubectl('apply', '--server-side', '-f', join(t.dir, 'one.json'));
  assert.is(ssa.code, 1, 'server-side apply refuses it too');
  assert.match(ssa.stderr, /spec\.colour/);
});

test('server-side apply merges the lists the schema marks as map or set, and keeps other lists atomic', async () => {
  await t.call('POST', crds, { body: widgetCrd() });
  const apply = (manager: string, spec: Record<string, unknown>) =>
    t.call('PATCH', `${widgets}/one?fieldManager=${manager}`, { body: widget('one', spec), contentType: 'application/apply-patch+yaml' });
  assert.is((await apply('alice', { replicas: 1, ports: [{ name: 'http', port: 80 }], tags: ['a'], owners: ['alice'] })).status, 201);
  const bob = await apply('bob', { replicas: 1, ports: [{ name: 'grpc', port: 90 }], tags: ['b'] });
  assert.is(bob.status, 200, bob.text);
  assert.equal(bob.json.spec.ports, [{ name: 'http', port: 80 }, { name: 'grpc', port: 90 }], 'a list-type map merges by its key');
  assert.equal(bob.json.spec.tags, ['a', 'b'], 'a list-type set merges');
  const conflict = await apply('bob', { replicas: 1, ports: [{ name: 'grpc', port: 90 }], tags: ['b'], owners: ['bob'] });
  assert.is(conflict.status, 409, 'a list without a list type is atomic: owned by alice');
  assert.match(conflict.text, /\.spec\.owners/);
});

test('a CRD of two versions serves both (conversion None: the same fields under each apiVersion), stored in the storage version', async () => {
  const schema = { openAPIV3Schema: { type: 'object', properties: { spec: { type: 'object', properties: { replicas: { type: 'integer' } } } } } };
  const body = widgetCrd({ versions: [{ name: 'v1beta1', served: true, storage: false, schema }, { name: 'v1', served: true, storage: true, schema }] });
  assert.is((await t.call('POST', crds, { body })).status, 201);
  const made = await t.call('POST', '/apis/example.com/v1beta1/namespaces/shop/widgets', { body: { ...widget('one', { replicas: 2 }), apiVersion: 'example.com/v1beta1' } });
  assert.is(made.status, 201, made.text);
  assert.is(made.json.apiVersion, 'example.com/v1beta1');
  assert.is(t.store.get('Widget', 'shop', 'one')!.apiVersion, 'example.com/v1');
  assert.is((await t.call('GET', `${widgets}/one`)).json.apiVersion, 'example.com/v1');
  assert.equal((await t.call('GET', '/apis/example.com/v1beta1/widgets')).json.items.map((w: { apiVersion: string }) => w.apiVersion), ['example.com/v1beta1']);
  assert.is((await t.call('GET', '/apis/example.com')).json.preferredVersion.version, 'v1', 'GA is preferred over beta');
});

test('a CRD whose names another CRD of its group took is stored but not established, and not served', async () => {
  assert.is((await t.call('POST', crds, { body: widgetCrd() })).status, 201);
  const gizmo = widgetCrd({ name: 'gizmos.example.com', kind: 'Gizmo' });
  gizmo.spec.names = { ...gizmo.spec.names, plural: 'gizmos', singular: 'gizmo', kind: 'Gizmo' };
  const r = await t.call('POST', crds, { body: gizmo });
  assert.is(r.status, 201, r.text);
  const names = r.json.status.conditions.find((c: { type: string }) => c.type === 'NamesAccepted');
  assert.is(names.status, 'False');
  assert.match(names.message, /"wd" is already in use by widgets\.example\.com/);
  assert.is(r.json.status.conditions.find((c: { type: string }) => c.type === 'Established').status, 'False');
  assert.is((await t.call('GET', '/apis/example.com/v1/namespaces/shop/gizmos')).status, 404);
});

test('CEL rules (x-kubernetes-validations) are evaluated: a broken rule refuses the object with its message, a transition rule runs on update', async () => {
  const body = widgetCrd();
  const schema = (body.spec.versions[0] as { schema: { openAPIV3Schema: Record<string, unknown> & { properties: Record<string, Record<string, unknown>> } } }).schema.openAPIV3Schema;
  schema['x-kubernetes-validations'] = [{ rule: 'self.spec.replicas < 5', message: 'at most 4 replicas' }];
  // An immutable field, as Kubernetes' CRDs say it: a transition rule, which create skips.
  (schema.properties.spec!.properties as Record<string, Record<string, unknown>>).size!['x-kubernetes-validations'] = [{ rule: 'self == oldSelf', message: 'size is immutable' }];
  const r = await t.call('POST', crds, { body });
  assert.is(r.status, 201, r.text);
  assert.is(r.headers.warning, undefined, 'every rule is evaluated, so nothing to warn about');
  const many = await t.call('POST', widgets, { body: widget('many', { replicas: 7 }) });
  assert.is(many.status, 422, many.text);
  assert.equal(many.json.details.causes, [{ reason: 'FieldValueInvalid', field: '', message: 'Invalid value: "object": at most 4 replicas' }]);
  assert.is(t.store.get('Widget', 'shop', 'many'), undefined);

  const created = await t.call('POST', widgets, { body: widget('small', { replicas: 2, size: 'small' }) });
  assert.is(created.status, 201, created.text);
  const changed = await t.call('PUT', `${widgets}/small`, { body: { ...created.json, spec: { replicas: 2, size: 'large' } } });
  assert.is(changed.status, 422, changed.text);
  assert.equal(changed.json.details.causes, [{ reason: 'FieldValueInvalid', field: 'spec.size', message: 'Invalid value: "string": size is immutable' }]);
  const same = await t.call('PUT', `${widgets}/small`, { body: { ...created.json, spec: { replicas: 3, size: 'small' } } });
  assert.is(same.status, 200, same.text);
});

test("a CEL rule's messageExpression, fieldPath and reason shape the cause, as in Kubernetes", async () => {
  const body = widgetCrd();
  const schema = (body.spec.versions[0] as { schema: { openAPIV3Schema: Record<string, unknown> } }).schema.openAPIV3Schema;
  schema['x-kubernetes-validations'] = [{ rule: 'self.spec.replicas < 5', messageExpression: "'replicas ' + string(self.spec.replicas) + ' is too many'", fieldPath: '.spec.replicas', reason: 'FieldValueForbidden' }];
  assert.is((await t.call('POST', crds, { body })).status, 201);
  const r = await t.call('POST', widgets, { body: widget('many', { replicas: 7 }) });
  assert.is(r.status, 422, r.text);
  assert.equal(r.json.details.causes, [{ reason: 'FieldValueForbidden', field: 'spec.replicas', message: 'Forbidden: replicas 7 is too many' }]);
});

test('a CEL rule that does not compile refuses its CRD; one calling a function ambit lacks is stored, skipped and named in a warning', async () => {
  const body = widgetCrd();
  const schema = (body.spec.versions[0] as { schema: { openAPIV3Schema: Record<string, unknown> } }).schema.openAPIV3Schema;
  schema['x-kubernetes-validations'] = [{ rule: 'self.spec.replicas <' }];
  const bad = await t.call('POST', crds, { body });
  assert.is(bad.status, 422, bad.text);
  assert.is(bad.json.details.causes[0].field, 'spec.versions[0].schema.openAPIV3Schema.x-kubernetes-validations');
  assert.match(bad.json.details.causes[0].message, /compilation failed/);
  schema['x-kubernetes-validations'] = [{ rule: "quantity('1Gi').isGreaterThan(quantity('1Mi'))" }, { rule: 'self.spec.replicas < 5' }];
  const r = await t.call('POST', crds, { body });
  assert.is(r.status, 201, r.text);
  assert.match(String(r.headers.warning), /rule at \. is not evaluated by the local API server \(calls isGreaterThan, quantity, which the local API server's CEL library does not have\)/);
  // The rules it can evaluate still hold.
  assert.is((await t.call('POST', widgets, { body: widget('many', { replicas: 7 }) })).status, 422);
  assert.is((await t.call('POST', widgets, { body: widget('few', { replicas: 2 }) })).status, 201);
});

test('defaults of the schema are applied on create and update; a null the schema does not allow is dropped', async () => {
  const body = widgetCrd();
  const spec = (body.spec.versions[0] as { schema: { openAPIV3Schema: { properties: { spec: { properties: Record<string, Record<string, unknown>> } } } } }).schema.openAPIV3Schema.properties.spec;
  spec.properties.size!.default = 'small';
  (spec.properties.ports!.items as { properties: Record<string, Record<string, unknown>> }).properties.port!.default = 80;
  assert.is((await t.call('POST', crds, { body })).status, 201);
  const r = await t.call('POST', widgets, { body: widget('w', { replicas: 1, ports: [{ name: 'http' }], owners: null }) });
  assert.is(r.status, 201, r.text);
  assert.equal(r.json.spec, { replicas: 1, size: 'small', ports: [{ name: 'http', port: 80 }] });
  const u = await t.call('PUT', `${widgets}/w`, { body: { ...r.json, spec: { replicas: 2 } } });
  assert.is(u.status, 200, u.text);
  assert.equal(u.json.spec, { replicas: 2, size: 'small' });
});

test('x-kubernetes-list-type set and map refuse duplicates, naming the item', async () => {
  assert.is((await t.call('POST', crds, { body: widgetCrd() })).status, 201);
  const r = await t.call('POST', widgets, { body: widget('dup', { replicas: 1, tags: ['a', 'a'], ports: [{ name: 'http', port: 80 }, { name: 'http', port: 81 }] }) });
  assert.is(r.status, 422, r.text);
  assert.equal(r.json.details.causes, [
    { reason: 'FieldValueDuplicate', field: 'spec.tags[1]', message: 'Duplicate value: "a"' },
    { reason: 'FieldValueDuplicate', field: 'spec.ports[1]', message: 'Duplicate value: {"name":"http"}' },
  ]);
});

test('deleting a CRD deletes its objects and stops serving them', async () => {
  await t.call('POST', crds, { body: widgetCrd() });
  await t.call('POST', widgets, { body: widget('one', { replicas: 1 }) });
  await t.call('POST', widgets, { body: widget('two', { replicas: 1 }) });
  assert.is(t.store.list('Widget').length, 2);
  const r = await t.call('DELETE', `${crds}/widgets.example.com`);
  assert.is(r.status, 200, r.text);
  assert.is(t.store.list('Widget').length, 0);
  assert.is((await t.call('GET', widgets)).status, 404);
  assert.is((await t.call('GET', '/apis/example.com/v1')).status, 404);
  // The same CRD again serves an empty collection.
  assert.is((await t.call('POST', crds, { body: widgetCrd() })).status, 201);
  assert.equal((await t.call('GET', widgets)).json.items, []);
});

test("the mesh's kinds are served by the CRDs installed at start, never overwriting one already there", async () => {
  const names = meshCrds().map((c) => c.metadata.name);
  assert.is(names.length, 10);
  for (const name of names) {
    const r = await t.call('GET', `${crds}/${name}`);
    assert.is(r.status, 200, name);
  }
  const ap = { apiVersion: 'security.istio.io/v1', kind: 'AuthorizationPolicy', metadata: { name: 'deny', namespace: 'shop' }, spec: { action: 'DENY', rules: [{ from: [{ source: { namespaces: ['bad'] } }] }] } };
  assert.is((await t.call('POST', '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies', { body: ap })).status, 201);
  const wrong = await t.call('POST', '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies', { body: { ...ap, metadata: { name: 'x', namespace: 'shop' }, spec: { action: 'PERMIT' } } });
  assert.is(wrong.status, 422);
  assert.equal(wrong.json.details.causes.map((c: { field: string }) => c.field), ['spec.action']);
  // TrustBundle (cluster-scoped, no status subresource) is written through its CRD by the controller's leader.
  const tb = await t.call('POST', '/apis/ambit.dev/v1alpha1/trustbundles', { body: { apiVersion: 'ambit.dev/v1alpha1', kind: 'TrustBundle', metadata: { name: 'cluster.local' }, spec: { roots: [] } } });
  assert.is(tb.status, 422, tb.text);
  assert.equal(tb.json.details.causes.map((c: { field: string }) => c.field), ['spec.roots']);

  // An edited CRD is kept as it is when the cluster installs again (as on the next `ambit up`).
  const current = (await t.call('GET', `${crds}/authorizationpolicies.security.istio.io`)).json;
  current.metadata.labels = { ...current.metadata.labels, edited: 'yes' };
  assert.is((await t.call('PUT', `${crds}/authorizationpolicies.security.istio.io`, { body: current })).status, 200);
  assert.equal(installMeshCrds(t.store), []);
  assert.is(t.store.get('CustomResourceDefinition', '', 'authorizationpolicies.security.istio.io')!.metadata.labels!.edited, 'yes');
  // Deleting it deletes the policies and stops serving the kind; installing again brings it back.
  assert.is((await t.call('DELETE', `${crds}/authorizationpolicies.security.istio.io`)).status, 200);
  assert.is(t.store.list('AuthorizationPolicy').length, 0);
  assert.is((await t.call('GET', '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies')).status, 404);
  assert.equal(installMeshCrds(t.store), ['authorizationpolicies.security.istio.io']);
  assert.is((await t.call('GET', '/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies')).status, 200);
});

test.run();
