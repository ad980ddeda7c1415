#!/usr/bin/env bash
# `cloudify icechunk virtualize` against VirtualiZarr + icechunk in Python (figures, not a
# test): the same NetCDF4 files (shuffle + zlib, one chunk per time step) written into a
# virtual Icechunk repository, one file and a series of files joined along time, each tool
# in its own process, files already in the page cache for both. VirtualiZarr's recipe is its
# documentation's: HDFParser with an obstore LocalStore registry, `xr.concat`, the container
# set in the repository config, `to_icechunk`, commit. Both load the dimension coordinates.
#
# Usage: tests/bench/virtualize.sh   (env: OUT=/tmp/cloudify-bench-virtualize, FILES=10,
#        STEPS=365; makes $OUT/venv from pyenv's Python >= 3.12 with virtualizarr and icechunk)
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/cloudify-bench-virtualize}
files=${FILES:-10}
steps=${STEPS:-365}
mkdir -p "$out/nc"
if [ ! -x "$out/venv/bin/python" ]; then
  python=$(ls -d "$(pyenv root)"/versions/3.1[2-9]* | head -1)/bin/python
  "$python" -m venv "$out/venv"
  "$out/venv/bin/pip" install -q "virtualizarr[hdf]>=2,<3" "icechunk>=2.3,<3" netCDF4 xarray
fi
(cd "$repo" && cargo build --release -q)
bin=${CARGO_TARGET_DIR:-$repo/target}/release/cloudify

"$out/venv/bin/python" - "$out/nc" "$files" "$steps" <<'PY'
import sys
from pathlib import Path
import netCDF4, numpy as np
folder, files, steps = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(files):
    path = folder / f"tas_{i:02d}.nc"
    if path.exists():
        continue
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None); ds.createDimension("lat", 96); ds.createDimension("lon", 192)
        t = ds.createVariable("time", "f8", ("time",)); t.units = "days since 2000-01-01"; t.calendar = "noleap"
        t[:] = i * steps + np.arange(steps)
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-89, 89, 96)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(192) * 1.875
        v = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(1, 96, 192), zlib=True, shuffle=True, complevel=1)
        v.units = "K"
        v[:] = 280 + np.random.default_rng(i).normal(0, 5, (steps, 96, 192)).astype("f4")
PY
cat /dev/null "$out"/nc/*.nc > /dev/null  # page cache

python_virtualize() {
  "$out/venv/bin/python" - "$out/vz.icechunk" "$@" <<'PY'
import sys, time, shutil, warnings
warnings.simplefilter("ignore")
start = time.perf_counter()
import icechunk, xarray as xr
from obstore.store import LocalStore
from obspec_utils.registry import ObjectStoreRegistry
from virtualizarr import open_virtual_dataset
from virtualizarr.parsers import HDFParser
imported = time.perf_counter()
repo_path, files = sys.argv[1], sys.argv[2:]
shutil.rmtree(repo_path, ignore_errors=True)
registry = ObjectStoreRegistry({"file://": LocalStore()})
parts = [open_virtual_dataset(f"file://{f}", registry=registry, parser=HDFParser(), loadable_variables=["time", "lat", "lon"]) for f in files]
vds = parts[0] if len(parts) == 1 else xr.concat(parts, dim="time", coords="minimal", compat="override")
prefix = "file://" + files[0].rsplit("/", 1)[0] + "/"
config = icechunk.RepositoryConfig.default()
config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[7:])))
repo = icechunk.Repository.create(icechunk.local_filesystem_storage(repo_path), config,
                                  authorize_virtual_chunk_access={prefix: icechunk.credentials.LocalFileSystemAccess})
session = repo.writable_session("main")
vds.vz.to_icechunk(session.store)
session.commit("virtualized")
repo.save_config()
print(f"{time.perf_counter() - imported:.3f} {imported - start:.3f}")
PY
}

ours_virtualize() {
  rm -rf "$out/ours.icechunk"
  local start end
  start=$(date +%s.%N)
  "$bin" icechunk virtualize "$@" --repo "$out/ours.icechunk" --concat-dim time > /dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}

chunks_per_file=$steps
for n in 1 "$files"; do
  set -- $(ls "$out"/nc/tas_*.nc | head -n "$n")
  for round in 1 2; do
    ours=$(ours_virtualize "$@")
    read -r theirs imports < <(python_virtualize "$@")
    chunks=$((n * chunks_per_file))
    awk -v n="$n" -v c="$chunks" -v o="$ours" -v t="$theirs" -v i="$imports" -v r="$round" 'BEGIN {
      printf "round %d, %d file(s), %d chunks: cloudify %.3f s (%.1f us/chunk, %.3f s/file), VirtualiZarr %.3f s + %.2f s imports (%.1f us/chunk, %.3f s/file): %.1fx (%.1fx with imports)\n",
        r, n, c, o, o / c * 1e6, o / n, t, i, t / c * 1e6, t / n, t / o, (t + i) / o }'
  done
done
