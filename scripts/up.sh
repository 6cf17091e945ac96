#!/usr/bin/env bash
# Brings up the local cluster with the sample workloads and shows the mesh working: set-up, `ambit up`,
# then `ambit demo` (the cluster, then a tour of the mesh that it undoes at the end). `bin/ambit down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin/ambit up
bin/ambit demo
