#!/usr/bin/env bash
# Icechunk benchmark (figures, not a test): the chunk GET rate of /zarr over an icechunk
# dataset against the same data served from its NetCDF file, by one server, caches off, with
# wrk cycling over every chunk of `tas` (c=8). The repository is the harness's daily `tas`
# (3650 x 192 x 384, 120-step chunks) written by xarray into icechunk with the same chunks
# and zlib level 1 (numcodecs' zlib in Zarr v3), as the file has.
#
# Usage: tests/bench/icechunk.sh   (env: DATA=/tmp/anchors-data, OUT=/tmp/cloudify-bench-icechunk,
#        DURATION=10; needs .venv-icechunk: scripts/setup.sh --python)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
data=${DATA:-/tmp/anchors-data}
out=${OUT:-/tmp/cloudify-bench-icechunk}
duration=${DURATION:-10}
mkdir -p "$out"
source "$repo/tests/bench/server.sh"
file="$data/nc/tas_day_BENCH_gn_18500101-18591231.nc"

if [ ! -d "$out/tas.icechunk" ]; then
  "$repo/.venv-icechunk/bin/python" - "$file" "$out/tas.icechunk" <<'PY'
import sys, time
import icechunk, xarray as xr
from zarr.codecs.numcodecs import Zlib
source, path = sys.argv[1:]
start = time.perf_counter()
ds = xr.open_dataset(source)
repo = icechunk.Repository.create(icechunk.local_filesystem_storage(path))
session = repo.writable_session("main")
encoding = {"tas": {"chunks": (120, 192, 384), "compressors": [Zlib(level=1)]}}
ds.to_zarr(session.store, zarr_format=3, consolidated=False, encoding=encoding)
session.commit("tas")
print(f"icechunk repository written in {time.perf_counter() - start:.1f} s")
PY
fi
cat >> "$out/bench.toml" <<TOML

[[plugin.icechunk.repos]]
id = "tas_icechunk"
url = "$out/tas.icechunk"
TOML
cat > "$out/chunks.lua" <<'LUA'
-- every chunk of tas along time, in turn
local i = 0
request = function()
  local path = string.format("%s/zarr/tas/%d.0.0", wrk.path, i % 31)
  i = i + 1
  return wrk.format("GET", path)
end
LUA
port=$((19000 + RANDOM % 1000))
env CLOUDIFY_LOG=warn CLOUDIFY_CACHE__CHUNK_BYTES=0 CLOUDIFY_PLUGIN__ZARR__CACHE_BYTES=0 \
  "$out/bin/cloudify" serve --bind 127.0.0.1:$port --config "$out/bench.toml" >"$out/server.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null' EXIT
for _ in $(seq 300); do curl -sf -o /dev/null "http://127.0.0.1:$port/datasets/tas_icechunk/info" && break; sleep 0.1; done
for round in 1 2; do
  for id in tas tas_icechunk; do
    rate=$(wrk -t2 -c8 -d${duration}s -s "$out/chunks.lua" "http://127.0.0.1:$port/datasets/$id" | awk '/Requests\/sec/ {print $2}')
    echo "round $round $id chunk GET/s c=8: $rate"
  done
done
