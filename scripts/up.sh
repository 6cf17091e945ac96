#!/usr/bin/env bash
# Brings up the local cluster with the sample workloads and shows it working: set-up, `ambit up`,
# then `ambit demo`. `bin/ambit down` removes it all.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bin/ambit up
bin/ambit demo
