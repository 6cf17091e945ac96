import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { httpPolicyProblems } from '../../../../shared/policy/http/rules.js';

const fields = (spec: unknown) => httpPolicyProblems(spec).map((p) => p.field);

test('a policy ambit enforces as written has no problems', () => {
  const spec = {
    action: 'ALLOW',
    rules: [
      {
        from: [{ source: { principals: ['cluster.local/ns/front/sa/web'], requestPrincipals: ['*'], ipBlocks: ['10.0.0.0/8'] } }],
        to: [{ operation: { methods: ['GET'], paths: ['/api/{*}/items', '/static/*'], hosts: ['shop.example.com'], ports: ['8080'] } }],
        when: [{ key: 'request.headers[x-user]', values: ['alice'] }, { key: 'request.auth.claims[groups][0]', notValues: ['guest'] }],
      },
    ],
  };
  assert.equal(httpPolicyProblems(spec), []);
});

test('CUSTOM and unknown actions are refused at spec.action', () => {
  assert.equal(fields({ action: 'CUSTOM', provider: { name: 'opa' }, rules: [{}] }), ['spec.action']);
  assert.equal(fields({ action: 'Allow', rules: [{}] }), ['spec.action']);
});

test('bad values are named by their field path', () => {
  const spec = {
    rules: [
      {
        from: [{ source: { ipBlocks: ['10.0.0.0/8', 'fd00::/8'], principals: ['spiffe://cluster.local/ns/a/sa/b'] } }],
        to: [{ operation: { paths: ['/ok', '/a/{**}/{*}'], ports: ['70000'] } }],
      },
    ],
  };
  assert.equal(fields(spec), [
    'spec.rules[0].from[0].source.ipBlocks[1]',
    'spec.rules[0].from[0].source.principals[0]',
    'spec.rules[0].to[0].operation.paths[1]',
    'spec.rules[0].to[0].operation.ports[0]',
  ]);
});

test('unknown and unsupported condition keys, and conditions without values, are problems', () => {
  const spec = {
    rules: [
      {
        when: [
          { key: 'request.colour', values: ['red'] },
          { key: 'experimental.envoy.filters.network.mysql_proxy[db.table]', values: ['[update]'] },
          { key: 'destination.labels[app]', values: ['x'] },
          { key: 'source.ip' },
          { key: 'request.headers', values: ['x'] },
        ],
      },
    ],
  };
  assert.equal(fields(spec), ['spec.rules[0].when[0].key', 'spec.rules[0].when[1].key', 'spec.rules[0].when[2].key', 'spec.rules[0].when[3]', 'spec.rules[0].when[4].key']);
});

test('Istio’s structural refusals: empty source, serviceAccounts with principals, DENY without rules', () => {
  assert.equal(fields({ rules: [{ from: [{ source: {} }] }] }), ['spec.rules[0].from[0].source']);
  assert.equal(fields({ rules: [{ from: [{ source: { serviceAccounts: ['web'], namespaces: ['a'] } }] }] }), ['spec.rules[0].from[0].source']);
  assert.equal(fields({ action: 'DENY' }), ['spec.rules']);
  assert.equal(fields({ rules: [{ to: [{ operation: { verbs: ['GET'] } }] }] }), ['spec.rules[0].to[0].operation.verbs']);
});

test.run();
