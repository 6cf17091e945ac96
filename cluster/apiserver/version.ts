// `GET /version`: the version.Info a Kubernetes client reads to know which API it talks to. ambit
// serves a subset of Kubernetes 1.32's API, so it reports 1.32, with its own version in gitVersion's
// pre-release part (semver, as kubectl parses it) so `kubectl version` shows what is really serving.

import { ambitVersion } from '../../shared/build.js';

export const kubernetesMajor = '1';
export const kubernetesMinor = '32';

/** Node's names for CPU architectures, as Go (and so `platform`) spells them. */
const goArch: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x' };

/** k8s.io/apimachinery/pkg/version.Info, field for field. */
export const versionInfo = {
  major: kubernetesMajor,
  minor: kubernetesMinor,
  gitVersion: `v${kubernetesMajor}.${kubernetesMinor}.0-ambit.${ambitVersion}`,
  // ambit is not built from a Kubernetes commit; empty strings are what an unstamped build reports.
  gitCommit: '',
  gitTreeState: '',
  buildDate: '',
  goVersion: 'n/a',
  compiler: 'node',
  platform: `${process.platform}/${goArch[process.arch] ?? process.arch}`,
};
