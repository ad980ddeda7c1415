"""Benchmark files: one NetCDF4 file of 10,000 chunks, and a folder of 1,000 small files."""

import sys
from pathlib import Path

import netCDF4
import numpy as np

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
with netCDF4.Dataset(out / "big.nc", "w") as ds:
    for name, n in [("time", 100), ("lat", 180), ("lon", 360)]:
        ds.createDimension(name, n)
    tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(1, 18, 36), zlib=True, shuffle=True, complevel=1)
    grid = np.sin(np.arange(180 * 360).reshape(180, 360) / 500.0) * 20 + 280
    for t in range(100):
        tas[t] = grid + np.random.default_rng(t).normal(0, 0.3, (180, 360))
small = out / "small"
small.mkdir(exist_ok=True)
for i in range(1000):
    with netCDF4.Dataset(small / f"f{i:04d}.nc", "w") as ds:
        ds.createDimension("time", 12)
        ds.createDimension("x", 10)
        v = ds.createVariable("v", "f4", ("time", "x"), zlib=True)
        v[:] = np.full((12, 10), i, dtype="f4")
