#!/usr/bin/env bash
# Diagnostics benchmark (figures, not a test), on the harness's daily `tas` (10 years,
# 3650 x 192 x 384, zlib chunks of 120 steps): a monthly climatology
# (`/groupby/tas/time.month/mean`) and the global-mean series (`/fldmean/tas`), uncached wall
# time and peak RSS, against xarray + dask (`open_dataset(chunks={})`, the same computations)
# in the same run; then cached answers against `/zarr/.zmetadata` with wrk (c=8).
#
# Usage: tests/bench/diagnostics.sh   (env: DATA=/tmp/anchors-data, OUT=/tmp/cloudify-bench-diagnostics,
#        PYTHON=/tmp/anchors-venv/bin/python with xarray, dask and netCDF4; DURATION=8)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
data=${DATA:-/tmp/anchors-data}
out=${OUT:-/tmp/cloudify-bench-diagnostics}
python=${PYTHON:-/tmp/anchors-venv/bin/python}
duration=${DURATION:-8}
mkdir -p "$out"
source "$repo/tests/bench/server.sh"
file="$data/nc/tas_day_BENCH_gn_18500101-18591231.nc"

start_server() { # env...
  port=$((19000 + RANDOM % 1000))
  env CLOUDIFY_LOG=warn "$@" $out/bin/cloudify serve --bind 127.0.0.1:$port --config $out/bench.toml >"$out/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/ready" && break; sleep 0.1; done
  base="http://127.0.0.1:$port/datasets/tas"
}
stop_server() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
seconds() { curl -s -o /dev/null -w "%{time_total}" "$1"; }

# The file in the page cache first, for both sides: the figures compare computing, not disks.
cat "$file" > /dev/null
# Uncached: a fresh server per computation (no decoded chunk left from the other), no result
# cache; the whole result at once (the file's 1.1 GB is over the default max_input_bytes).
whole="CLOUDIFY_PLUGIN__DIAGNOSTICS__MAX_INPUT_BYTES=4294967296"
uncached="CLOUDIFY_PLUGIN__DIAGNOSTICS__CACHE_BYTES=0 $whole"
start_server $uncached
echo "cloudify_climatology $(seconds "$base/groupby/tas/time.month/mean")"
echo "cloudify peak RSS after climatology: $(awk '/VmHWM/ {print $2}' /proc/$pid/status) kB"
stop_server
start_server $uncached
echo "cloudify_fldmean $(seconds "$base/fldmean/tas")"
echo "cloudify peak RSS after fldmean: $(awk '/VmHWM/ {print $2}' /proc/$pid/status) kB"
stop_server
# The same climatology as a derived dataset, read by xarray through /zarr (chunk by chunk).
start_server $uncached
"$python" - "$base~groupby~tas~time.month~mean/zarr" <<'PY'
import sys, time
import xarray as xr
start = time.perf_counter()
xr.open_dataset(sys.argv[1], engine="zarr", chunks={}).tas.load()
print(f"cloudify_climatology_via_zarr {time.perf_counter() - start:.2f}")
PY
echo "cloudify peak RSS after climatology via zarr: $(awk '/VmHWM/ {print $2}' /proc/$pid/status) kB"
stop_server

"$python" "$repo/tests/bench/diagnostics_xarray.py" "$file"

start_server $whole
curl -s -o /dev/null "$base/groupby/tas/time.month/mean"
echo "cached climatology c=8 req/s: $(wrk -t2 -c8 -d${duration}s "$base/groupby/tas/time.month/mean" | awk '/Requests\/sec/ {print $2}')"
curl -s -o /dev/null "$base/fldmean/tas"
echo "cached fldmean c=8 req/s: $(wrk -t2 -c8 -d${duration}s "$base/fldmean/tas" | awk '/Requests\/sec/ {print $2}')"
echo "zarr .zmetadata c=8 req/s: $(wrk -t2 -c8 -d${duration}s "$base/zarr/.zmetadata" | awk '/Requests\/sec/ {print $2}')"
stop_server
