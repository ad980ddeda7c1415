"""The kerchunk plugin with real clients: /kerchunk (the stored chunks, no re-encoding),
/kerchunk.json through fsspec's ReferenceFileSystem, /files with Range, reference sets
written by Python kerchunk served as datasets, and `cloudify refs scan` against kerchunk.

Values are compared with what xarray reads from the source files, and raw arrays with
netCDF4-python.
"""

import json
import subprocess

import fsspec
import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr
import zarr

from conftest import Server, _binary
from test_zarr import NETCDF, assert_same_dataset, source_dataset
from test_zarr import start as start_served

# kerchunk's NetCDF3ToZarr reads CDF-1/2 only: no Python reference set for CDF-5.
KERCHUNKED = [name for name in NETCDF if name != "cdf5"]
# Python kerchunk's sets served as datasets (nc3_single_record: see kerchunk_refs).
SERVED_SETS = [name for name in KERCHUNKED if name != "nc3_single_record"]


def parquet_sets(files):
    """Python kerchunk's reference sets also as parquet (kerchunk.df.refs_to_dataframe)."""
    from kerchunk.df import refs_to_dataframe

    for name in SERVED_SETS:
        out = files / f"{name}.nc.kerchunk.parq"
        if not out.exists():
            refs_to_dataframe(json.loads((files / f"{name}.nc.kerchunk.json").read_text()), str(out), record_size=4)


def reference_datasets(files):
    """Python kerchunk's sets of the test files, JSON and parquet, as `[[datasets]]`."""
    parquet_sets(files)
    return "\n".join(
        f'[[datasets]]\nid = "{name}_refs"\npath = "{files}/{name}.nc.kerchunk.json"\n\n'
        f'[[datasets]]\nid = "{name}_parq"\npath = "{files}/{name}.nc.kerchunk.parq"\n'
        for name in SERVED_SETS
    )


def start(files, cache_dir, tmp_path_factory, extra=""):
    """The interop suite's server (test_zarr's datasets) with the reference sets added."""
    return start_served(files, cache_dir, tmp_path_factory, "\n" + reference_datasets(files) + extra)


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    srv = start(files, cache_dir, tmp_path_factory)
    yield srv
    srv.stop()


def reference_options(url):
    """fsspec's ReferenceFileSystem over HTTP, asynchronous as zarr-python 3 needs it."""
    return {"fo": url, "remote_protocol": "http", "remote_options": {"asynchronous": True}, "asynchronous": True}


def kerchunk_refs(files, name):
    """Python kerchunk's references of a test file, less those past the end of the file:
    NetCDF3ToZarr counts one record too many in a file whose only record variable fills
    each record exactly (nc3_single_record: 6 records of 6 bytes in a 130-byte file whose
    data starts at 100; netCDF4-python reads 5)."""
    doc = json.loads((files / f"{name}.nc.kerchunk.json").read_text())
    refs = doc.get("refs", doc)
    size = (files / f"{name}.nc").stat().st_size
    return {k: v for k, v in refs.items() if not (isinstance(v, list) and len(v) == 3 and v[1] + v[2] > size)}


def ranges(refs):
    return {k: (v[1], v[2]) for k, v in refs.items() if isinstance(v, list) and len(v) == 3}


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("name", NETCDF + ["series"])
def test_xarray_reads_the_stored_chunks(served, files, name, fmt):
    url = f"{served.url}/datasets/{name}/kerchunk"
    got = xr.open_dataset(url, engine="zarr", zarr_format=fmt, consolidated=True)
    assert_same_dataset(got.load(), source_dataset(files, name), name)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("name", ["nc4_chunked", "nc4_sparse", "nc3_classic", "cdf5"])
def test_zarr_python_reads_raw_arrays_like_netcdf4(served, files, name, fmt):
    group = zarr.open_group(f"{served.url}/datasets/{name}/kerchunk", mode="r", zarr_format=fmt)
    with netCDF4.Dataset(files / f"{name}.nc") as nc:
        nc.set_auto_maskandscale(False)
        nc.set_auto_chartostring(False)
        assert set(group.array_keys()) == set(nc.variables)
        for var in nc.variables:
            expected = np.asarray(nc[var][...])
            np.testing.assert_array_equal(group[var][...], expected, err_msg=f"{name}/{var}")


def test_chunks_are_the_bytes_stored_in_the_file(served, files):
    meta = requests.get(f"{served.url}/datasets/nc4_chunked/kerchunk/.zmetadata", timeout=30).json()["metadata"]
    assert meta["tas/.zarray"]["compressor"]["id"] == "zlib"
    assert meta["tas/.zarray"]["filters"] == [{"id": "shuffle", "elementsize": 4}]
    data = (files / "nc4_chunked.nc").read_bytes()
    for key, (offset, length) in ranges(kerchunk_refs(files, "nc4_chunked")).items():
        for served_key in (key, key.replace(".", "/").replace("/", "/c/", 1)):
            body = requests.get(f"{served.url}/datasets/nc4_chunked/kerchunk/{served_key}", timeout=30).content
            assert body == data[offset:offset + length], served_key
    nc3 = requests.get(f"{served.url}/datasets/nc3_classic/kerchunk/.zmetadata", timeout=30).json()["metadata"]
    assert nc3["ts/.zarray"]["dtype"] == ">f4"


@pytest.mark.parametrize("form", ["json", "parq"])
@pytest.mark.parametrize("engine", ["zarr", "kerchunk"])
@pytest.mark.parametrize("name", NETCDF + ["series"])
def test_the_reference_set_opens_through_fsspec(served, files, name, engine, form):
    url = f"{served.url}/datasets/{name}/kerchunk.{form}"
    if engine == "zarr":
        got = xr.open_dataset("reference://", engine="zarr",
                              backend_kwargs={"consolidated": False, "storage_options": reference_options(url)})
    else:
        got = xr.open_dataset(url, engine="kerchunk")
    assert_same_dataset(got.load(), source_dataset(files, name), name)


@pytest.mark.parametrize("name", KERCHUNKED)
def test_exported_offsets_equal_python_kerchunk(served, files, name):
    refs = requests.get(f"{served.url}/datasets/{name}/kerchunk.json", timeout=30).json()["refs"]
    theirs = ranges(kerchunk_refs(files, name))
    ours = ranges(refs)
    # Chunks under the inline threshold (500 bytes) are inlined: the same bytes.
    data = (files / f"{name}.nc").read_bytes()
    for key, (offset, length) in theirs.items():
        if key in ours:
            assert ours[key] == (offset, length), key
            assert refs[key][0] == f"{served.url}/datasets/{name}/files/{name}.nc"
        else:
            import base64
            assert base64.b64decode(refs[key].removeprefix("base64:")) == data[offset:offset + length], key


@pytest.mark.parametrize("name", KERCHUNKED)
def test_refs_scan_equals_python_kerchunk(files, tmp_path, name):
    """The JSON output's ranges equal kerchunk's; the JSON and parquet outputs open alike."""
    out = tmp_path / f"{name}.json"
    subprocess.run([str(_binary()), "refs", "scan", str(files / f"{name}.nc"), "--inline-threshold", "0", "-o", str(out)],
                   check=True, timeout=120)
    ours = json.loads(out.read_text())
    assert ours["version"] == 1
    theirs = kerchunk_refs(files, name)
    # kerchunk leaves fletcher32 variables out; cloudify references them like any other.
    kept = {key.split("/")[0] for key in theirs if key.endswith("/.zarray")}
    assert {k: v for k, v in ranges(ours["refs"]).items() if k.split("/")[0] in kept} == ranges(theirs)
    if name == "nc4_sparse":
        assert "checked" not in kept and ranges(ours["refs"])["checked/0.0"][1] > 0
    got = xr.open_dataset("reference://", engine="zarr",
                          backend_kwargs={"consolidated": False, "storage_options": {"fo": str(out)}})
    assert_same_dataset(got.load(), source_dataset(files, name), name)
    parquet = tmp_path / f"{name}.parq"
    subprocess.run([str(_binary()), "refs", "scan", str(files / f"{name}.nc"), "-o", str(parquet)], check=True, timeout=120)
    assert (parquet / ".zmetadata").is_file()
    got = xr.open_dataset(str(parquet), engine="kerchunk")
    assert_same_dataset(got.load(), source_dataset(files, name), f"{name} parquet")


def test_refs_scan_joins_a_series_like_multizarrtozarr(files, tmp_path):
    out = tmp_path / "series.json"
    parts = sorted((files / "series").glob("tas_*.nc"))
    subprocess.run([str(_binary()), "refs", "scan", *map(str, parts), "--concat-dim", "time", "-o", str(out)],
                   check=True, timeout=120)
    got = xr.open_dataset(str(out), engine="kerchunk")
    assert_same_dataset(got.load(), source_dataset(files, "series"), "series")
    bad = subprocess.run([str(_binary()), "refs", "scan", str(files / "nc4_chunked.nc"), "-o", str(tmp_path / "x.yaml")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "parquet" in bad.stderr


@pytest.mark.parametrize("form", ["refs", "parq"])
@pytest.mark.parametrize("name", SERVED_SETS)
def test_python_kerchunk_reference_sets_are_served(served, files, name, form):
    # kerchunk names both dimensions of a character array after the first (station, station):
    # xarray cannot open that variable from kerchunk's own set either.
    skip = {"nc4_contiguous": ["station"]}.get(name, [])
    # What the set itself holds, read by kerchunk's own xarray backend: it leaves out
    # fletcher32 variables and the data of compact ones (zeros), and never-written chunks of
    # variables without _FillValue read as zeros (the NetCDF library reads its default fill;
    # cloudify's exports inline those).
    expected = xr.open_dataset(str(files / f"{name}.nc.kerchunk.json"), engine="kerchunk", drop_variables=skip).load()
    dataset = f"{served.url}/datasets/{name}_{form}"
    got = xr.open_dataset(f"{dataset}/zarr", engine="zarr", consolidated=True, drop_variables=skip)
    assert_same_dataset(got.load(), expected, f"{name}_{form}")
    # The same references come back out, and the stored chunks pass through /kerchunk.
    refs = requests.get(f"{dataset}/kerchunk.json", timeout=30).json()["refs"]
    theirs = ranges(kerchunk_refs(files, name))
    assert ranges(refs) == {k: v for k, v in theirs.items() if k in ranges(refs)}
    assert ranges(refs) or name != "nc4_chunked", "chunks over 500 bytes stay references"
    raw = xr.open_dataset(f"{dataset}/kerchunk", engine="zarr", consolidated=True, drop_variables=skip)
    assert_same_dataset(raw.load(), expected, f"{name}_{form}/kerchunk")


def test_files_answer_ranges_like_a_static_server(served, files):
    url = f"{served.url}/datasets/nc4_chunked/files/nc4_chunked.nc"
    data = (files / "nc4_chunked.nc").read_bytes()
    listing = requests.get(f"{served.url}/datasets/nc4_chunked/files/", timeout=30).json()
    assert listing == [{"name": "nc4_chunked.nc", "url": url, "size": len(data), "last_modified": listing[0]["last_modified"]}]
    whole = requests.get(url, timeout=30)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    etag, modified = whole.headers["etag"], whole.headers["last-modified"]
    part = requests.get(url, headers={"Range": "bytes=100-1099"}, timeout=30)
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=30)
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert requests.get(url, headers={"Range": f"bytes={len(data)}-"}, timeout=30).status_code == 416
    head = requests.head(url, timeout=30)
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data) and head.headers["etag"] == etag
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=30).status_code == 304
    assert requests.get(url, headers={"If-Match": etag, "Range": "bytes=0-3"}, timeout=30).content == data[:4]
    assert requests.get(url, headers={"If-Match": '"stale"'}, timeout=30).status_code == 412
    assert requests.get(url, headers={"If-Unmodified-Since": modified}, timeout=30).status_code == 200
    assert requests.get(url, headers={"If-Unmodified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"}, timeout=30).status_code == 412
    # A range of an older version is never mixed in: If-Range that does not match gets it all.
    assert requests.get(url, headers={"If-Range": '"old"', "Range": "bytes=0-3"}, timeout=30).content == data
    # fsspec reads it as a random-access file.
    with fsspec.open(url, "rb", block_size=4096) as f:
        f.seek(2000)
        assert f.read(5000) == data[2000:7000]
    assert requests.get(f"{served.url}/datasets/nc4_chunked/files/other.nc", timeout=30).status_code == 404
    assert requests.get(f"{served.url}/datasets/nc4_chunked/files/..%2F..%2Fetc%2Fpasswd", timeout=30).status_code == 404


def test_large_ranges_stream_in_pieces(served, files):
    # The series' first file is the largest test file; a range over 1 MiB would be streamed,
    # so read the whole file, then compare.
    name = sorted((files / "series").glob("tas_*.nc"))[0].name
    data = (files / "series" / name).read_bytes()
    got = requests.get(f"{served.url}/datasets/series/files/{name}", timeout=30)
    assert got.status_code == 200 and got.content == data


@pytest.mark.parametrize("key", ["nope/.zarray", "nope/0.0.0", "tas/9.0.0", "tas/0.0", "tas/x.y.z", "whatever"])
def test_bad_keys_are_json_404s(served, key):
    response = requests.get(f"{served.url}/datasets/nc4_chunked/kerchunk/{key}", timeout=30)
    assert response.status_code == 404 and "error" in response.json()


def test_unknown_dataset_and_targets_config(files, cache_dir, tmp_path_factory):
    srv = start(files, cache_dir, tmp_path_factory, '\n[plugin.kerchunk]\ntargets = "source"\ninline_threshold = 0\n')
    try:
        assert requests.get(f"{srv.url}/datasets/missing/kerchunk.json", timeout=30).status_code == 404
        assert requests.get(f"{srv.url}/datasets/missing/files/", timeout=30).status_code == 404
        refs = requests.get(f"{srv.url}/datasets/nc4_chunked/kerchunk.json", timeout=30).json()["refs"]
        assert ranges(refs) == ranges(kerchunk_refs(files, "nc4_chunked"))
        assert refs["tas/0.0.0"][0] == str((files / "nc4_chunked.nc").resolve())
    finally:
        srv.stop()


@pytest.mark.parametrize("form", ["json", "parq"])
def test_reference_sets_with_http_targets_are_served(served, files, cache_dir, tmp_path_factory, form):
    """A second server serves the first one's reference set: the set and every chunk come over
    HTTP (the chunks as Range requests to the first server's /files)."""
    config = tmp_path_factory.mktemp("config") / "cloudify.toml"
    config.write_text(f"""
[demo]
enabled = false

[[datasets]]
id = "remote"
path = "{served.url}/datasets/nc4_chunked/kerchunk.{form}"
""")
    second = Server("--config", str(config), cache_dir=cache_dir)
    try:
        refs = requests.get(f"{second.url}/datasets/remote/kerchunk.json", timeout=30).json()["refs"]
        assert refs["tas/0.0.0"][0] == f"{served.url}/datasets/nc4_chunked/files/nc4_chunked.nc"
        got = xr.open_dataset(f"{second.url}/datasets/remote/zarr", engine="zarr", consolidated=True)
        assert_same_dataset(got.load(), source_dataset(files, "nc4_chunked"), f"remote {form}")
    finally:
        second.stop()
