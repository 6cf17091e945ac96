// The agent's CNI installer on a configuration directory this test makes: ambit's entry goes last in
// the primary conflist (the first by name), a single-plugin .conf becomes a conflist, a primary
// plugin rewriting its file gets the entry put back, and uninstalling leaves the file as it was
// before and no executable behind. A half-written file is never touched.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { builtPlugin, CniInstaller, primaryConfFile, uninstallCni } from '../../../agent/cni/installer.js';
import { pluginEntry } from '../../../agent/cni/protocol.js';
import { ensurePluginBuilt } from '../../helpers/cni.js';

const dir = `/tmp/ambit-t-cni-install-${process.pid}`;
const confDir = join(dir, 'net.d');
const binDir = join(dir, 'bin');
const socket = join(dir, 'run', 'cni.sock');
const log = pino({ level: 'silent' });
const entry = pluginEntry(socket);

const bridge = { cniVersion: '1.0.0', name: 'k8s-pod-network', plugins: [{ type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', ranges: [[{ subnet: '10.125.0.0/24' }]] } }, { type: 'portmap', capabilities: { portMappings: true } }] };
const read = (file: string) => JSON.parse(readFileSync(join(confDir, file), 'utf8')) as typeof bridge & { plugins: Record<string, unknown>[] };
const types = (file: string) => read(file).plugins.map((p) => p.type);

test.before(() => ensurePluginBuilt());

/** The next insertion, or the reason the installer is waiting instead (which fails the test, never hangs it). */
const nextInstall = (installer: CniInstaller) =>
  new Promise<string>((resolve, reject) => {
    const done = () => {
      installer.off('installed', onInstalled);
      installer.off('waiting', onWaiting);
    };
    const onInstalled = (file: string) => (done(), resolve(file));
    const onWaiting = (reason: string) => (done(), reject(new Error(reason)));
    installer.on('installed', onInstalled);
    installer.on('waiting', onWaiting);
  });

test.before.each(() => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(confDir, { recursive: true });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('the entry goes last in the first configuration by name, and the executable into the bin dir', () => {
  writeFileSync(join(confDir, '10-bridge.conflist'), JSON.stringify(bridge));
  writeFileSync(join(confDir, '99-other.conflist'), JSON.stringify({ ...bridge, name: 'other' }));
  const installer = new CniInstaller({ confDir, binDir, entry, log });
  assert.is(installer.ensure(), join(confDir, '10-bridge.conflist'));
  assert.equal(types('10-bridge.conflist'), ['bridge', 'portmap', 'ambit-cni']);
  assert.equal(read('10-bridge.conflist').plugins[2], { type: 'ambit-cni', socket, timeout_seconds: 20, exclude_namespaces: ['kube-system', 'ambit-system'] });
  assert.equal(types('99-other.conflist'), ['bridge', 'portmap'], 'only the primary is changed');
  const installed = join(binDir, 'ambit-cni');
  assert.ok(readFileSync(installed).equals(readFileSync(builtPlugin)));
  assert.is(statSync(installed).mode & 0o111, 0o111, 'executable');
  // Nothing to do the second time: the file is not rewritten.
  const before = statSync(join(confDir, '10-bridge.conflist')).mtimeMs;
  installer.ensure();
  assert.is(statSync(join(confDir, '10-bridge.conflist')).mtimeMs, before);
  assert.equal(types('10-bridge.conflist'), ['bridge', 'portmap', 'ambit-cni']);
  assert.equal(readdirSync(confDir).sort(), ['10-bridge.conflist', '99-other.conflist'], 'no temporary file left');
});

test('a single-plugin .conf becomes a .conflist with the plugin first and ambit after it', () => {
  const single = { cniVersion: '0.4.0', name: 'flat', type: 'bridge', bridge: 'cni0', ipam: { type: 'host-local', subnet: '10.125.1.0/24' } };
  writeFileSync(join(confDir, '10-flat.conf'), JSON.stringify(single));
  const installer = new CniInstaller({ confDir, binDir, entry, log });
  assert.is(installer.ensure(), join(confDir, '10-flat.conflist'));
  assert.not.ok(existsSync(join(confDir, '10-flat.conf')), 'the .conf would otherwise stay first');
  const list = read('10-flat.conflist');
  assert.is(list.cniVersion, '0.4.0');
  assert.is(list.name, 'flat');
  assert.equal(list.plugins[0], single);
  assert.is(list.plugins[1]!.type, 'ambit-cni');
});

test('when the primary plugin rewrites its file without the entry, the watching installer puts it back', async () => {
  const path = join(confDir, '10-bridge.conflist');
  writeFileSync(path, JSON.stringify(bridge));
  const installer = new CniInstaller({ confDir, binDir, entry, log });
  try {
    const first = nextInstall(installer);
    installer.start();
    assert.is(await first, path);
    assert.equal(types('10-bridge.conflist'), ['bridge', 'portmap', 'ambit-cni']);
    // The primary plugin's own installer writes its configuration again, as calico's and flannel's do.
    const again = nextInstall(installer);
    writeFileSync(path, JSON.stringify({ ...bridge, plugins: [bridge.plugins[0]] }));
    assert.is(await again, path);
    assert.equal(types('10-bridge.conflist'), ['bridge', 'ambit-cni']);
  } finally {
    installer.stop();
  }
});

test('a directory with no configuration yet, or a primary that is not JSON, is waited on and left untouched', async () => {
  const installer = new CniInstaller({ confDir, binDir, entry, log });
  const reasons: string[] = [];
  installer.on('waiting', (r) => reasons.push(r));
  assert.is(installer.ensure(), undefined);
  assert.match(reasons[0]!, /no CNI configuration in .* yet/);
  const half = '{"cniVersion": "1.0.0", "name": "k8s", "plugins": [';
  writeFileSync(join(confDir, '05-half.conflist'), half);
  assert.is(installer.ensure(), undefined);
  assert.match(reasons[1]!, /05-half.conflist cannot be read/);
  assert.is(readFileSync(join(confDir, '05-half.conflist'), 'utf8'), half);
});

test('uninstalling takes the entry out of the conflist, and removes the executable and the list of enrolled namespaces', () => {
  const path = join(confDir, '10-bridge.conflist');
  writeFileSync(path, JSON.stringify(bridge));
  new CniInstaller({ confDir, binDir, entry, log }).ensure();
  mkdirSync(join(dir, 'run'));
  writeFileSync(join(dir, 'run', 'enrolled-namespaces'), 'shop\n');
  const removed = uninstallCni({ confDir, binDir, socket });
  assert.equal(removed.sort(), [path, join(binDir, 'ambit-cni'), join(dir, 'run', 'enrolled-namespaces')].sort());
  assert.equal(read('10-bridge.conflist'), bridge);
  assert.not.ok(existsSync(join(binDir, 'ambit-cni')));
  assert.equal(uninstallCni({ confDir, binDir, socket }), [], 'a second uninstall finds nothing');
});

test('the primary configuration is the first by name among .conf, .conflist and .json', () => {
  for (const f of ['20-b.json', '15-a.conflist', '30-c.conf', 'README', '10-a.conflist.tmp-1']) writeFileSync(join(confDir, f), '{}');
  assert.is(primaryConfFile(confDir), '15-a.conflist');
  assert.is(primaryConfFile(join(dir, 'absent')), undefined);
});

test.run();
