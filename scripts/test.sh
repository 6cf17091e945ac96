#!/usr/bin/env bash
# Every test: set-up, the type check (the build), lint, unit tests, then the end-to-end tests on a
# real local cluster. Needs root. Fails on the first failing stage.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "== lint"
npx eslint .
echo "== unit tests"
npx uvu dist/test/unit '.test.js$'
echo "== end-to-end tests"
npx uvu dist/test/e2e '.test.js$'
echo "== all tests passed"
