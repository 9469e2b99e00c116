#!/usr/bin/env bash
# Cross-language conformance suite of the binary protocol (docs/binary-protocol.md).
#
# From a fresh clone: installs what it needs, builds model-gateway and sim-worker,
# then
#   1. conformance/vectors.py: the committed golden vectors
#      (Tests/GatewayWireTests/Vectors/*.hex) parse with Google's protobuf runtime to
#      the values it builds itself, and its encoder makes the same bytes;
#   2. starts a sim worker (two ports, slow-ish streaming: 20 chunks, 100 ms apart) and
#      `model-gateway serve` on free ports, and runs conformance/client.py against them:
#      every call, every protocol error, bad frame headers, cancellation, concurrency,
#      REST/binary parity, idle GoAway, and last a SIGTERM (GoAway on shutdown);
#   3. stops every process it started (trap EXIT) and exits non-zero if anything failed.
#
# The Swift side of the suite (GoldenVectorTests: encode/decode against the same files;
# FuzzTests: frame and envelope decoders) runs with `swift test` (scripts/test.sh);
# CONFORMANCE_SWIFT_TESTS=1 also runs those two suites here.
#
# Environment:
#   SWIFT_SCRATCH=.build-conf   SwiftPM scratch path (default .build, as CI)
#   CONFORMANCE_LOGS=dir        keep the gateway and worker logs there (default: a temp dir,
#                               printed on failure)
# Needs root on a machine without protoc / pip protobuf (apt-get, pip).
set -euo pipefail
cd "$(dirname "$0")/.."

scratch="${SWIFT_SCRATCH:-.build}"
started=$(date +%s)

scripts/ensure-deps.sh

if ! command -v protoc >/dev/null 2>&1; then
    echo "conformance: installing protobuf-compiler (protoc)" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "conformance: run as root, or install: apt-get install -y protobuf-compiler" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq protobuf-compiler >/dev/null
fi
if ! python3 -c 'import google.protobuf' >/dev/null 2>&1; then
    echo "conformance: installing the protobuf Python package" >&2
    python3 -m pip install --quiet protobuf
fi

echo "== build ($scratch)"
swift build --scratch-path "$scratch" --product model-gateway
swift build --scratch-path "$scratch" --product sim-worker
bin="$(swift build --scratch-path "$scratch" --show-bin-path)"

if [ "${CONFORMANCE_SWIFT_TESTS:-0}" = 1 ]; then
    echo "== Swift golden vectors and fuzzing"
    swift build --build-tests --scratch-path "$scratch"
    swift test --skip-build --scratch-path "$scratch" --filter 'GoldenVectorTests|FuzzTests|WireNULDecodingTests'
fi

status=0

echo "== golden vectors, from Python"
python3 conformance/vectors.py || status=1

logs="${CONFORMANCE_LOGS:-$(mktemp -d -t mg-conformance-XXXXXX)}"
mkdir -p "$logs"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    if [ -z "${CONFORMANCE_LOGS:-}" ] && [ "$status" = 0 ]; then rm -rf "$logs"; fi
}
trap cleanup EXIT

# Four free ports: two sim workers, the REST port, the binary port.
read -r w1 w2 rest binary < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)

echo "== sim-worker on $w1,$w2; model-gateway on REST $rest, binary $binary (logs in $logs)"
"$bin/sim-worker" --host 127.0.0.1 --ports "$w1,$w2" --chunks 20 --chunk-interval-ms 100 --log-level warning \
    >"$logs/sim-worker.log" 2>&1 &
sim_pid=$!
pids+=("$sim_pid")
"$bin/model-gateway" serve --host 127.0.0.1 --port "$rest" --binary-port "$binary" \
    --max-concurrent-streams 32 --binary-idle-timeout-secs 8 --shutdown-grace-period-secs 20 --log-level warn \
    >"$logs/model-gateway.log" 2>&1 &
gateway_pid=$!
pids+=("$gateway_pid")

wait_port() {  # port pid name
    python3 - "$1" <<'EOF' || { echo "conformance: $3 is not listening on $1" >&2; return 1; }
import socket, sys, time
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(1)
EOF
    kill -0 "$2" 2>/dev/null || { echo "conformance: $3 exited" >&2; return 1; }
}
if ! { wait_port "$w1" "$sim_pid" sim-worker && wait_port "$w2" "$sim_pid" sim-worker \
        && wait_port "$rest" "$gateway_pid" model-gateway && wait_port "$binary" "$gateway_pid" model-gateway; }; then
    status=1
    tail -n 40 "$logs"/*.log >&2 || true
    exit 1
fi

echo "== conformance client"
python3 conformance/client.py --host 127.0.0.1 --binary-port "$binary" --rest-port "$rest" \
    --worker-url "http://127.0.0.1:$w1" --rest-worker-url "http://127.0.0.1:$w2" \
    --model sim-model --chunks 20 --chunk-interval-ms 100 --idle-timeout-secs 8 \
    --gateway-pid "$gateway_pid" --deadline 300 | tee "$logs/client.out" || status=1

# The client's last check sent SIGTERM (if it got that far): the gateway must finish its
# calls and exit by itself.
if ! grep -q "^INFO sigterm-sent" "$logs/client.out"; then
    kill -TERM "$gateway_pid" 2>/dev/null || true
fi
for _ in $(seq 250); do kill -0 "$gateway_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$gateway_pid" 2>/dev/null; then
    echo "FAIL gateway-exits-after-sigterm: still running 25 s after SIGTERM"
    status=1
else
    gateway_status=0
    wait "$gateway_pid" || gateway_status=$?
    if [ "$gateway_status" = 0 ]; then
        echo "PASS gateway-exits-after-sigterm: exit status 0"
    else
        echo "FAIL gateway-exits-after-sigterm: exit status $gateway_status"
        status=1
    fi
fi

if [ "$status" != 0 ]; then
    echo "== logs ($logs)" >&2
    tail -n 40 "$logs"/*.log >&2 || true
fi
echo "== conformance: $([ "$status" = 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - started )) s"
exit "$status"
