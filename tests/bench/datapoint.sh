#!/usr/bin/env bash
# DataPoint benchmark (figures, not a test): `cloudify datapoint get` of a 1-year subset of a
# kerchunk product against what DataPoint does in Python for it (xarray + fsspec opening the
# same kerchunk reference set, `.sel(time=...)`, written with `to_netcdf`). The product is
# one NetCDF4 file of 10 years of daily `tas` on a 2-degree grid (zlib, chunks of 30 days)
# served by a local server; both sides run as whole commands, best of 3, files in the page
# cache.
#
# Usage: tests/bench/datapoint.sh   (env: OUT=/tmp/cloudify-bench-datapoint; uses .venv)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/cloudify-bench-datapoint}
python="$repo/.venv/bin/python"
target=${CARGO_TARGET_DIR:-$repo/target}
(cd "$repo" && cargo build --release --workspace --locked -q)
mkdir -p "$out"

"$python" - "$out/tas.nc" <<'PY'
import sys, pathlib
import netCDF4, numpy as np
path = pathlib.Path(sys.argv[1])
if not path.exists():
    days = 3650
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None); ds.createDimension("lat", 90); ds.createDimension("lon", 180)
        t = ds.createVariable("time", "f8", ("time",)); t.units = "days since 2000-01-01"; t.calendar = "noleap"
        t[:] = np.arange(days) + 0.5
        lat = ds.createVariable("lat", "f8", ("lat",)); lat.units = "degrees_north"; lat[:] = np.linspace(-89, 89, 90)
        lon = ds.createVariable("lon", "f8", ("lon",)); lon.units = "degrees_east"; lon[:] = np.arange(180) * 2.0 - 179
        v = ds.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, complevel=1, chunksizes=(30, 90, 180))
        v.units = "K"
        rng = np.random.default_rng(0)
        for start in range(0, days, 365):
            n = min(365, days - start)
            v[start:start + n] = 280 + rng.normal(0, 5, (n, 90, 180)).astype("f4")
PY
cat "$out/tas.nc" > /dev/null

cat > "$out/cloudify.toml" <<TOML
[demo]
enabled = false
[[datasets]]
id = "tas"
path = "$out/tas.nc"
TOML
log="$out/server.log"
CLOUDIFY_CACHE__DIR="$out/cache" "$target/release/cloudify" serve --bind 127.0.0.1:0 --config "$out/cloudify.toml" > "$log" 2>&1 &
pid=$!
trap 'kill $pid 2> /dev/null || true' EXIT
url=""
until url=$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1) && [ -n "$url" ]; do sleep 0.01; done
until curl -sf "$url/ready" > /dev/null; do sleep 0.01; done
item="$url/stac/collections/cloudify-all/items/tas"
href=$(curl -sf "$item" | "$python" -c 'import json,sys; print(json.load(sys.stdin)["assets"]["reference_file"]["href"])')

best() {  # the best wall time of 3 runs of a command, in seconds
  local best="" start end t
  for _ in 1 2 3; do
    start=$(date +%s.%N); "$@" > /dev/null 2>&1; end=$(date +%s.%N)
    t=$(echo "$end - $start" | bc)
    if [ -z "$best" ] || (( $(echo "$t < $best" | bc) )); then best=$t; fi
  done
  echo "$best"
}
ours=$(best "$target/release/cloudify" datapoint get "$item#reference_file" --var tas --time 2005-01:2005-12 -o "$out/ours.nc")
theirs=$(best "$python" -c "
import xarray as xr
ds = xr.open_dataset('$href', engine='kerchunk')
ds[['tas']].sel(time=slice('2005-01', '2005-12')).to_netcdf('$out/theirs.nc')")
# The same in Python without its start-up (imports): best of 3 processes.
inside=$(for _ in 1 2 3; do "$python" -c "
import time, xarray as xr
start = time.perf_counter()
ds = xr.open_dataset('$href', engine='kerchunk')
ds[['tas']].sel(time=slice('2005-01', '2005-12')).to_netcdf('$out/theirs.nc')
print(time.perf_counter() - start)"; done | sort -n | head -1)
"$python" - "$out" "$ours" "$theirs" "$inside" <<'PY'
import sys
import numpy as np, xarray as xr
out, ours, theirs, inside = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
a, b = xr.open_dataset(f"{out}/ours.nc"), xr.open_dataset(f"{out}/theirs.nc")
np.testing.assert_array_equal(a.tas.values, b.tas.values)
print(f"1-year subset ({a.tas.nbytes / 2**20:.1f} MiB of {a.sizes['time']} days) from a kerchunk product:")
print(f"  cloudify datapoint get: {ours:.3f} s")
print(f"  xarray + fsspec (kerchunk engine) + to_netcdf: {theirs:.3f} s  ({theirs / ours:.1f}x)")
print(f"  the same without Python's start-up (imports): {inside:.3f} s  ({inside / ours:.1f}x)")
PY
