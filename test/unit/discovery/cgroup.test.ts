// A pod's UID and cgroup read from a process's cgroup path, in both kubelet cgroup drivers' layouts.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { podOfCgroupPath, podUidOfSegment } from '../../../agent/discovery/cgroup.js';

const uid = '6f1c2a3b-1111-4222-8333-444455556666';
const under = uid.replaceAll('-', '_');

test('the systemd layout: guaranteed pods below the root, the others below their QoS slice', () => {
  assert.equal(podOfCgroupPath(`/kubepods.slice/kubepods-pod${under}.slice/cri-containerd-abc.scope`, '/kubepods.slice'), { uid, cgroup: `/kubepods.slice/kubepods-pod${under}.slice` });
  const besteffort = `/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${under}.slice`;
  assert.equal(podOfCgroupPath(`${besteffort}/cri-containerd-abc.scope`, '/kubepods.slice'), { uid, cgroup: besteffort });
  // A root elsewhere (the local cluster puts each node's below its own), given with a trailing slash.
  assert.equal(podOfCgroupPath(`/ambit/node-1/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under}.slice/x`, '/ambit/node-1/kubepods.slice/'), { uid, cgroup: `/ambit/node-1/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${under}.slice` });
});

test('the cgroupfs layout', () => {
  assert.equal(podOfCgroupPath(`/kubepods/burstable/pod${uid}/0123abcd`, '/kubepods'), { uid, cgroup: `/kubepods/burstable/pod${uid}` });
  assert.equal(podOfCgroupPath(`/kubepods/pod${uid}/0123abcd`, '/kubepods'), { uid, cgroup: `/kubepods/pod${uid}` });
});

test('what is not a pod below the root is not one', () => {
  assert.is(podOfCgroupPath('/kubepods.slice/kubepods-besteffort.slice', '/kubepods.slice'), undefined);
  assert.is(podOfCgroupPath(`/system.slice/kubepods-pod${under}.slice`, '/kubepods.slice'), undefined, 'outside the root');
  assert.is(podOfCgroupPath(`/kubepods.slicex/kubepods-pod${under}.slice`, '/kubepods.slice'), undefined, 'a sibling whose name begins like the root');
  assert.is(podOfCgroupPath(`/kubepods.slice/a/b/kubepods-pod${under}.slice`, '/kubepods.slice'), undefined, 'deeper than a QoS level');
  assert.is(podUidOfSegment('kubepods-podnot_a_uid.slice'), undefined);
  assert.is(podUidOfSegment(`pod${uid}.scope`), undefined);
});

test.run();
