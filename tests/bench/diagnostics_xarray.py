"""xarray + dask on the same file as the diagnostics benchmark: wall time and peak RSS of a
monthly climatology and of the cos(lat)-weighted global-mean series, in one process.

Usage: python diagnostics_xarray.py FILE   (prints `name seconds` lines, then `peak_rss_kb N`)
"""
import resource
import sys
import time

import numpy as np
import xarray as xr


def timed(name, compute):
    start = time.perf_counter()
    compute()
    print(f"{name} {time.perf_counter() - start:.3f}", flush=True)


def main(path):
    ds = xr.open_dataset(path, chunks={})
    timed("xarray_climatology", lambda: ds.tas.groupby("time.month").mean().compute())
    timed("xarray_fldmean", lambda: ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon")).compute())
    print(f"peak_rss_kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


if __name__ == "__main__":
    main(sys.argv[1])
