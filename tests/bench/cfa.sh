#!/usr/bin/env bash
# CF aggregation benchmark (figures, not a test): a 100-fragment aggregation written by cfapyx
# (100 NetCDF4 files of 12 steps of 96 x 192 `tas`, zlib, one chunk per step), opened by the
# server (start to /ready, reference cache empty, then warm) against cfapyx opening it
# (`xr.open_dataset(engine="CFA")`), and the whole variable read through /zarr against cfapyx
# reading it. Files in the page cache for both.
#
# Usage: tests/bench/cfa.sh   (env: OUT=/tmp/cloudify-bench-cfa, FRAGMENTS=100; uses .venv)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/cloudify-bench-cfa}
fragments=${FRAGMENTS:-100}
python="$repo/.venv/bin/python"
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --workspace --locked -q)
mkdir -p "$out/nc"

"$python" - "$out" "$fragments" <<'PY'
import sys, pathlib
import netCDF4, numpy as np
out, n = pathlib.Path(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    path = out / "nc" / f"tas_{i:03d}.nc"
    if path.exists():
        continue
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None); ds.createDimension("lat", 96); ds.createDimension("lon", 192)
        t = ds.createVariable("time", "f8", ("time",)); t.units = "days since 2000-01-01"; t.calendar = "360_day"
        t[:] = i * 360 + np.arange(12) * 30
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-89, 89, 96)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(192) * 1.875
        v = ds.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, complevel=1, chunksizes=(1, 96, 192))
        v.units = "K"
        v[:] = 280 + np.random.default_rng(i).normal(0, 5, (12, 96, 192)).astype("f4")
if not (out / "tas.nca").exists():
    from cfapyx import CFANetCDF
    agg = CFANetCDF(sorted(str(p) for p in (out / "nc").glob("tas_*.nc")))
    agg.create()
    agg.write(str(out / "tas.nca"))
PY
cat "$out"/nc/*.nc > /dev/null

cat > "$out/cfa.toml" <<TOML
[demo]
enabled = false
[[datasets]]
id = "tas"
path = "$out/tas.nca"
TOML
open_once() {
  local log="$out/server.log" start end
  start=$(date +%s.%N)
  CLOUDIFY_LOG=info CLOUDIFY_CACHE__DIR="$out/cache" "$target/release/cloudify" serve --bind 127.0.0.1:0 \
    --config "$out/cfa.toml" > "$log" 2>&1 &
  local pid=$!
  local url=""
  until url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1) && [ -n "$url" ]; do sleep 0.005; done
  until curl -sf "$url/ready" > /dev/null; do sleep 0.005; done
  end=$(date +%s.%N)
  echo "$url" > "$out/url"
  echo "$end - $start" | bc
  echo "$pid" > "$out/pid"
}
stop() { kill "$(cat "$out/pid")"; wait "$(cat "$out/pid")" 2> /dev/null || true; }

rm -rf "$out/cache"
first=$(open_once); stop
warm=$(open_once)
url=$(cat "$out/url")
"$python" - "$out/tas.nca" "$url" "$first" "$warm" <<'PY'
import sys, time
import xarray as xr
path, url, first, warm = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
start = time.perf_counter()
theirs = xr.open_dataset(path, engine="CFA")
opened = time.perf_counter() - start
start = time.perf_counter()
want = theirs.tas.values
read_theirs = time.perf_counter() - start
start = time.perf_counter()
ours = xr.open_dataset(f"{url}/datasets/tas/zarr", engine="zarr", consolidated=True)
got = ours.tas.values
read_ours = time.perf_counter() - start
assert (got == want).all()
print(f"server start to /ready: first {first:.3f} s (scans 100 fragments), warm {warm:.3f} s")
print(f"cfapyx open_dataset: {opened:.3f} s")
print(f"whole tas ({want.nbytes / 2**20:.0f} MiB): cfapyx {read_theirs:.3f} s, /zarr {read_ours:.3f} s")
PY
stop
