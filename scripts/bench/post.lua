-- wrk script for scripts/bench.sh: POSTs a small JSON body and prints one machine-readable
-- line with the run's totals and latency percentiles (microseconds), p99.9 included.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"text":"Hello world","model":"sim-model","sampling_params":{"max_new_tokens":8}}'
wrk.headers["Content-Type"] = "application/json"

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,"mean_us":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
