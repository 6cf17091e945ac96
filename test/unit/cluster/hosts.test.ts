// The local cluster's stand-in for cluster DNS: each pod's hosts file, bind-mounted into the pod, is
// written in place (same inode), never left empty while a lookup may read it, and not touched at all
// when its text is unchanged (a controller restart writes every pod's file again).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync, utimesSync } from 'node:fs';
import { hostsFile, removeHosts, writeHosts } from '../../../cluster/kubelet/pods.js';

const netns = `ambit-t-hosts-${process.pid}`;

test.after(() => removeHosts(netns));

test('the same text is not written again; a new one is written over the old in the same file', () => {
  writeHosts(netns, '10.96.0.10 web web.shop\n10.96.0.11 echo echo.shop\n');
  const first = statSync(hostsFile(netns));
  // A time no write could leave, so a write shows whatever the clock's granularity.
  utimesSync(hostsFile(netns), 0, 0);
  writeHosts(netns, '10.96.0.10 web web.shop\n10.96.0.11 echo echo.shop\n');
  assert.is(statSync(hostsFile(netns)).mtimeMs, 0, 'unchanged text left alone');
  writeHosts(netns, '10.96.0.10 web web.shop\n');
  const shorter = statSync(hostsFile(netns));
  assert.is(shorter.ino, first.ino, 'the inode pods have bind-mounted');
  assert.is(readFileSync(hostsFile(netns), 'utf8'), '10.96.0.10 web web.shop\n', 'cut to the new length');
});

test.run();
