#!/usr/bin/env bash
# Routing quality (issue 13): every routing policy on every workload, against four realistic
# sim workers, measured by `gateway-bench replay` from the engines' own counters.
#
#   scripts/bench-routing.sh                         # everything (about 45 minutes on 2 cores, plus the build)
#   BR_SCALE=0.5 BR_ARMS="round_robin cache_aware" scripts/bench-routing.sh   # a quicker pass
#
# Loopback only. Builds release binaries (--scratch-path .build-release), starts 4 sim workers
# (--engine realistic; each KV cache about a third of a workload's reusable working set, the
# four together more than all of it), then for each arm and workload: flushes the workers'
# caches, starts the arm's gateway fresh, replays the workload (same seed, same requests at the
# same offsets for every arm) and stops the gateway. Prints a markdown table and writes it with
# the raw JSON lines to bench-results/routing-<time>.{md,jsonl} (latest: routing-latest.md).
#
# Arms (BR_ARMS): random round_robin power_of_two cache_aware consistent_hash cache_aware_blocks
# (our gateway, --policy; cache_aware_blocks is told the workers' cache size in blocks,
# BR_KV_TOKENS / 16, and sheds at 40 in flight per worker), replicas (3 of our gateways,
# BR_REPLICA_POLICY, default cache_aware_blocks, behind `gateway-bench split`, a
# round-robin TCP splitter), replicas_old (the same with the old cache_aware), smg (PyPI smg 1.13.0, --policy cache_aware, in a venv under
# bench-results/; skipped with a note when it cannot be installed), direct (no gateway: worker 1
# only, a sanity check; not in the default list).
# Workloads (BR_WORKLOADS): shared-prefix shared-prefix-zipf multi-turn multi-turn-key
# zero-reuse trace overload (shared prefix at 19 requests/s, ~120 % of what the fleet carries).
#
# Environment: BR_ARMS, BR_WORKLOADS, BR_SCALE (multiplies request counts, default 1),
# BR_SEED (42), BR_KV_TOKENS (16384 per worker), BR_SLO_TTFT_MS (1000), BR_SLO_ITL_MS (60),
# BR_RATE_<WORKLOAD> (requests/s: SHARED 11, ZIPF 11, MULTI 12, ZERO 8.5, TRACE 8: about 70 % of
# what the fleet carries under a cache-blind policy, see docs/performance.md),
# BR_TRACE (a Mooncake-format JSONL to replay instead of the synthetic one), BR_SMG (0 skips smg),
# BR_SKIP_BUILD (1), BR_LOCK (/tmp/swift-build.lock; empty: no lock).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
LOCK=${BR_LOCK-/tmp/swift-build.lock}

lock_held_by_ancestor() {
    local pid=$PPID args
    while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
        args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        case "$args" in flock*"$LOCK"*) return 0 ;; esac
        pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
    done
    return 1
}
if [ -n "$LOCK" ] && [ -z "${BR_LOCK_HELD:-}" ] && command -v flock >/dev/null 2>&1 && ! lock_held_by_ancestor; then
    export BR_LOCK_HELD=1
    echo "bench-routing: waiting for $LOCK" >&2
    exec flock "$LOCK" "$0" "$@"
fi

ARMS=${BR_ARMS:-random round_robin power_of_two cache_aware consistent_hash cache_aware_blocks replicas smg}
WORKLOADS=${BR_WORKLOADS:-shared-prefix shared-prefix-zipf multi-turn multi-turn-key zero-reuse trace overload}
REPLICA_POLICY=${BR_REPLICA_POLICY:-cache_aware_blocks}
# What cache_aware_blocks is told about the workers: their KV cache in 16-token blocks, and the
# in-flight load at which a worker is saturated (32 running + 8 queued) and traffic is shed.
BLOCKS_FLAGS="--cache-blocks-per-worker $((${BR_KV_TOKENS:-16384} / 16)) --worker-max-load ${BR_MAX_LOAD:-40} --shed-when-saturated"
policy_flags() { # policy -> extra gateway flags
    if [ "$1" = cache_aware_blocks ]; then echo "$BLOCKS_FLAGS"; fi
}
SCALE=${BR_SCALE:-1}
SEED=${BR_SEED:-42}
KV_TOKENS=${BR_KV_TOKENS:-16384}
SLO_TTFT=${BR_SLO_TTFT_MS:-1000}
SLO_ITL=${BR_SLO_ITL_MS:-60}
BIN=$ROOT/.build-release/release
OUT=$ROOT/bench-results
mkdir -p "$OUT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSONL=$OUT/routing-$STAMP.jsonl
MD=$OUT/routing-$STAMP.md

command -v curl >/dev/null 2>&1 && command -v python3 >/dev/null 2>&1 || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq curl python3 >/dev/null
}

if [ -z "${BR_SKIP_BUILD:-}" ]; then
    [ -x scripts/ensure-deps.sh ] && scripts/ensure-deps.sh
    for product in model-gateway sim-worker gateway-bench; do
        echo "bench-routing: swift build -c release --product $product" >&2
        swift build -c release --scratch-path .build-release --product "$product" 2>&1 | tail -n 2 >&2
    done
fi
for b in model-gateway sim-worker gateway-bench; do
    [ -x "$BIN/$b" ] || { echo "bench-routing: $BIN/$b missing (build failed?)" >&2; exit 1; }
done

# --- smg in a venv (a prebuilt wheel from PyPI), when it installs --------------------------------
SMG=""
if [[ " $ARMS " == *" smg "* ]] && [ "${BR_SMG:-1}" != 0 ]; then
    VENV=$OUT/.venv-smg
    if [ ! -x "$VENV/bin/smg" ]; then
        echo "bench-routing: installing smg 1.13.0 into $VENV" >&2
        (python3 -m venv "$VENV" && "$VENV/bin/pip" install -q smg==1.13.0) >&2 || true
    fi
    if [ -x "$VENV/bin/smg" ]; then SMG=$VENV/bin/smg; else echo "bench-routing: smg did not install; its arm is skipped" >&2; fi
fi

# --- processes we start, stopped on exit -----------------------------------------------------------
TMP=$(mktemp -d /tmp/bench-routing.XXXXXX)
PIDS=()
ARM_PIDS=()
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
cleanup() {
    stop_pids "${ARM_PIDS[@]}" "${PIDS[@]}"
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
wait_ready() { # url [seconds]
    local deadline=$((SECONDS + ${2:-30}))
    until curl -fs -o /dev/null "$1"; do
        [ $SECONDS -lt $deadline ] || { echo "bench-routing: $1 did not come up" >&2; return 1; }
        sleep 0.2
    done
}

# --- four realistic workers in one process ---------------------------------------------------------
read -r W1 W2 W3 W4 < <(free_ports 4)
WORKER_URLS="http://127.0.0.1:$W1 http://127.0.0.1:$W2 http://127.0.0.1:$W3 http://127.0.0.1:$W4"
WORKER_CSV=${WORKER_URLS// /,}
"$BIN/sim-worker" --engine realistic --ports "$W1,$W2,$W3,$W4" --kv-cache-tokens "$KV_TOKENS" --log-level warning \
    >"$TMP/workers.log" 2>&1 &
PIDS+=($!)
SIM_PID=$!
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
for w in $WORKER_URLS; do wait_ready "$w/health"; done

# --- the synthetic trace (Mooncake format: timestamp ms, input/output length, 512-token hash ids) -----
TRACE=${BR_TRACE:-$TMP/trace.jsonl}
if [ -z "${BR_TRACE:-}" ]; then
    python3 - "$TRACE" "$SEED" "$(python3 -c "print(int(480 * $SCALE))")" "${BR_RATE_TRACE:-8}" <<'EOF'
import json, random, sys
path, seed, count, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
rng = random.Random(seed)
# 48 documents of 1-3 blocks (a reusable working set of about 48k tokens), Zipf 0.8 popularity.
roots, next_id = [], 0
for _ in range(48):
    n = rng.choice([1, 2, 2, 3])
    roots.append(list(range(next_id, next_id + n)))
    next_id += n
weights = [1 / (i + 1) ** 0.8 for i in range(len(roots))]
t = 0.0
with open(path, "w") as f:
    for i in range(count):
        t += rng.expovariate(rate)
        root = rng.choices(roots, weights)[0]
        extra = rng.randint(64, 384)
        ids = root + [next_id]  # the request's own last block (unique)
        next_id += 1
        f.write(json.dumps({"timestamp": int(t * 1000), "input_length": len(root) * 512 + extra,
                            "output_length": rng.randint(24, 48), "hash_ids": ids}) + "\n")
EOF
fi

n() { python3 -c "print(max(1, int($1 * $SCALE)))"; }
replay_args() { # workload -> gateway-bench replay arguments
    case "$1" in
        shared-prefix) echo "--workload shared-prefix --groups 48 --prompts-per-group 16 --system-tokens 1024 --question-tokens 64 --output-tokens 32 --requests $(n 480) --rate ${BR_RATE_SHARED:-11}" ;;
        shared-prefix-zipf) echo "--workload shared-prefix --popularity zipf --zipf-alpha 1.1 --groups 48 --prompts-per-group 16 --system-tokens 1024 --question-tokens 64 --output-tokens 32 --requests $(n 480) --rate ${BR_RATE_ZIPF:-11}" ;;
        multi-turn) echo "--workload multi-turn --sessions $(n 48) --turns 4 --system-tokens 640 --question-tokens 64 --output-tokens 32 --turn-gap 4 --rate ${BR_RATE_MULTI:-12}" ;;
        multi-turn-key) echo "--workload multi-turn --routing-key header --sessions $(n 48) --turns 4 --system-tokens 640 --question-tokens 64 --output-tokens 32 --turn-gap 4 --rate ${BR_RATE_MULTI:-12}" ;;
        zero-reuse) echo "--workload zero-reuse --question-tokens 1088 --output-tokens 32 --requests $(n 480) --rate ${BR_RATE_ZERO:-8.5}" ;;
        trace) echo "--workload trace --route completions --trace-file $TRACE --requests 100000" ;;
        overload) echo "--workload shared-prefix --groups 48 --prompts-per-group 16 --system-tokens 1024 --question-tokens 64 --output-tokens 32 --requests $(n 480) --rate ${BR_RATE_OVERLOAD:-19}" ;;
        *) echo "bench-routing: unknown workload $1" >&2; return 1 ;;
    esac
}

start_arm() { # arm -> sets BASE_URL, ARM_PIDS
    local arm=$1 port ports p
    ARM_PIDS=()
    case "$arm" in
        direct)
            BASE_URL="http://127.0.0.1:$W1"
            ;;
        random | round_robin | power_of_two | cache_aware | consistent_hash | cache_aware_blocks)
            read -r port < <(free_ports 1)
            # shellcheck disable=SC2086
            "$BIN/model-gateway" serve --host 127.0.0.1 --port "$port" --binary-port 0 --state-path none --log-level warn \
                --policy "$arm" $(policy_flags "$arm") --worker-urls $WORKER_URLS >"$TMP/gateway-$arm.log" 2>&1 &
            ARM_PIDS+=($!)
            BASE_URL="http://127.0.0.1:$port"
            wait_ready "$BASE_URL/readiness"
            ;;
        replicas | replicas_old)
            local rpolicy=$REPLICA_POLICY
            [ "$arm" = replicas_old ] && rpolicy=cache_aware
            read -r port p1 p2 p3 < <(free_ports 4)
            ports=""
            for p in $p1 $p2 $p3; do
                # shellcheck disable=SC2086
                "$BIN/model-gateway" serve --host 127.0.0.1 --port "$p" --binary-port 0 --state-path none --log-level warn \
                    --policy "$rpolicy" $(policy_flags "$rpolicy") --worker-urls $WORKER_URLS >"$TMP/gateway-replica-$p.log" 2>&1 &
                ARM_PIDS+=($!)
                wait_ready "http://127.0.0.1:$p/readiness"
                ports="$ports${ports:+,}http://127.0.0.1:$p"
            done
            "$BIN/gateway-bench" split --listen-port "$port" --targets "$ports" >"$TMP/split.log" 2>&1 &
            ARM_PIDS+=($!)
            BASE_URL="http://127.0.0.1:$port"
            wait_ready "$BASE_URL/readiness"
            ;;
        smg)
            read -r port p1 < <(free_ports 2)
            # shellcheck disable=SC2086
            "$SMG" launch --host 127.0.0.1 --port "$port" --prometheus-port "$p1" --prometheus-host 127.0.0.1 \
                --policy cache_aware --log-level warn --worker-urls $WORKER_URLS >"$TMP/smg.log" 2>&1 &
            ARM_PIDS+=($!)
            BASE_URL="http://127.0.0.1:$port"
            wait_ready "$BASE_URL/readiness" 60 || wait_ready "$BASE_URL/health" 10
            # smg registers workers in the background: wait until a request goes through.
            local deadline=$((SECONDS + 60))
            until curl -fs -o /dev/null "$BASE_URL/v1/completions" -H 'Content-Type: application/json' \
                -d '{"model":"sim-model","prompt":"warm up","max_tokens":1}'; do
                [ $SECONDS -lt $deadline ] || { echo "bench-routing: smg never served" >&2; return 1; }
                sleep 0.5
            done
            ;;
        *) echo "bench-routing: unknown arm $arm" >&2; return 1 ;;
    esac
}

echo "bench-routing: workers $WORKER_URLS (KV cache $KV_TOKENS tokens each); results $JSONL" >&2
for arm in $ARMS; do
    if [ "$arm" = smg ] && [ -z "$SMG" ]; then continue; fi
    for workload in $WORKLOADS; do
        for w in $WORKER_URLS; do curl -fs -o /dev/null -X POST "$w/flush_cache"; done
        start_arm "$arm"
        SIM_CPU0=$(cpu_ticks "$SIM_PID")
        # shellcheck disable=SC2046
        "$BIN/gateway-bench" replay --base-url "$BASE_URL" --label "$arm" --seed "$SEED" --worker-urls "$WORKER_CSV" \
            --slo-ttft-ms "$SLO_TTFT" --slo-itl-ms "$SLO_ITL" --duration 300 --drain 60 --json-out "$JSONL" \
            $(replay_args "$workload") >/dev/null 2>"$TMP/replay.err" || { cat "$TMP/replay.err" >&2; exit 1; }
        SIM_CPU1=$(cpu_ticks "$SIM_PID")
        tail -n 6 "$TMP/replay.err" | sed "s/^/[$workload] /" >&2
        # The workload's name in the JSON is the replayer's; keep the script's for the table, and
        # add the four sim workers' CPU time per request (the simulator's own cost).
        python3 - "$JSONL" "$workload" "$(( SIM_CPU1 - SIM_CPU0 ))" "$CLK_TCK" <<'EOF'
import json, sys
path, workload, ticks, hz = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lines = open(path).read().splitlines()
row = json.loads(lines[-1]); row["workload"] = workload
row["sim_cpu_ms_per_request"] = round(ticks / hz * 1000 / max(1, row["requests"]), 3)
lines[-1] = json.dumps(row)
open(path, "w").write("\n".join(lines) + "\n")
EOF
        stop_pids "${ARM_PIDS[@]}"
        ARM_PIDS=()
    done
done

python3 - "$JSONL" "$KV_TOKENS" "$SLO_TTFT" "$SLO_ITL" "$SCALE" "$SEED" >"$MD" <<'EOF'
import json, sys
path, kv, slo_ttft, slo_itl, scale, seed = sys.argv[1:7]
rows = [json.loads(l) for l in open(path) if l.strip()]
def pct(v): return "n/a" if v is None else f"{v * 100:.1f} %"
def ms(v): return f"{v * 1000:.0f}"
print(f"Four realistic sim workers (KV cache {kv} tokens each), seed {seed}, scale {scale}; "
      f"goodput: TTFT ≤ {slo_ttft} ms and mean inter-token latency ≤ {slo_itl} ms.\n")
print("| workload | arm | hit rate | TTFT p50 / p99 ms | e2e p50 / p99 ms | output tok/s | goodput /s | errors | 503 | late turns | req/worker max/min |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    imbalance = "n/a" if r.get("worker_imbalance") is None else f"{r['worker_imbalance']:.2f}"
    print(f"| {r['workload']} | {r['label']} | {pct(r['hit_rate'])} | {ms(r['ttft_p50_s'])} / {ms(r['ttft_p99_s'])} | "
          f"{ms(r['e2e_p50_s'])} / {ms(r['e2e_p99_s'])} | {r['output_tokens_per_s']:.0f} | {r['goodput_per_s']:.2f} | "
          f"{r['error_rate'] * 100:.1f} % | {r['unavailable_503']} | {r['late_turns']} | {imbalance} |")
cpu = [r["sim_cpu_ms_per_request"] for r in rows if "sim_cpu_ms_per_request" in r]
if cpu:
    print(f"\nThe four sim workers' CPU time: {sum(cpu) / len(cpu):.2f} ms per request on average (at most {max(cpu):.2f}).")
EOF
cp "$MD" "$OUT/routing-latest.md"
cat "$MD"
echo "bench-routing: wrote $MD and $JSONL" >&2
