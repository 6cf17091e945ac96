#!/usr/bin/env bash
# Builds ambit's CNI plugin beside the compiled agent that installs it (dist/agent/cni/ambit-cni):
# it runs in the node's mount namespace where there is no Node.js, so it is C, linked statically.
# scripts/setup.sh runs this; the CNI tests run it too when the executable is missing or older than
# its source (a build by `npx tsc` alone does not make it).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist/agent/cni
cc -O2 -Wall -Wextra -Werror -static -o dist/agent/cni/ambit-cni agent/cni/ambit-cni.c
