#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what it needs, builds, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

echo "== build"
swift build --build-tests

echo "== tests"
swift test --skip-build "$@"
