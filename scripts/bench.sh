#!/usr/bin/env bash
# The benchmark harness of issue 6: the gateway against the direct path and nginx, in one run.
#
#   scripts/bench.sh                     # everything (about 6 minutes on 2 cores, plus the build)
#   BENCH_DURATION=3 BENCH_ROUNDS=1 scripts/bench.sh   # a quicker pass
#
# Loopback only. Builds release binaries (--scratch-path .build-release), starts sim workers,
# a gateway and nginx on free ports, measures, prints a table and writes
# bench-results/bench-<timestamp>.json (plus bench-results/latest.json). Everything it starts
# is stopped on exit. Takes /tmp/swift.lock (builds and measurements) unless a parent
# `flock /tmp/swift.lock …` already holds it.
#
# Paths, measured alternately in each round:
#   (a) wrk -> sim worker directly         (b) wrk -> gateway REST -> workers
#   (c) wrk -> nginx (plain proxy) -> workers  (d) gateway-bench -> gateway binary -> workers
# Then: binary vs REST small calls (list workers, health) on one connection, window 64;
# time to first streamed chunk; latency added at fixed request rates (an open load, below
# saturation); registry scale (1,000 / 10,000 workers); micro-benchmarks.
#
# Environment: BENCH_DURATION (s per wrk/load run, default 6), BENCH_ROUNDS (default 2),
# BENCH_CONNECTIONS ("64 256"), BENCH_RATES (requests/s of the fixed-rate runs, "2000 5000"), BENCH_POLICY (gateway policy, default round_robin like nginx),
# BENCH_SCALE_COUNTS ("1000,10000"), BENCH_MICRO (1; 0 skips), BENCH_SKIP_BUILD (1 skips the build),
# BENCH_LOCK (/tmp/swift.lock; empty: no lock), BENCH_GATEWAY_BIN (another model-gateway binary).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
LOCK=${BENCH_LOCK-/tmp/swift.lock}

# --- the lock: builds and measurements must not overlap other builds on this machine ---------
lock_held_by_ancestor() {
    local pid=$PPID args
    while [ -n "$pid" ] && [ "$pid" -gt 1 ]; do
        args=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)
        case "$args" in flock*"$LOCK"*) return 0 ;; esac
        pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
    done
    return 1
}
if [ -n "$LOCK" ] && [ -z "${BENCH_LOCK_HELD:-}" ] && command -v flock >/dev/null 2>&1 && ! lock_held_by_ancestor; then
    export BENCH_LOCK_HELD=1
    echo "bench: waiting for $LOCK" >&2
    exec flock "$LOCK" "$0" "$@"
fi

DURATION=${BENCH_DURATION:-6}
ROUNDS=${BENCH_ROUNDS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64 256}
RATES=${BENCH_RATES:-2000 5000}
POLICY=${BENCH_POLICY:-round_robin}
SCALE_COUNTS=${BENCH_SCALE_COUNTS:-1000,10000}
MICRO=${BENCH_MICRO:-1}
STREAM_CHUNKS=16
STREAM_INTERVAL_MS=2
BIN=$ROOT/.build-release/release
GATEWAY=${BENCH_GATEWAY_BIN:-$BIN/model-gateway} # override only to test the harness itself

# --- tools ---------------------------------------------------------------------------------
missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
    echo "bench: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- build ---------------------------------------------------------------------------------
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
    [ -x scripts/ensure-deps.sh ] && scripts/ensure-deps.sh
    for product in model-gateway sim-worker gateway-bench; do
        echo "bench: swift build -c release --product $product" >&2
        swift build -c release --scratch-path .build-release --product "$product" 2>&1 | tail -n 3 >&2
    done
fi
for b in model-gateway sim-worker gateway-bench; do
    [ -x "$BIN/$b" ] || [ "$b" = model-gateway ] || { echo "bench: $BIN/$b missing (build failed?)" >&2; exit 1; }
done
[ -x "$GATEWAY" ] || { echo "bench: $GATEWAY missing (build failed?)" >&2; exit 1; }

# --- processes we start, stopped on exit ----------------------------------------------------
TMP=$(mktemp -d /tmp/gateway-bench.XXXXXX)
PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() { # n -> n free loopback ports
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
wait_http() { # url [seconds]
    local deadline=$((SECONDS + ${2:-30}))
    until curl -fs -o /dev/null "$1"; do
        [ $SECONDS -lt $deadline ] || { echo "bench: $1 did not come up" >&2; return 1; }
        sleep 0.1
    done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
CLK_TCK=$(getconf CLK_TCK)
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }

read -r W1 W2 WS GW_REST GW_BIN NGX SC_REST SC_BIN < <(free_ports 8)

# Fast workers (no latency, 8-token answers), two ports in one process; a streaming worker.
"$BIN/sim-worker" --host 127.0.0.1 --ports "$W1,$W2" --log-level warning >"$TMP/sim-fast.log" 2>&1 &
PIDS+=($!)
"$BIN/sim-worker" --host 127.0.0.1 --port "$WS" --model-id sim-stream --chunks $STREAM_CHUNKS \
    --chunk-interval-ms $STREAM_INTERVAL_MS --log-level warning >"$TMP/sim-stream.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$W1/health"
wait_http "http://127.0.0.1:$W2/health"
wait_http "http://127.0.0.1:$WS/health"

"$GATEWAY" serve --host 127.0.0.1 --state-path none --port "$GW_REST" --binary-port "$GW_BIN" \
    --policy "$POLICY" --log-level "${BENCH_LOG_LEVEL:-info}" --shutdown-grace-period-secs 2 \
    --worker-urls "http://127.0.0.1:$W1" "http://127.0.0.1:$W2" "http://127.0.0.1:$WS" >"$TMP/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
wait_http "http://127.0.0.1:$GW_REST/liveness"
for _ in $(seq 1 100); do # all three workers registered and healthy
    n=$(curl -fs "http://127.0.0.1:$GW_REST/workers" | grep -o '"is_healthy":true' | wc -l || true)
    [ "$n" -ge 3 ] && break
    sleep 0.1
done
sleep 0.5
GW_IDLE_RSS_KB=$(status_kb $GW_PID VmRSS)

mkdir -p "$TMP/nginx"
cat >"$TMP/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream workers {
        server 127.0.0.1:$W1;
        server 127.0.0.1:$W2;
        keepalive 512;
    }
    server {
        listen 127.0.0.1:$NGX;
        location / {
            proxy_pass http://workers;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" &
NGX_PID=$!
PIDS+=($NGX_PID)
wait_http "http://127.0.0.1:$NGX/health"
nginx_ticks() { # master + workers
    local total=0 p
    for p in $NGX_PID $(pgrep -P "$NGX_PID" 2>/dev/null); do
        total=$((total + $(cpu_ticks "$p" 2>/dev/null || echo 0)))
    done
    echo $total
}

RESULTS=$TMP/results.jsonl
: >"$RESULTS"
BODY='{"text":"Hello world","model":"sim-model","sampling_params":{"max_new_tokens":8}}'

run_wrk() { # label path connections url cpu-of(gateway|nginx|none) round
    local label=$1 path=$2 conns=$3 url=$4 cpu_of=$5 round=$6 before=0 after=0 out line
    case $cpu_of in gateway) before=$(cpu_ticks $GW_PID) ;; nginx) before=$(nginx_ticks) ;; esac
    out=$(BENCH_BODY=$BODY wrk -t2 -c"$conns" -d"${DURATION}s" --timeout 5s -s scripts/bench/post.lua "$url" 2>&1) || true
    case $cpu_of in gateway) after=$(cpu_ticks $GW_PID) ;; nginx) after=$(nginx_ticks) ;; esac
    line=$(printf '%s\n' "$out" | sed -n 's/^BENCH_JSON //p' | tail -n 1)
    [ -n "$line" ] || { echo "bench: wrk failed for $label: $out" >&2; return 0; }
    printf '{"kind":"wrk","label":"%s","path":"%s","connections":%s,"round":%s,"cpu_s":%s,"gateway_vmhwm_kb":%s,"wrk":%s}\n' \
        "$label" "$path" "$conns" "$round" "$(awk -v a="$after" -v b="$before" -v t="$CLK_TCK" 'BEGIN{print (a-b)/t}')" \
        "$(status_kb $GW_PID VmHWM)" "$line" >>"$RESULTS"
    echo "  $label c=$conns round $round: $(printf '%s' "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%.0f req/s, p99 %.2f ms" % (d["requests"]/(d["duration_us"]/1e6), d["p99_us"]/1000))')" >&2
}
run_load() { # label kind [gateway-bench load args...]
    local label=$1 kind=$2 line
    shift 2
    line=$("$BIN/gateway-bench" load --label "$label" --duration "$DURATION" "$@") || { echo "bench: gateway-bench failed for $label" >&2; return 0; }
    printf '{"kind":"%s","label":"%s"%s,"load":%s}\n' "$kind" "$label" "${EXTRA:-}" "$line" >>"$RESULTS"
    echo "  $label: $(printf '%s' "$line" | python3 -c 'import json,sys; d=json.load(sys.stdin); t=d.get("ttfb"); print("%.0f calls/s, p99 %.2f ms, errors %d%s" % (d["rps"], d["latency"]["p99_us"]/1000, d["errors"], (", ttfb p50 %.3f ms" % (t["p50_us"]/1000)) if t else ""))')" >&2
}

START=$SECONDS
echo "bench: warm-up" >&2
for url in "http://127.0.0.1:$W1/generate" "http://127.0.0.1:$GW_REST/generate" "http://127.0.0.1:$NGX/generate"; do
    BENCH_BODY=$BODY wrk -t2 -c64 -d1s -s scripts/bench/post.lua "$url" >/dev/null 2>&1 || true
done
"$BIN/gateway-bench" load --port "$GW_BIN" --op generate --window 64 --duration 1 --warmup 0 >/dev/null || true

echo "bench: inference paths (POST /generate, 8 tokens), $ROUNDS round(s) of ${DURATION}s runs" >&2
for round in $(seq 1 "$ROUNDS"); do
    for c in $CONNECTIONS; do
        run_wrk a_direct a "$c" "http://127.0.0.1:$W1/generate" none "$round"
        run_wrk b_gateway_rest b "$c" "http://127.0.0.1:$GW_REST/generate" gateway "$round"
        run_wrk c_nginx c "$c" "http://127.0.0.1:$NGX/generate" nginx "$round"
        binconns=$(((c + 63) / 64))
        EXTRA=',"round":'"$round"',"connections_equiv":'"$c" run_load "d_gateway_binary_c$c" load_d --port "$GW_BIN" --op generate \
            --connections "$binconns" --window $((c / binconns)) --warmup 0.5 --pid "$GW_PID"
    done
done

echo "bench: small calls, binary (1 connection, window 64) vs REST" >&2
for op in list health; do
    run_load "binary_${op}_1conn_w64" small --port "$GW_BIN" --op $op --connections 1 --window 64 --pid "$GW_PID"
    run_load "rest_${op}_1conn" small --proto rest --port "$GW_REST" --op $op --connections 1 --pid "$GW_PID"
    run_load "rest_${op}_64conn" small --proto rest --port "$GW_REST" --op $op --connections 64 --pid "$GW_PID"
done

echo "bench: time to first streamed chunk ($STREAM_CHUNKS chunks, ${STREAM_INTERVAL_MS} ms apart)" >&2
for conc in 1 16; do
    run_load "ttfb_direct_c$conc" ttfb --proto rest --port "$WS" --op stream --model sim-stream --max-tokens 32 --connections "$conc"
    run_load "ttfb_gateway_rest_c$conc" ttfb --proto rest --port "$GW_REST" --op stream --model sim-stream --max-tokens 32 --connections "$conc" --pid "$GW_PID"
    run_load "ttfb_gateway_binary_c$conc" ttfb --port "$GW_BIN" --op stream --model sim-stream --max-tokens 32 --connections 1 --window "$conc" --pid "$GW_PID"
done
echo "bench: latency at fixed rates ($RATES requests/s over 64 connections, POST /generate)" >&2
for rate in $RATES; do
    for round in $(seq 1 "$ROUNDS"); do
        EXTRA=',"round":'"$round" run_load "rate_direct_r$rate" rate --proto rest --port "$W1" --op generate --connections 64 --rate "$rate"
        EXTRA=',"round":'"$round" run_load "rate_gateway_rest_r$rate" rate --proto rest --port "$GW_REST" --op generate --connections 64 --rate "$rate" --pid "$GW_PID"
    done
done
GW_PEAK_RSS_KB=$(status_kb $GW_PID VmHWM)
MEASURE_SECONDS=$((SECONDS - START))

echo "bench: registry scale ($SCALE_COUNTS workers) on a second gateway" >&2
"$GATEWAY" serve --host 127.0.0.1 --state-path none --port "$SC_REST" --binary-port "$SC_BIN" \
    --log-level warn --shutdown-grace-period-secs 2 >"$TMP/gateway-scale.log" 2>&1 &
SC_PID=$!
PIDS+=($SC_PID)
wait_http "http://127.0.0.1:$SC_REST/liveness"
sleep 0.5
SC_IDLE_RSS_KB=$(status_kb $SC_PID VmRSS)
if line=$("$BIN/gateway-bench" scale --port "$SC_REST" --binary-port "$SC_BIN" --pid "$SC_PID" --counts "$SCALE_COUNTS"); then
    printf '{"kind":"scale","fresh_idle_rss_kb":%s,"result":%s}\n' "$SC_IDLE_RSS_KB" "$line" >>"$RESULTS"
else
    echo "bench: scale run failed" >&2
fi
kill -TERM "$SC_PID" 2>/dev/null || true

if [ "$MICRO" = 1 ]; then
    echo "bench: micro-benchmarks" >&2
    if line=$("$BIN/gateway-bench" micro); then
        printf '{"kind":"micro","result":%s}\n' "$line" >>"$RESULTS"
    fi
fi

mkdir -p bench-results
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=bench-results/bench-$STAMP.json
python3 - "$RESULTS" "$OUT" <<EOF
import json, sys, statistics, platform, os
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
meta = {
    "timestamp": "$STAMP", "cores": os.cpu_count(), "kernel": platform.release(),
    "duration_s": $DURATION, "rounds": $ROUNDS, "policy": "$POLICY",
    "stream_chunks": $STREAM_CHUNKS, "stream_chunk_interval_ms": $STREAM_INTERVAL_MS,
    "gateway_idle_rss_kb": $GW_IDLE_RSS_KB, "gateway_peak_rss_kb": $GW_PEAK_RSS_KB,
    "measure_seconds": $MEASURE_SECONDS,
}

# Inference paths: mean over rounds.
paths = {}
for r in rows:
    if r["kind"] == "wrk":
        w = r["wrk"]; secs = w["duration_us"] / 1e6
        errors = w["errors_connect"] + w["errors_read"] + w["errors_write"] + w["errors_status"] + w["errors_timeout"]
        e = dict(rps=w["requests"] / secs, p50=w["p50_us"] / 1000, p99=w["p99_us"] / 1000, p999=w["p999_us"] / 1000,
                 errors=errors, cpu_per_1k=(r["cpu_s"] / w["requests"] * 1000) if r["path"] in "bc" and w["requests"] else None,
                 hwm=r["gateway_vmhwm_kb"] if r["path"] == "b" else None)
        paths.setdefault((r["path"], r["connections"]), []).append(e)
    elif r["kind"] == "load_d":
        d = r["load"]
        e = dict(rps=d["rps"], p50=d["latency"]["p50_us"] / 1000, p99=d["latency"]["p99_us"] / 1000,
                 p999=d["latency"]["p999_us"] / 1000, errors=d["errors"], cpu_per_1k=d.get("target_cpu_s_per_1k"),
                 hwm=d.get("target_vmhwm_kb"))
        paths.setdefault(("d", r["connections_equiv"]), []).append(e)

def mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None

summary = {}
for (p, c), es in sorted(paths.items(), key=lambda kv: (kv[0][1], kv[0][0])):
    summary[f"{p}_c{c}"] = {k: mean([e[k] for e in es]) for k in es[0]} | {"path": p, "connections": c, "rounds": len(es),
                                                                           "rps_rounds": [round(e["rps"]) for e in es]}
names = {"a": "direct (wrk -> worker)", "b": "gateway REST (wrk)", "c": "nginx proxy (wrk)", "d": "gateway binary (gateway-bench)"}
ratios = {}
for c in sorted({v["connections"] for v in summary.values()}):
    g = lambda p: summary.get(f"{p}_c{c}")
    a, b, cc, d = g("a"), g("b"), g("c"), g("d")
    rr = {}
    if a and b: rr["b/a_rps"] = b["rps"] / a["rps"]; rr["b-a_p99_ms"] = b["p99"] - a["p99"]; rr["b-a_p50_ms"] = b["p50"] - a["p50"]
    if b and cc: rr["b/c_rps"] = b["rps"] / cc["rps"]; rr["c-a_p99_ms"] = cc["p99"] - a["p99"] if a else None
    if b and d: rr["d/b_rps"] = d["rps"] / b["rps"]
    ratios[f"c{c}"] = rr

small = {r["label"]: r["load"] for r in rows if r["kind"] == "small"}
small_ratios = {}
for op in ("list", "health"):
    bi, r1, r64 = small.get(f"binary_{op}_1conn_w64"), small.get(f"rest_{op}_1conn"), small.get(f"rest_{op}_64conn")
    if bi and r1: small_ratios[f"{op}_binary_w64_vs_rest_1conn"] = bi["rps"] / r1["rps"]
    if bi and r64: small_ratios[f"{op}_binary_w64_vs_rest_64conn"] = bi["rps"] / r64["rps"]
ttfb = {r["label"]: r["load"] for r in rows if r["kind"] == "ttfb"}
# Fixed rates: medians over rounds of each percentile, and what the gateway adds.
fixed = {}
for r in rows:
    if r["kind"] == "rate":
        target = "gateway" if "gateway" in r["label"] else "direct"
        fixed.setdefault(round(r["load"]["target_rate"]), {}).setdefault(target, []).append(r["load"])
rates = {}
for rate, targets in sorted(fixed.items()):
    entry = {}
    for target, loads in targets.items():
        entry[target] = {k: statistics.median([l["latency"][k + "_us"] / 1000 for l in loads]) for k in ("p50", "p99", "p999")} \
            | {"rps": statistics.fmean([l["rps"] for l in loads]), "errors": sum(l["errors"] for l in loads), "rounds": len(loads)}
    if "direct" in entry and "gateway" in entry:
        entry["added_ms"] = {k: entry["gateway"][k] - entry["direct"][k] for k in ("p50", "p99", "p999")}
    rates[str(rate)] = entry
scale = next((r for r in rows if r["kind"] == "scale"), None)
micro = next((r["result"] for r in rows if r["kind"] == "micro"), None)

out = {"meta": meta, "paths": summary, "ratios": ratios, "small_calls": small, "small_call_ratios": small_ratios,
       "ttfb": ttfb, "fixed_rates": rates, "scale": scale, "micro": micro, "raw": rows}
json.dump(out, open(sys.argv[2], "w"), indent=1)

f = lambda x, n=2: "-" if x is None else f"{x:.{n}f}"
print()
print(f"Inference paths, POST /generate (8 tokens), {meta['cores']} cores, {meta['rounds']} x {meta['duration_s']}s, policy {meta['policy']}")
print(f"{'path':34} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'err':>5} {'CPU s/1k':>9}")
for k, v in summary.items():
    print(f"{names[v['path']]:34} {v['connections']:>5} {v['rps']:>9.0f} {f(v['p50'])!s:>8} {f(v['p99'])!s:>8} {f(v['p999'])!s:>9} {v['errors']:>5.0f} {f(v['cpu_per_1k'], 3)!s:>9}")
print("(CPU s/1k: the gateway's for b and d, nginx's (all processes) for c)")
print()
for c, rr in ratios.items():
    print(f"{c}: " + ", ".join(f"{k} {f(v, 3)}" for k, v in rr.items()))
print()
print("Small calls through the gateway (calls/s)")
for label, d in small.items():
    print(f"  {label:28} {d['rps']:>9.0f}  p50 {d['latency']['p50_us']/1000:.3f} ms  p99 {d['latency']['p99_us']/1000:.3f} ms  errors {d['errors']}  CPU s/1k {f(d.get('target_cpu_s_per_1k'), 3)}")
for k, v in small_ratios.items():
    print(f"  {k}: {v:.2f}x")
print()
print("Time to first streamed chunk (ms)")
for label, d in ttfb.items():
    t = d.get("ttfb") or {}
    print(f"  {label:28} p50 {f(t.get('p50_us', 0) / 1000, 3)}  p99 {f(t.get('p99_us', 0) / 1000, 3)}  streams/s {d['rps']:.0f}  errors {d['errors']}")
print()
print("Latency at a fixed rate, 64 connections, POST /generate (ms; median of rounds)")
for rate, entry in rates.items():
    for target in ("direct", "gateway"):
        e = entry.get(target)
        if e: print(f"  {rate:>6}/s {target:8} p50 {f(e['p50'], 3)}  p99 {f(e['p99'], 3)}  p99.9 {f(e['p999'], 3)}  ({e['rps']:.0f}/s, errors {e['errors']})")
    if "added_ms" in entry:
        a = entry["added_ms"]
        print(f"  {rate:>6}/s added    p50 {f(a['p50'], 3)}  p99 {f(a['p99'], 3)}  p99.9 {f(a['p999'], 3)}")
print()
print(f"Gateway RSS: idle {meta['gateway_idle_rss_kb'] / 1024:.1f} MB (3 workers), peak {meta['gateway_peak_rss_kb'] / 1024:.1f} MB under load")
if scale:
    res = scale["result"]
    print(f"Registry scale (fresh gateway, idle RSS {scale['fresh_idle_rss_kb'] / 1024:.1f} MB):")
    for s in res["scale"]:
        print(f"  {s['workers']:>6} workers: GET /workers p50 {s['get_workers']['p50_us']/1000:.2f} ms max {s['get_workers']['max_us']/1000:.2f} ms ({s['get_workers_body_bytes']} B);"
              f" binary list p50 {s['binary_list_workers']['p50_us']/1000:.2f} ms; {s.get('bytes_per_worker', 0):.0f} B RSS/worker;"
              f" registered+ready in {s['register_ready_s']:.2f} s, failures {s['registration_failures']}")
if micro:
    print()
    print("Micro-benchmarks (median ns/op)")
    for m in micro["micro"]:
        print(f"  {m['name']:70} {m['median_ns']:>12.1f}")
print()
print(f"written: {sys.argv[2]}")
EOF
cp "$OUT" bench-results/latest.json
