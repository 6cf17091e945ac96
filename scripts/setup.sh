#!/usr/bin/env bash
# Installs what ambit needs on a Debian 12 machine with Node 20, as root, idempotently: the Debian
# packages (networking, BPF toolchain, the tools tests and benchmarks use), the npm packages from
# the lockfile, and the compiled TypeScript. Safe to run again; it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# tcpdump: the tests look at the wire between nodes; prometheus: its promtool checks the metrics;
# the next seven are the mesh benchmark's load tools, reference proxies (nginx's stream module for
# its mutual-TLS pair), server and chart; chromium: the dashboard's end-to-end test drives it
# headless (playwright-core never downloads a browser); containernetworking-plugins: the local kubelet
# wires pods through the standard CNI plugins (bridge, host-local, loopback in /usr/lib/cni).
packages=(iproute2 iptables nftables libnftables1 clang llvm libbpf-dev bpftool libelf-dev curl procps util-linux tcpdump prometheus
  wrk iperf3 haproxy stunnel4 nginx-light libnginx-mod-stream gnuplot-nox chromium containernetworking-plugins)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Services in these packages (prometheus, nginx, haproxy) must not start on the host: only the
  # tests and benchmarks run them, inside the cluster's namespaces.
  policy=/usr/sbin/policy-rc.d
  added_policy=
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && added_policy=1
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ -n "$added_policy" ]; then rm -f "$policy"; fi
fi

# kubectl: the tests drive the local cluster's Kubernetes API with the real client. These machines
# carry kubectl 1.32; Debian's kubernetes-client (older) is the fallback where none is installed.
if ! command -v kubectl >/dev/null 2>&1; then
  echo "setup: installing Debian's kubernetes-client (kubectl)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found: $(node -v 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci when the lockfile changed since the last install; the stamp makes re-runs instant.
stamp=node_modules/.ambit-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# bpffs, for the eBPF capture's pinned programs and maps.
if ! grep -q ' /sys/fs/bpf bpf ' /proc/self/mounts; then
  mount -t bpf bpf /sys/fs/bpf 2>/dev/null || echo "setup: note: could not mount bpffs at /sys/fs/bpf"
fi

# A clean build, so no compiled file outlives its source (a deleted test must not keep running).
rm -rf dist
npx tsc -p tsconfig.json
# The vendored upstream CRDs (manifests/crds/, a megabyte of YAML), parsed once into dist/manifests/
# so the first API server start does not spend seconds on it (shared/kube/crds.ts would otherwise).
node -e 'import("./dist/shared/kube/crds.js").then((m) => m.upstreamCrds())'
# The dashboard's browser code, bundled beside the controller that serves it: no CDN, no network at run time.
npm run -s build:dashboard

# The eBPF capture's programs, beside the compiled agent (dist/bpf/); the agent loads them with
# --redirect ebpf. The include path holds asm/ headers on Debian's multiarch layout.
mkdir -p dist/bpf
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c bpf/capture.bpf.c -o dist/bpf/capture.bpf.o

# ambit's CNI plugin (C, static), beside the compiled agent that installs it.
bash scripts/build-cni-plugin.sh
