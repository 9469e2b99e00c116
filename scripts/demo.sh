#!/usr/bin/env bash
# The gateway's main job on an embedded default: a gateway on :30000 with simulated
# workers, registered over REST, with the example calls printed. Extra arguments go
# to `model-gateway demo` (e.g. --once to exit after the examples, --port 0).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh
swift build --product model-gateway
exec "$(swift build --show-bin-path)/model-gateway" demo "$@"
