#!/usr/bin/env bash
# Plot benchmark (figures, not a test): maps of the harness's daily `tas` (192 x 384, the
# size of a CMIP6 monthly field in the issue's cloudify figure: 49 s per page) with wrk.
#
#   single map PNG, uncached: p50 latency at c=1; maps/s at c=8 over distinct time steps
#   12-frame APNG, uncached:  p50 latency at c=1; APNGs/s at c=8
#   cached map:               req/s at c=8, against /zarr/.zmetadata in the same run
#   peak RSS of the server
#
# Usage: tests/bench/plot.sh   (env: DURATION=10, DATA=/tmp/anchors-data, OUT=/tmp/cloudify-bench-plot)
# Needs the harness data (../shared/bench/setup.sh and make_data.py) and wrk.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
data=${DATA:-/tmp/anchors-data}
out=${OUT:-/tmp/cloudify-bench-plot}
duration=${DURATION:-10}
mkdir -p "$out"
source "$repo/tests/bench/server.sh"

distinct="$out/distinct.lua"
cat > "$distinct" <<'LUA'
-- Every request a time step not asked before (no cache can answer it).
counter = math.random(0, 3000)
request = function()
  counter = counter + 1
  return wrk.format(nil, string.format(wrk.path, counter % 3650))
end
LUA

run() { # name env...
  local name=$1; shift
  local port=$((19000 + RANDOM % 1000))
  env CLOUDIFY_LOG=warn "$@" $out/bin/cloudify serve --bind 127.0.0.1:$port --config $out/bench.toml >"$out/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.1; done
  base="http://127.0.0.1:$port/datasets/tas"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
p50() { awk '/^ +50%/ {print $2}'; }
rps() { awk '/Requests\/sec/ {print $2}'; }

run uncached CLOUDIFY_PLUGIN__PLOT__CACHE_BYTES=0
curl -s -o "$out/map.png" "$base/plot/tas"
echo "single map c=1 p50: $(wrk -t1 -c1 -d${duration}s --latency -s "$distinct" "$base/plot/tas?isel.time=%d" | p50)"
echo "single map c=8 maps/s: $(wrk -t2 -c8 -d${duration}s -s "$distinct" "$base/plot/tas?isel.time=%d" | rps)"
echo "12-frame APNG c=1 p50: $(wrk -t1 -c1 -d${duration}s --latency "$base/plot/tas?isel.time=-12:" | p50)"
echo "12-frame APNG c=8 /s: $(wrk -t2 -c8 -d${duration}s "$base/plot/tas?isel.time=-12:" | rps)"
echo "peak RSS (uncached): $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
stop

run cached
curl -s -o /dev/null "$base/plot/tas"
echo "cached map c=8 req/s: $(wrk -t2 -c8 -d${duration}s "$base/plot/tas" | rps)"
echo "zarr .zmetadata c=8 req/s: $(wrk -t2 -c8 -d${duration}s "$base/zarr/.zmetadata" | rps)"
echo "peak RSS (cached): $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
stop
echo "picture: $out/map.png"
