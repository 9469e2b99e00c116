#!/usr/bin/env bash
# Runs the whole test suite from a fresh clone: installs what it needs, builds, tests.
# The end-to-end suite runs two real llama.cpp servers (SmolLM2-135M) behind the
# gateway; the first run compiles llama.cpp through pip (~12 minutes, cached after).
# Then scripts/conformance.sh runs the binary protocol's Python conformance client.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

echo "== real worker (llama.cpp) for the end-to-end tests"
# A failed install fails the run: `eval "$(…)"` alone would swallow the failure (and the
# end-to-end suite, finding no server, would disable itself).
if ! real_worker=$(scripts/real-worker.sh install); then
    echo "test.sh: installing llama.cpp's server and the model failed (scripts/real-worker.sh install)" >&2
    exit 1
fi
eval "$real_worker"
if [ -z "${LLAMA_SERVER_BIN:-}" ] || [ -z "${LLAMA_MODEL:-}" ] || [ ! -x "$LLAMA_SERVER_BIN" ] || [ ! -f "$LLAMA_MODEL" ]; then
    echo "test.sh: scripts/real-worker.sh install did not yield a llama-server binary and a model" >&2
    exit 1
fi
export LLAMA_SERVER_BIN LLAMA_MODEL
# The end-to-end suite fails instead of disabling itself when these are missing.
export MODEL_GATEWAY_REQUIRE_E2E=1

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
