"""/datasets/{id}/zarr: real clients read every source exactly as from the source file.

xarray opens the Zarr v2 and v3 views (with and without dask) and every variable equals
`xr.open_dataset(source)`; zarr-python 3 reads the raw arrays, compared with netCDF4-python;
rechunked datasets and other served codecs give the same values; HTTP caching and errors
follow the spec.
"""

import email.utils

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr
import zarr

from conftest import Server

NETCDF = ["nc4_chunked", "nc4_contiguous", "nc4_packed", "nc4_sparse", "nc4_calendars",
          "nc3_classic", "nc3_64bit", "nc3_single_record", "cdf5"]
ZARR_STORES = ["chunked_v2", "chunked_v3"]


def config_text(files, extra=""):
    return f"""
[demo]
enabled = false

[[folders]]
path = "{files}"

[[datasets]]
id = "series"
path = "{files}/series/tas_*.nc"

[[datasets]]
id = "rechunked"
path = "{files}/nc4_chunked.nc"

[[datasets]]
id = "rechunked_bytes"
path = "{files}/nc4_packed.nc"

[plugin.zarr.rechunk.rechunked]
chunks = {{ time = 2, lat = 0 }}

[plugin.zarr.rechunk.rechunked_bytes]
target_bytes = 1000
{extra}
"""


def start(files, cache_dir, tmp_path_factory, extra=""):
    config = tmp_path_factory.mktemp("config") / "cloudify.toml"
    config.write_text(config_text(files, extra))
    return Server("--config", str(config), cache_dir=cache_dir)


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    srv = start(files, cache_dir, tmp_path_factory)
    yield srv
    srv.stop()


def source_dataset(files, name):
    """What xarray reads from the source of dataset `name`."""
    if name == "series":
        parts = [xr.open_dataset(f) for f in sorted((files / "series").glob("tas_*.nc"))]
        return xr.concat(parts, dim="time", data_vars="minimal", coords="minimal", compat="override")
    if name in ZARR_STORES:
        return xr.open_dataset(files / f"{name}.zarr", engine="zarr")
    source = {"rechunked": "nc4_chunked", "rechunked_bytes": "nc4_packed"}.get(name, name)
    return xr.open_dataset(files / f"{source}.nc")


def same_attribute(a, b):
    """Attributes as JSON carries them: numbers lose their numpy type, 1-element arrays their shape."""
    if isinstance(b, str) or isinstance(a, str):
        return a == b
    a, b = np.atleast_1d(np.asarray(a)), np.atleast_1d(np.asarray(b))
    if a.dtype.kind in "biuf" and b.dtype.kind in "biuf":
        return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, equal_nan=True)
    return np.array_equal(a, b)


def assert_attrs(served, source, what):
    assert set(served) == set(source), what
    for key in source:
        assert same_attribute(served[key], source[key]), (what, key, served[key], source[key])


def assert_same_dataset(got, expected, name):
    wanted = set(expected.variables)
    assert set(got.variables) == wanted, name
    assert dict(got.sizes) == {d: n for d, n in expected.sizes.items() if any(d in expected[v].dims for v in wanted)}
    assert_attrs(got.attrs, expected.attrs, name)
    for var in wanted:
        a, b = got[var], expected[var]
        what = f"{name}/{var}"
        assert a.dims == b.dims, what
        assert_attrs(a.attrs, b.attrs, what)
        for key in ("units", "calendar"):
            assert a.encoding.get(key) == b.encoding.get(key), (what, key)
        if b.dtype.kind == "f" and "scale_factor" in b.encoding:
            # A packed variable: JSON attributes have no float32, so xarray unpacks with a
            # float64 scale_factor where the NetCDF file has a float32 one.
            assert a.dtype.kind == "f", what
            np.testing.assert_allclose(a.values, b.values, rtol=1e-6, err_msg=what)
        elif b.dtype.kind in "OTU":
            # Text: numpy's unicode, objects or StringDType, as each reader chooses.
            assert a.dtype.kind in "OTU", (what, a.dtype)
            assert a.values.astype(object).tolist() == b.values.astype(object).tolist(), what
        else:
            # Byte order aside: codec "source" serves NetCDF3's big-endian chunks as they are.
            assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("="), (what, a.dtype, b.dtype)
            np.testing.assert_array_equal(a.values, b.values, err_msg=what)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("chunks", [None, {}], ids=["numpy", "dask"])
@pytest.mark.parametrize("name", NETCDF + ZARR_STORES + ["series", "rechunked", "rechunked_bytes"])
def test_xarray_reads_what_the_source_holds(served, files, name, fmt, chunks):
    url = f"{served.url}/datasets/{name}/zarr"
    got = xr.open_dataset(url, engine="zarr", zarr_format=fmt, consolidated=True, chunks=chunks)
    if chunks is not None:
        assert all(var.chunks is not None for var in got.data_vars.values() if var.ndim), "dask arrays expected"
    assert_same_dataset(got.load(), source_dataset(files, name), name)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("name", NETCDF)
def test_zarr_python_reads_raw_arrays_like_netcdf4(served, files, name, fmt):
    group = zarr.open_group(f"{served.url}/datasets/{name}/zarr", mode="r", zarr_format=fmt)
    with netCDF4.Dataset(files / f"{name}.nc") as nc:
        nc.set_auto_maskandscale(False)
        nc.set_auto_chartostring(False)
        served_arrays = set(group.array_keys())
        expected = set(nc.variables)
        assert served_arrays == expected
        for var in expected:
            array = group[var]
            assert array.shape == nc[var].shape, var
            assert array.dtype == nc[var].dtype.newbyteorder("="), var
            np.testing.assert_array_equal(array[...], np.asarray(nc[var][...]), err_msg=f"{name}/{var}")


def test_rechunked_arrays_have_the_configured_chunks(served):
    meta = requests.get(f"{served.url}/datasets/rechunked/zarr/.zmetadata", timeout=30).json()["metadata"]
    assert meta["tas/.zarray"]["chunks"] == [2, 30, 20]  # time 2, lat whole, lon as stored
    v3 = requests.get(f"{served.url}/datasets/rechunked_bytes/zarr/zarr.json", timeout=30).json()
    for name, array in v3["consolidated_metadata"]["metadata"].items():
        shape = array["chunk_grid"]["configuration"]["chunk_shape"]
        itemsize = np.dtype(array["data_type"]).itemsize
        assert np.prod(shape, dtype=int) * itemsize <= 1000 or all(s == 1 for s in shape[:-1]), name


@pytest.fixture(scope="module", params=["zlib", "zstd", "none", "blosc-zstd", "source"])
def other_codec(request, files, cache_dir, tmp_path_factory):
    srv = start(files, cache_dir, tmp_path_factory, f'\n[plugin.zarr]\ncodec = "{request.param}"\n')
    yield request.param, srv
    srv.stop()


@pytest.mark.parametrize("fmt", [2, 3])
def test_every_served_codec_reads_back(other_codec, files, fmt):
    codec, srv = other_codec
    meta = requests.get(f"{srv.url}/datasets/nc4_chunked/zarr/.zmetadata", timeout=30).json()["metadata"]
    compressor = meta["tas/.zarray"]["compressor"]
    # "source": NetCDF4's own shuffle + zlib, declared for the stored chunks served as they are.
    expected = {"zlib": "zlib", "zstd": "zstd", "none": None, "blosc-zstd": "blosc", "source": "zlib"}[codec]
    assert (compressor or {}).get("id") == expected
    if codec == "source":
        assert meta["tas/.zarray"]["filters"] == [{"id": "shuffle", "elementsize": 4}]
        nc3 = requests.get(f"{srv.url}/datasets/nc3_classic/zarr/.zmetadata", timeout=30).json()["metadata"]
        assert nc3["ts/.zarray"]["dtype"] == ">f4" and nc3["ts/.zarray"]["compressor"] is None
    for name in ["nc4_chunked", "nc4_sparse", "nc4_packed", "nc3_classic", "series", "chunked_v3", "rechunked"]:
        got = xr.open_dataset(f"{srv.url}/datasets/{name}/zarr", engine="zarr", zarr_format=fmt)
        assert_same_dataset(got.load(), source_dataset(files, name), name)


def test_validators_and_conditional_requests(served):
    for key in [".zmetadata", "zarr.json", "tas/.zarray", "tas/0.0.0", "tas/c/0/0/0"]:
        url = f"{served.url}/datasets/nc4_chunked/zarr/{key}"
        first = requests.get(url, timeout=30)
        assert first.status_code == 200, key
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert first.headers["cache-control"] == "public, max-age=3600"
        assert requests.get(url, timeout=30).headers["etag"] == etag, "stable ETag"
        assert requests.get(url, headers={"If-None-Match": etag}, timeout=30).status_code == 304
        assert requests.get(url, headers={"If-None-Match": '"other"'}, timeout=30).status_code == 200
        assert requests.get(url, headers={"If-Modified-Since": modified}, timeout=30).status_code == 304
        before = email.utils.format_datetime(email.utils.parsedate_to_datetime(modified).replace(year=2000), usegmt=True)
        assert requests.get(url, headers={"If-Modified-Since": before}, timeout=30).status_code == 200
        head = requests.head(url, timeout=30)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(first.content)
    v2 = requests.get(f"{served.url}/datasets/nc4_chunked/zarr/tas/1.1.0", timeout=30)
    v3 = requests.get(f"{served.url}/datasets/nc4_chunked/zarr/tas/c/1/1/0", timeout=30)
    assert v2.content == v3.content and v2.headers["content-type"] == "application/octet-stream"


@pytest.mark.parametrize("key", [
    "nope/.zarray", "nope/0.0.0", "tas/9.0.0", "tas/0.0", "tas/c/0/0", "tas/0.0.0.0", "tas/x.y.z",
    "tas/c/0/0/-1", "tas/.zgroup", "lat/c/9", "whatever",
])
def test_bad_keys_are_json_404s(served, key):
    response = requests.get(f"{served.url}/datasets/nc4_chunked/zarr/{key}", timeout=30)
    assert response.status_code == 404, key
    assert "error" in response.json()


def test_unknown_dataset_is_404_and_the_server_keeps_serving(served):
    response = requests.get(f"{served.url}/datasets/missing/zarr/.zmetadata", timeout=30)
    assert response.status_code == 404 and "missing" in response.json()["error"]
    assert requests.get(f"{served.url}/datasets/nc4_chunked/zarr/.zmetadata", timeout=30).status_code == 200
