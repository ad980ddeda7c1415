"""Writes the NetCDF test files with netCDF4-python, and next to each what netCDF4-python
reads back (every variable as raw little-endian bytes) and Python kerchunk's references.

Usage: python make_netcdf.py OUT_DIR   (writes OUT_DIR/manifest.json describing everything)
"""

import json
import sys
import warnings
from pathlib import Path

import h5py
import netCDF4
import numpy as np


def coords(ds, nlat=30, nlon=40):
    ds.createDimension("lat", nlat)
    ds.createDimension("lon", nlon)
    lat = ds.createVariable("lat", "f8", ("lat",))
    lat.units = "degrees_north"
    lat.standard_name = "latitude"
    lat[:] = np.linspace(-87.0, 87.0, nlat)
    lon = ds.createVariable("lon", "f8", ("lon",))
    lon.units = "degrees_east"
    lon[:] = np.linspace(0.0, 351.0, nlon)


def field(shape, seed):
    rng = np.random.default_rng(seed)
    smooth = np.sin(np.arange(np.prod(shape)).reshape(shape) / 17.0) * 20 + 280
    return smooth + rng.normal(0, 0.5, shape)


def nc4_chunked(path):
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "chunked, shuffle + zlib"
        ds.Conventions = "CF-1.8"
        ds.history = ["made by", "make_netcdf.py"][0]
        coords(ds)
        ds.createDimension("time", None)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "days since 2000-01-01 00:00:00"
        time.calendar = "noleap"
        time.standard_name = "time"
        time[:] = np.arange(5) * 1.5
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(1, 15, 20),
                                zlib=True, shuffle=True, complevel=4, fill_value=np.float32(1e20))
        tas.units = "K"
        tas.long_name = "Near-Surface Air Temperature"
        tas.valid_range = np.array([150.0, 350.0], dtype="f4")
        tas[:] = field((5, 30, 40), 1)
        # Edge chunks: 30 x 40 in chunks of 16 x 25.
        edge = ds.createVariable("edge", "i4", ("lat", "lon"), chunksizes=(16, 25), zlib=True, complevel=1)
        edge[:] = np.arange(30 * 40, dtype="i4").reshape(30, 40)


def nc4_contiguous(path):
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        coords(ds, 12, 16)
        orog = ds.createVariable("orog", "f8", ("lat", "lon"), contiguous=True)
        orog.units = "m"
        orog[:] = field((12, 16), 2) * 10
        mask = ds.createVariable("mask", "u1", ("lat", "lon"), contiguous=True)
        mask[:] = (np.arange(12 * 16) % 3 == 0).reshape(12, 16)
        height = ds.createVariable("height", "f8", ())
        height.units = "m"
        height[...] = 2.0
        # Text: a chunked, compressed character array that xarray decodes to str (_Encoding).
        ds.createDimension("station", 3)
        ds.createDimension("namelen", 8)
        station = ds.createVariable("station", "S1", ("station", "namelen"), zlib=True, chunksizes=(2, 8))
        station._Encoding = "utf-8"
        station[:] = np.array(["Hamburg", "Bonn", "Zürich"], dtype="U8")
    # Compact layout (the data inside the object header): netCDF-C never writes it, other
    # HDF5 writers do; libnetcdf reads it as a variable like any other.
    with h5py.File(path, "a") as f:
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((12, 16))
        h5py.h5d.create(f.id, b"code", h5py.h5t.STD_I32LE, space, dcpl=plist).write(
            h5py.h5s.ALL, h5py.h5s.ALL, np.arange(12 * 16, dtype="<i4").reshape(12, 16) - 50)
        f["code"].dims[0].attach_scale(f["lat"])
        f["code"].dims[1].attach_scale(f["lon"])
        f["code"].attrs["long_name"] = "compact layout"


def nc4_groups(path):
    """Sub-groups (nested), whose variables use their own dimensions and their parents'."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "groups"
        coords(ds, 6, 8)
        orog = ds.createVariable("orog", "f4", ("lat", "lon"))
        orog[:] = field((6, 8), 5)
        forecast = ds.createGroup("forecast")
        forecast.description = "a sub-group"
        forecast.createDimension("step", None)
        step = forecast.createVariable("step", "i4", ("step",))
        step.units = "hours"
        step[:] = [0, 6, 12]
        tas = forecast.createVariable("tas", "f4", ("step", "lat", "lon"), chunksizes=(1, 3, 8), zlib=True,
                                      fill_value=np.float32(-1e30))
        tas.units = "K"
        tas[:] = field((3, 6, 8), 6)
        members = forecast.createGroup("members")
        members.createDimension("member", 4)
        spread = members.createVariable("spread", "f8", ("member", "step"))
        spread[:] = np.arange(12, dtype="f8").reshape(4, 3) / 4
        name = members.createVariable("name", str, ("member",))
        name[:] = np.array(["a", "bb", "ccc", "dddd"], dtype=object)


def nc4_strings(path):
    """Variable-length strings (NetCDF4 `string`): contiguous, chunked with edge chunks, a
    scalar, one with a `_FillValue` and elements never written, one without fill mode."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "strings"
        ds.createDimension("station", 5)
        ds.createDimension("obs", 3)
        names = ds.createVariable("station_name", str, ("station",))
        names.long_name = "station name"
        names[:] = np.array(["Hamburg", "Bonn", "Zürich", "", "a name with spaces ✓"], dtype=object)
        flag = ds.createVariable("flag", str, ("station", "obs"), chunksizes=(2, 2))
        flag[:] = np.array([[f"s{i}o{j}" * (i + 1) for j in range(3)] for i in range(5)], dtype=object)
        label = ds.createVariable("label", str, ())
        label[0] = "scalar ✓"
        sparse = ds.createVariable("sparse", str, ("station",), fill_value="missing")
        sparse[1] = "one"
        nofill = ds.createVariable("nofill", str, ("station",), fill_value=False)
        nofill[2] = "two"
        temp = ds.createVariable("temp", "f4", ("station",))
        temp.coordinates = "station_name"
        temp[:] = np.arange(5, dtype="f4") + 0.5


def nc4_packed(path):
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        coords(ds, 10, 10)
        ds.createDimension("time", 4)
        pr = ds.createVariable("pr", "i2", ("time", "lat", "lon"), chunksizes=(2, 10, 10), zlib=True,
                               fill_value=np.int16(-32768))
        pr.scale_factor = 0.01
        pr.add_offset = 5.0
        pr.missing_value = np.int16(-32767)
        pr.units = "kg m-2 d-1"
        pr.set_auto_maskandscale(False)
        data = (np.arange(400) % 1000 - 500).astype("i2").reshape(4, 10, 10)
        data[0, 0, :3] = -32768
        data[1, 1, :2] = -32767
        pr[:] = data


def nc4_sparse(path):
    """Chunks never written read as the fill value; a big-endian variable; a fletcher32 one."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        coords(ds, 20, 20)
        sparse = ds.createVariable("sparse", "f4", ("lat", "lon"), chunksizes=(10, 10), zlib=True,
                                   fill_value=np.float32(-999.0))
        sparse[0:10, 0:10] = np.ones((10, 10), dtype="f4") * 3.5
        sparse[10:20, 10:20] = np.ones((10, 10), dtype="f4") * 7.25
        big = ds.createVariable("big", "f8", ("lat", "lon"), chunksizes=(5, 20), zlib=True, shuffle=True,
                                endian="big")
        big[:] = field((20, 20), 3)
        nofill = ds.createVariable("nofill", "i4", ("lat", "lon"), chunksizes=(10, 10))
        nofill[0:10, :] = 1
        checked = ds.createVariable("checked", "f4", ("lat", "lon"), chunksizes=(10, 10), fletcher32=True)
        checked[:] = field((20, 20), 4).astype("f4")


def nc4_calendars(path):
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.createDimension("time", 3)
        for name, calendar, units in [
            ("t_360", "360_day", "days since 1850-01-01"),
            ("t_julian", "julian", "hours since 1582-10-01 12:00:00"),
            ("t_allleap", "all_leap", "days since 2001-02-28"),
            ("t_prolgreg", "proleptic_gregorian", "seconds since 1970-01-01T00:00:00Z"),
            ("t_366", "366_day", "days since 0001-01-01"),
        ]:
            v = ds.createVariable(name, "f8", ("time",))
            v.units = units
            v.calendar = calendar
            v[:] = [0.0, 59.0, 365.0]


def nc3(path, fmt):
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = f"{fmt} file"
        ds.comment = "string attribute"
        ds.version = np.int32(3)
        coords(ds, 6, 8)
        ds.createDimension("time", None)
        ds.createDimension("nv", 3)
        ds.createDimension("strlen", 5)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "days since 1850-01-01"
        time.calendar = "360_day"
        ts = ds.createVariable("ts", "f4", ("time", "lat", "lon"), fill_value=np.float32(-1e30))
        ts.units = "K"
        # An odd-sized record variable: records are padded to 4 bytes.
        flag = ds.createVariable("flag", "i2", ("time", "nv"))
        name = ds.createVariable("name", "S1", ("strlen",))
        name[:] = netCDF4.stringtochar(np.array(["abcde"], dtype="S5"))[0]
        # A record variable of 3 characters: each record is padded to 4 bytes in the file.
        ds.createDimension("codelen", 3)
        code = ds.createVariable("code", "S1", ("time", "codelen"))
        scalar = ds.createVariable("scalar", "i4", ())
        scalar[...] = 42
        for r in range(4):
            time[r] = r * 30.0
            ts[r] = field((6, 8), 10 + r).astype("f4")
            flag[r] = np.array([r, -r, 7], dtype="i2")
            code[r] = netCDF4.stringtochar(np.array([f"r{r}x"], dtype="S3"))[0]


def nc3_single_record(path):
    """One record variable of odd size: its records are not padded."""
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        v = ds.createVariable("v", "i2", ("time", "x"))
        for r in range(5):
            v[r] = np.array([r, r * 10, -r], dtype="i2")


def cdf5(path):
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_DATA") as ds:
        ds.createDimension("x", 7)
        ds.createDimension("time", None)
        for name, dtype in [("u8", "u1"), ("u16", "u2"), ("u32", "u4"), ("i64", "i8"), ("u64", "u8")]:
            v = ds.createVariable(name, dtype, ("time", "x"))
            v[0:2] = (np.arange(14) * 3).astype(dtype).reshape(2, 7)


WRITERS = {
    "nc4_chunked.nc": nc4_chunked,
    "nc4_contiguous.nc": nc4_contiguous,
    "nc4_packed.nc": nc4_packed,
    "nc4_sparse.nc": nc4_sparse,
    "nc4_calendars.nc": nc4_calendars,
    "nc4_strings.nc": nc4_strings,
    "nc4_groups.nc": nc4_groups,
    "nc3_classic.nc": lambda p: nc3(p, "NETCDF3_CLASSIC"),
    "nc3_64bit.nc": lambda p: nc3(p, "NETCDF3_64BIT_OFFSET"),
    "nc3_single_record.nc": nc3_single_record,
    "cdf5.nc": cdf5,
}


def series(out):
    """Ten yearly files of monthly data, to be joined along time."""
    folder = out / "series"
    folder.mkdir(exist_ok=True)
    for i, year in enumerate(range(2000, 2010)):
        with netCDF4.Dataset(folder / f"tas_{year}.nc", "w", format="NETCDF4") as ds:
            ds.title = "yearly series"
            coords(ds, 6, 8)
            ds.createDimension("time", None)
            time = ds.createVariable("time", "f8", ("time",))
            time.units = "days since 2000-01-01"
            time.calendar = "360_day"
            time[:] = (i * 12 + np.arange(12)) * 30.0
            tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(4, 6, 8), zlib=True)
            tas.units = "K"
            tas[:] = field((12, 6, 8), 100 + i).astype("f4")
    bad = out / "series_bad"
    bad.mkdir(exist_ok=True)
    for year, steps in [(2000, 13), (2001, 12)]:
        with netCDF4.Dataset(bad / f"tas_{year}.nc", "w", format="NETCDF4") as ds:
            coords(ds, 6, 8)
            ds.createDimension("time", None)
            tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(4, 6, 8))
            tas[:] = np.zeros((steps, 6, 8), dtype="f4")
    variables = {}
    files = sorted(folder.glob("tas_*.nc"))
    for name in ["time", "tas", "lat"]:
        parts = []
        for f in files:
            with netCDF4.Dataset(f) as ds:
                ds.set_auto_maskandscale(False)
                parts.append(np.asarray(ds[name][...]))
        values = np.concatenate(parts) if name != "lat" else parts[0]
        blob = out / f"series.{name}.bin"
        blob.write_bytes(values.astype(values.dtype.newbyteorder("<")).tobytes())
        variables[name] = {"dtype": values.dtype.name, "shape": list(values.shape), "values": blob.name}
    return {"glob": "series/tas_*.nc", "variables": variables}


def zarr_stores(out):
    """nc4_chunked.nc as Zarr v2 and v3 stores, as xarray writes them (raw values, chunks kept)."""
    import xarray as xr

    ds = xr.open_dataset(out / "nc4_chunked.nc", decode_cf=False, mask_and_scale=False, decode_times=False)
    for var in ds.variables.values():
        chunks = var.encoding.get("chunksizes")
        var.encoding = {"chunks": chunks} if chunks else {}
    for fmt in (2, 3):
        ds.to_zarr(out / f"chunked_v{fmt}.zarr", zarr_format=fmt, consolidated=True, mode="w")
    return {"chunked_v2.zarr": "nc4_chunked.nc", "chunked_v3.zarr": "nc4_chunked.nc"}


def dump(path, out):
    """What netCDF4-python reads: raw (unmasked, unscaled) values, little-endian; the
    sub-groups' under "groups" by path."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_maskandscale(False)
        ds.set_auto_chartostring(False)
        groups = {}
        walk = list(ds.groups.values())
        while walk:
            group = walk.pop(0)
            group_path = group.path.strip("/")
            groups[group_path] = dump_group(group, out, f"{path.name}.{group_path.replace('/', '.')}")
            walk.extend(group.groups.values())
        return dump_group(ds, out, path.name), groups


def dump_group(ds, out, stem):
    """One group's variables (set_auto_* are inherited from the file)."""
    variables = {}
    for name, var in ds.variables.items():
        if var.dtype == str:  # variable-length strings: the list itself, in C order
            strings = np.asarray(var[...], dtype=object).ravel().tolist()
            variables[name] = {"dtype": "object", "shape": list(var.shape), "strings": strings}
            continue
        values = np.asarray(var[...])
        le = values.astype(values.dtype.newbyteorder("<"))
        blob = out / f"{stem}.{name}.bin"
        blob.write_bytes(le.tobytes())
        # numpy's name ("float32"), or for characters its type string ("|S1").
        dtype = values.dtype.str if values.dtype.kind == "S" else values.dtype.name
        variables[name] = {"dtype": dtype, "shape": list(values.shape), "values": blob.name}
    return variables


def kerchunk_refs(path, out):
    warnings.simplefilter("ignore")
    if path.name.startswith("nc4"):
        from kerchunk.hdf import SingleHdf5ToZarr
        refs = SingleHdf5ToZarr(str(path), inline_threshold=0).translate()
    else:
        from kerchunk.netCDF3 import NetCDF3ToZarr
        refs = NetCDF3ToZarr(str(path), inline_threshold=0).translate()
    target = out / f"{path.name}.kerchunk.json"
    target.write_text(json.dumps(refs))
    return target.name


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for name, writer in WRITERS.items():
        path = out / name
        writer(path)
        variables, groups = dump(path, out)
        entry = {"variables": variables}
        if groups:
            entry["groups"] = groups
        if name != "cdf5.nc":  # kerchunk's NetCDF3ToZarr reads CDF-1/2 only
            entry["kerchunk"] = kerchunk_refs(path, out)
        manifest[name] = entry
    (out / "series.json").write_text(json.dumps(series(out), indent=1))
    (out / "zarr-stores.json").write_text(json.dumps(zarr_stores(out), indent=1))
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
