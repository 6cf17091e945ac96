import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { contains, host, overlaps, parseCidr, subnet } from '../../../shared/net/ipv4.js';

test('a CIDR is normalised to its network address', () => {
  assert.is(parseCidr('10.244.3.7/16').text, '10.244.0.0/16');
});

test('host and subnet number addresses inside a block', () => {
  const pods = parseCidr('10.244.0.0/16');
  assert.is(subnet(pods, 24, 2).text, '10.244.2.0/24');
  assert.is(host(subnet(pods, 24, 2), 1), '10.244.2.1');
  assert.throws(() => subnet(pods, 24, 256), /no \/24 subnet number 256/);
});

test('membership and overlap', () => {
  const svc = parseCidr('10.96.0.0/16');
  assert.ok(contains(svc, '10.96.255.254'));
  assert.not.ok(contains(svc, '10.97.0.1'));
  assert.ok(overlaps(parseCidr('10.0.0.0/8'), svc));
  assert.not.ok(overlaps(parseCidr('10.244.0.0/16'), svc));
});

test('bad addresses are refused by name', () => {
  assert.throws(() => parseCidr('10.300.0.0/16'), /10.300.0.0 is not an IPv4 address/);
  assert.throws(() => parseCidr('10.0.0.0'), /not an IPv4 CIDR/);
});

test.run();
