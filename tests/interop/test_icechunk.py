"""Icechunk repositories served as datasets (the icechunk plugin), read with xarray through
/zarr (v2 and v3) and compared with what Python's icechunk reads from the same repository at
the same ref. Runs in its own venv (.venv-icechunk: icechunk 2.x needs Python >= 3.12).
"""

import functools
import http.server
import os
import threading
import time

import icechunk
import numpy as np
import pytest
import requests
import xarray as xr
import zarr

from conftest import RangeFiles, Server
from test_stac import assert_valid


def dataset(scale, title):
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), (rng.normal(280, 5, (6, 3, 5)) * scale).astype("f4"), {"units": "K"}),
         "flag": (("lat", "lon"), np.arange(15, dtype="i2").reshape(3, 5)),
         "pr": (("time", "lat", "lon"), rng.gamma(1, 2, (6, 3, 5)), {"units": "mm/day"})},
        coords={"time": np.arange(6, dtype="f8"), "lat": [-10.0, 0.0, 10.0], "lon": np.arange(5) * 72.0},
        attrs={"title": title})
    ds.time.attrs.update(units="days since 2000-01-01", calendar="noleap")
    return ds


ENCODING = {"tas": {"chunks": (2, 3, 5)}, "pr": {"chunks": (4, 2, 2)}}


def serve(folder, *repos, env=None):
    """A server of `repos` (dicts of `[[plugin.icechunk.repos]]` keys), its config in `folder`."""
    def toml(value):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]" if isinstance(value, list) else (
            str(value) if isinstance(value, int) else f'"{value}"')
    tables = "".join("\n[[plugin.icechunk.repos]]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in repo.items())
                     for repo in repos)
    config = folder / "cloudify.toml"
    config.write_text("[demo]\nenabled = false\n" + tables)
    return Server("--config", str(config), env=env)


def write(session, ds, group=None):
    ds.to_zarr(session.store, group=group, zarr_format=3, consolidated=False, mode="w", encoding=ENCODING)


@pytest.fixture(scope="module")
def repo_path(tmp_path_factory):
    """A native repository: two commits on main (a sub-group in the second), a tag on the first."""
    path = tmp_path_factory.mktemp("icechunk") / "repo"
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    write(session, dataset(1.0, "first"))
    first = session.commit("first")
    session = repo.writable_session("main")
    write(session, dataset(1.5, "second"))
    write(session, dataset(2.0, "ocean"), group="ocean/surface")
    second = session.commit("second")
    repo.create_tag("v1", first)
    return path, first, second


@pytest.fixture(scope="module")
def served(repo_path, tmp_path_factory):
    path, first, _ = repo_path
    srv = serve(tmp_path_factory.mktemp("config"),
                {"id": "ice", "url": path, "refresh_secs": 1},
                {"id": "ice_tag", "url": path, "ref": "v1"},
                {"id": "ice_snapshot", "url": f"file://{path}", "ref": first},
                {"id": "later", "url": path.parent / "later", "refresh_secs": 1})
    yield srv
    srv.stop()


def python_read(path, group=None, **ref):
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    return xr.open_zarr(repo.readonly_session(**ref).store, group=group, consolidated=False, zarr_format=3).load()


def served_read(srv, dataset_id, fmt):
    url = f"{srv.url}/datasets/{dataset_id}/zarr"
    return xr.open_dataset(url, engine="zarr", zarr_format=fmt, consolidated=True).load()


@pytest.mark.parametrize("fmt", [2, 3])
def test_every_ref_equals_what_icechunk_reads(served, repo_path, fmt):
    path, first, second = repo_path
    for dataset_id, group, ref, snapshot in [
        ("ice", None, {"branch": "main"}, second),
        ("ice.ocean.surface", "ocean/surface", {"branch": "main"}, second),
        ("ice_tag", None, {"tag": "v1"}, first),
        ("ice_snapshot", None, {"snapshot_id": first}, first),
    ]:
        got = served_read(served, dataset_id, fmt)
        want = python_read(path, group, **ref)
        xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))
        assert got.attrs["title"] == want.attrs["title"]
        assert got.attrs["_icechunk_snapshot_id"] == snapshot


@pytest.mark.parametrize("fmt", [2, 3])
def test_kerchunk_serves_a_native_repository_stored_chunks(served, repo_path, fmt):
    """/kerchunk over an icechunk dataset: the chunks as the repository stores them (its own
    codecs declared), equal to what Python icechunk reads."""
    path, first, _ = repo_path
    got = xr.open_dataset(f"{served.url}/datasets/ice_tag/kerchunk", engine="zarr", zarr_format=fmt,
                          consolidated=True).load()
    want = python_read(path, tag="v1")
    xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))
    raw = requests.get(f"{served.url}/datasets/ice_tag/kerchunk/tas/c/0/0/0", timeout=30)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    stored = repo.readonly_session(tag="v1").store
    import asyncio
    import zarr.core.buffer

    want_bytes = asyncio.run(stored.get("tas/c/0/0/0", prototype=zarr.core.buffer.default_buffer_prototype()))
    assert raw.status_code == 200 and raw.content == want_bytes.to_bytes()


def test_plot_and_diagnostics_work_on_icechunk_datasets(served, repo_path):
    """The plugins that compute from values read icechunk datasets through the host too: an
    area mean derived from one equals xarray's on what Python icechunk reads, and a map is
    drawn."""
    path, _, _ = repo_path
    want = python_read(path, tag="v1")
    got = xr.open_dataset(f"{served.url}/datasets/ice_tag~fldmean~tas/zarr", engine="zarr").load()
    expected = want.tas.weighted(np.cos(np.deg2rad(want.lat))).mean(("lat", "lon"))
    np.testing.assert_allclose(got.tas.values, expected.values, rtol=1e-5)
    picture = requests.get(f"{served.url}/datasets/ice_tag/plot/tas", timeout=60)
    assert picture.status_code == 200 and picture.content.startswith(b"\x89PNG"), picture.text[:200]


def test_a_commit_to_the_branch_is_served_without_a_restart(served, repo_path):
    path, _, _ = repo_path
    before = requests.get(f"{served.url}/datasets/ice/zarr/.zmetadata", timeout=30)
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(path)))
    session = repo.writable_session("main")
    group = zarr.open_group(session.store, mode="r+", zarr_format=3)
    group["tas"][0, 0, 0] = -1.0
    group.attrs["title"] = "third"
    third = session.commit("third")
    # Within refresh_secs for the dataset (/info), and the store plugins' metadata TTL (30 s)
    # for /zarr.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        info = requests.get(f"{served.url}/datasets/ice/info", timeout=30).json()
        if info["global_attributes"].get("_icechunk_snapshot_id") == third:
            break
        time.sleep(0.2)
    assert info["global_attributes"]["_icechunk_snapshot_id"] == third
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline:
        zmetadata = requests.get(f"{served.url}/datasets/ice/zarr/.zmetadata", timeout=30).json()
        if zmetadata["metadata"][".zattrs"]["_icechunk_snapshot_id"] == third:
            break
        time.sleep(1)
    got = served_read(served, "ice", 3)
    assert got.attrs["_icechunk_snapshot_id"] == third
    assert got.tas.values[0, 0, 0] == -1.0
    xr.testing.assert_identical(got.drop_attrs(deep=False), python_read(path, branch="main").drop_attrs(deep=False))
    after = requests.get(f"{served.url}/datasets/ice/zarr/.zmetadata", timeout=30)
    assert after.headers["etag"] != before.headers["etag"], "a new snapshot is a new version"
    # The tag still serves the first commit.
    assert served_read(served, "ice_tag", 3).attrs["title"] == "first"


def test_an_icechunk_dataset_is_republished_as_a_repository(served, repo_path):
    """/icechunk/ of a dataset the plugin serves (no stored bytes of the server's own): the
    values are copied in as native chunks, and Python reads what it reads at the source."""
    path, first, _ = repo_path
    repo = icechunk.Repository.open(icechunk.http_storage(f"{served.url}/datasets/ice_tag/icechunk"))
    session = repo.readonly_session(branch="main")
    assert list(session.all_virtual_chunk_locations()) == []
    got = xr.open_zarr(session.store, consolidated=False, zarr_format=3).load()
    xr.testing.assert_identical(got.drop_attrs(deep=False), python_read(path, tag="v1").drop_attrs(deep=False))


def test_a_repository_that_is_missing_at_start_is_retried(served, repo_path):
    path, _, _ = repo_path
    assert "later" not in requests.get(f"{served.url}/datasets", timeout=30).json()
    assert any("icechunk repository 'later' not served" in line for line in served.log)
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(path.parent / "later")))
    session = repo.writable_session("main")
    write(session, dataset(3.0, "later"))
    session.commit("later")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and "later" not in requests.get(f"{served.url}/datasets", timeout=30).json():
        time.sleep(0.3)
    assert served_read(served, "later", 3).attrs["title"] == "later"


def test_virtual_chunks_read_where_authorized(tmp_path):
    """A virtual repository whose chunks are byte ranges of a raw file: read when its
    container is authorized, refused with the container named when it is not."""
    values = np.arange(2 * 6 * 4, dtype="<f4").reshape(12, 4)
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"HEADER--" + values.tobytes())
    prefix = f"file://{tmp_path}/"
    config = icechunk.RepositoryConfig.default()
    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(str(tmp_path))))
    storage = icechunk.local_filesystem_storage(str(tmp_path / "virtual"))
    repo = icechunk.Repository.create(storage, config,
                                      authorize_virtual_chunk_access={prefix: icechunk.credentials.LocalFileSystemAccess})
    session = repo.writable_session("main")
    root = zarr.open_group(session.store, mode="w", zarr_format=3)
    root.create_array("v", shape=(12, 4), chunks=(6, 4), dtype="f4", compressors=None, fill_value=np.nan,
                      dimension_names=["y", "x"])
    chunk_bytes = 6 * 4 * 4
    for i in range(2):
        session.store.set_virtual_ref(f"v/c/{i}/0", f"{prefix}raw.bin", offset=8 + i * chunk_bytes, length=chunk_bytes)
    session.commit("virtual")
    repo.save_config()
    srv = serve(tmp_path, {"id": "virtual", "url": tmp_path / "virtual", "authorize_virtual": [prefix]},
                {"id": "unauthorized", "url": tmp_path / "virtual"}, env={"CLOUDIFY_PLUGIN__ZARR__CACHE_BYTES": "0"})
    try:
        got = served_read(srv, "virtual", 3)
        np.testing.assert_array_equal(got.v.values, values)
        reply = requests.get(f"{srv.url}/datasets/unauthorized/zarr/v/0.0", timeout=30)
        assert reply.status_code == 403, reply.text
        assert prefix in reply.json()["error"]
        # The file the chunks point into vanishes: a JSON 500 for them, and nothing else fails.
        raw.unlink()
        reply = requests.get(f"{srv.url}/datasets/virtual/zarr/v/1.0", timeout=30)
        assert reply.status_code == 500 and "error" in reply.json()
        assert requests.get(f"{srv.url}/datasets/virtual/zarr/.zmetadata", timeout=30).status_code == 200
    finally:
        srv.stop()


def test_a_repository_over_http_is_served_read_only(repo_path, tmp_path):
    path, _, _ = repo_path
    handler = functools.partial(RangeFiles, directory=str(path.parent))
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    srv = serve(tmp_path, {"id": "web", "url": f"http://127.0.0.1:{web.server_port}/{path.name}", "ref": "v1"})
    try:
        got = served_read(srv, "web", 3)
        xr.testing.assert_identical(got.drop_attrs(deep=False), python_read(path, tag="v1").drop_attrs(deep=False))
    finally:
        srv.stop()
        web.shutdown()


def test_a_repository_on_s3_is_served(tmp_path, netcdf_files):
    """A repository Python writes to an S3-compatible server (moto, loopback only), and one
    `virtualize` writes there."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{moto._server.server_port}"
        credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket="climate")
        storage = icechunk.s3_storage(bucket="climate", prefix="repos/tas", endpoint_url=endpoint, allow_http=True,
                                      region="us-east-1", access_key_id="testing", secret_access_key="testing",
                                      force_path_style=True)
        repo = icechunk.Repository.create(storage)
        session = repo.writable_session("main")
        write(session, dataset(1.0, "on s3"))
        session.commit("s3")
        want = xr.open_zarr(repo.readonly_session(branch="main").store, consolidated=False, zarr_format=3).load()
        srv = serve(tmp_path, {"id": "s3", "url": "s3://climate/repos/tas"},
                    env={**credentials, "AWS_ENDPOINT_URL": endpoint})
        try:
            got = served_read(srv, "s3", 2)
            xr.testing.assert_identical(got.drop_attrs(deep=False), want.drop_attrs(deep=False))
            assert got.attrs["title"] == "on s3"
        finally:
            srv.stop()
        source = netcdf_files / "chunked.nc"
        import subprocess
        from conftest import _binary

        done = subprocess.run([str(_binary()), "icechunk", "virtualize", str(source), "--repo", "s3://climate/virtual"],
                              env={**os.environ, **credentials, "AWS_ENDPOINT_URL": endpoint}, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        storage = icechunk.s3_storage(bucket="climate", prefix="virtual", endpoint_url=endpoint, allow_http=True,
                                      region="us-east-1", access_key_id="testing", secret_access_key="testing",
                                      force_path_style=True)
        prefix = f"file://{netcdf_files}/"
        repo = icechunk.Repository.open(storage, authorize_virtual_chunk_access={
            prefix: icechunk.credentials.LocalFileSystemAccess})
        got = xr.open_zarr(repo.readonly_session(branch="main").store, consolidated=False, zarr_format=3).load()
        assert_equals_netcdf(got, xr.open_dataset(source))
    finally:
        moto.stop()


def test_stac_items_point_at_the_repository(served, repo_path):
    """The item of an icechunk dataset (core schemas valid; the storage, version and zarr
    extension schemas are not installable offline) carries the repository as an asset that
    Python icechunk opens at the snapshot the server reads, and pystac-client finds it."""
    import pystac_client

    path, first, _ = repo_path
    item = requests.get(f"{served.url}/stac/collections/cloudify-all/items/ice_tag", timeout=30).json()
    assert_valid(item)
    asset = item["assets"][f"ice_tag@{first}"]
    assert asset["type"] == "application/vnd.zarr+icechunk"
    assert asset["roles"] == ["data", "references", "latest-version"]
    assert asset["href"] == f"file://{path}" and asset["version"] == first
    assert any("storage/v2.0.0" in e for e in item["stac_extensions"])
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(asset["href"].removeprefix("file://")))
    opened = xr.open_zarr(repo.readonly_session(snapshot_id=asset["version"]).store, consolidated=False).load()
    xr.testing.assert_identical(opened.drop_attrs(deep=False), served_read(served, "ice_tag", 3).drop_attrs(deep=False))
    found = pystac_client.Client.open(f"{served.url}/stac").search(ids=["ice_tag"]).item_collection()
    assert [i.id for i in found] == ["ice_tag"]


# --- `cloudify icechunk virtualize`: NetCDF files as virtual repositories -------------------

def nc4_file(path, steps=6, first=0, chunk_steps=2):
    """NetCDF4: zlib + shuffle, chunked, a fill value, CF time, a scalar and a 2-D variable."""
    import netCDF4

    rng = np.random.default_rng(first)
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "virtualized"
        ds.createDimension("time", None)
        ds.createDimension("lat", 18)
        ds.createDimension("lon", 24)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar = "days since 2000-01-01", "360_day"
        time[:] = (first + np.arange(steps)) * 30.0
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-85, 85, 18)
        ds.createVariable("lon", "f4", ("lon",))[:] = np.arange(24) * 15.0
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(chunk_steps, 9, 12), zlib=True,
                                shuffle=True, complevel=4, fill_value=np.float32(1e20))
        tas.units, tas.standard_name = "K", "air_temperature"
        values = rng.normal(280, 8, (steps, 18, 24)).astype("f4")
        values[0, 0, :3] = np.ma.masked
        tas[:] = values
        pr = ds.createVariable("pr", "f8", ("time", "lat", "lon"), chunksizes=(chunk_steps, 18, 24), zlib=True)
        pr.units = "kg m-2 s-1"
        pr[:] = rng.gamma(1, 1e-5, (steps, 18, 24))
        ds.createVariable("orog", "i2", ("lat", "lon"), zlib=True)[:] = np.arange(18 * 24).reshape(18, 24)
        height = ds.createVariable("height", "f8", ())
        height.units = "m"
        height[...] = 2.0


def nc3_file(path):
    """NetCDF3 classic: big-endian, contiguous variables and a record variable."""
    import netCDF4

    with netCDF4.Dataset(path, "w", format="NETCDF3_CLASSIC") as ds:
        ds.createDimension("time", None)
        ds.createDimension("station", 300)
        time = ds.createVariable("time", "i4", ("time",))
        time.units = "hours since 1990-01-01"
        time[:] = np.arange(5) * 6
        ds.createVariable("elevation", "f4", ("station",))[:] = np.linspace(10, 700, 300)
        temp = ds.createVariable("temp", "f4", ("time", "station"), fill_value=np.float32(-999))
        temp.units = "degC"
        temp[:] = np.arange(1500, dtype="f4").reshape(5, 300) / 3
        temp[2, 3] = np.ma.masked
        ds.createVariable("count", "i2", ("time", "station"))[:] = np.arange(1500).reshape(5, 300)


def virtualize(*args, check=True):
    from conftest import _binary
    import subprocess

    done = subprocess.run([str(_binary()), "icechunk", "virtualize", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    if check:
        assert done.returncode == 0, done.stderr
    return done


def open_virtual(repo_path, prefix, **ref):
    repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(repo_path)),
                                    authorize_virtual_chunk_access={prefix: icechunk.credentials.LocalFileSystemAccess})
    ref = ref or {"branch": "main"}
    return xr.open_zarr(repo.readonly_session(**ref).store, consolidated=False, zarr_format=3).load(), repo


def assert_equals_netcdf(got, want):
    """What Python reads through icechunk equals what netCDF4-python reads from the files."""
    assert set(got.variables) == set(want.variables)
    assert dict(got.sizes) == dict(want.sizes)
    assert got.attrs.get("title") == want.attrs.get("title")
    for name in want.variables:
        a, b = got[name], want[name]
        assert a.dims == b.dims, name
        assert a.attrs.get("units") == b.attrs.get("units"), name
        assert a.encoding.get("units") == b.encoding.get("units") and a.encoding.get("calendar") == b.encoding.get(
            "calendar"), name
        assert a.dtype.newbyteorder("=") == b.dtype.newbyteorder("="), (name, a.dtype, b.dtype)
        np.testing.assert_array_equal(a.values, b.values, err_msg=name)


@pytest.fixture(scope="module")
def netcdf_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("netcdf")
    nc4_file(folder / "chunked.nc")
    nc3_file(folder / "classic.nc")
    for i in range(4):
        nc4_file(folder / f"series_{i}.nc", steps=4, first=4 * i)
    return folder


@pytest.mark.parametrize("name", ["chunked", "classic"])
def test_a_virtualized_file_equals_netcdf4(netcdf_files, tmp_path, name):
    source = netcdf_files / f"{name}.nc"
    done = virtualize(source, "--repo", tmp_path / "repo")
    prefix = f"file://{netcdf_files}/"
    assert f"virtual chunk container {prefix}" in done.stdout
    got, repo = open_virtual(tmp_path / "repo", prefix)
    assert_equals_netcdf(got, xr.open_dataset(source))
    # The container is in the repository's config, and the chunks are references into the file.
    assert [c.url_prefix for c in repo.config.virtual_chunk_containers.values()] == [prefix]
    session = repo.readonly_session(branch="main")
    data_var = "tas" if name == "chunked" else "temp"
    chunks = list(session.all_virtual_chunk_locations())
    assert chunks and all(loc == f"{prefix}{name}.nc" for loc in chunks)
    assert int(done.stdout.split(" virtual chunks")[0].rsplit(" ", 1)[1]) > 0
    # Raw values as netCDF4-python reads them, without xarray's decoding on either side.
    import netCDF4

    with netCDF4.Dataset(source) as nc:
        nc.set_auto_maskandscale(False)
        raw = zarr.open_group(session.store, mode="r", zarr_format=3)[data_var][...]
        np.testing.assert_array_equal(raw, nc[data_var][...])


def joined(files):
    parts = [xr.open_dataset(f) for f in files]
    return xr.concat(parts, dim="time", data_vars="minimal", coords="minimal", compat="override").load()


def test_a_virtualized_series_and_its_appended_snapshot(netcdf_files, tmp_path):
    series = sorted(netcdf_files.glob("series_*.nc"))
    repo_path = tmp_path / "series"
    virtualize(*series[:3], "--repo", repo_path, "--concat-dim", "time", "--message", "three files")
    prefix = f"file://{netcdf_files}/"
    want = joined(series[:3])
    got, repo = open_virtual(repo_path, prefix)
    assert_equals_netcdf(got, want)
    first = repo.lookup_branch("main")
    assert next(iter(repo.ancestry(branch="main"))).message == "three files"

    virtualize(series[3], "--repo", repo_path, "--append", "--concat-dim", "time")
    appended, repo = open_virtual(repo_path, prefix)
    everything = joined(series)
    assert_equals_netcdf(appended, everything)
    assert appended.sizes["time"] == 16
    # The earlier snapshot still holds the first three files only.
    before, _ = open_virtual(repo_path, prefix, snapshot_id=first)
    assert before.sizes["time"] == 12 and before.time.values[-1] == want.time.values[-1]

    # Writing again without --append is refused, as is appending what does not continue.
    again = virtualize(series[0], "--repo", repo_path, check=False)
    assert again.returncode != 0 and "--append" in again.stderr
    other = virtualize(netcdf_files / "classic.nc", "--repo", repo_path, "--append", "--concat-dim", "time",
                       check=False)
    assert other.returncode != 0 and "'time': the files' data_type \"int32\" differs" in other.stderr
    assert repo.lookup_branch("main") == open_virtual(repo_path, prefix)[1].lookup_branch("main"), "nothing committed"


def test_the_server_reads_a_virtualized_repository(netcdf_files, tmp_path):
    source = netcdf_files / "chunked.nc"
    virtualize(source, "--repo", tmp_path / "repo")
    srv = serve(tmp_path, {"id": "virtualized", "url": tmp_path / "repo",
                           "authorize_virtual": [f"file://{netcdf_files}/"]})
    try:
        want = xr.open_dataset(source)
        for fmt in (2, 3):
            assert_equals_netcdf(served_read(srv, "virtualized", fmt), want)
            # /kerchunk: the stored bytes, fetched from where the virtual references point.
            stored = xr.open_dataset(f"{srv.url}/datasets/virtualized/kerchunk", engine="zarr", zarr_format=fmt)
            assert_equals_netcdf(stored.load(), want)
        # kerchunk.json references the virtual chunks' locations: the NetCDF file itself.
        refs = requests.get(f"{srv.url}/datasets/virtualized/kerchunk.json", timeout=60).json()["refs"]
        assert refs["tas/0.0.0"][0] == f"file://{source}"
        got = xr.open_dataset("reference://", engine="zarr", backend_kwargs={
            "consolidated": False, "storage_options": {"fo": f"{srv.url}/datasets/virtualized/kerchunk.json"}})
        assert_equals_netcdf(got.load(), want)
    finally:
        srv.stop()


def test_files_mapped_to_an_http_container(netcdf_files, tmp_path):
    """--container: the references point at the URL the files are published under (here a
    local range-serving HTTP server), and Python reads them from there."""
    handler = functools.partial(RangeFiles, directory=str(netcdf_files))
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{web.server_port}/"
        source = netcdf_files / "chunked.nc"
        done = virtualize(source, "--repo", tmp_path / "repo", "--container", f"{netcdf_files}={url}")
        assert f"virtual chunk container {url}" in done.stdout
        repo = icechunk.Repository.open(icechunk.local_filesystem_storage(str(tmp_path / "repo")),
                                        authorize_virtual_chunk_access={url: icechunk.credentials.HttpAccess})
        session = repo.readonly_session(branch="main")
        assert set(session.all_virtual_chunk_locations()) == {f"{url}chunked.nc"}
        got = xr.open_zarr(session.store, consolidated=False, zarr_format=3).load()
        assert_equals_netcdf(got, xr.open_dataset(source))
    finally:
        web.shutdown()


def test_every_dataset_opens_as_an_icechunk_repository(netcdf_files, tmp_path):
    """/datasets/{id}/icechunk/: the server's datasets as read-only repositories that Python
    icechunk opens over HTTP, their chunks read from the server's /files."""
    xr.open_dataset(netcdf_files / "chunked.nc").to_zarr(tmp_path / "store.zarr", zarr_format=3)
    config = tmp_path / "cloudify.toml"
    config.write_text(f"""[demo]
enabled = false
[[datasets]]
id = "store"
path = "{tmp_path}/store.zarr"
[[datasets]]
id = "chunked"
path = "{netcdf_files}/chunked.nc"
[[datasets]]
id = "series"
path = "{netcdf_files}/series_*.nc"
""")
    srv = Server("--config", str(config))
    try:
        for dataset_id, want in [("chunked", xr.open_dataset(netcdf_files / "chunked.nc")),
                                 ("series", joined(sorted(netcdf_files.glob("series_*.nc"))))]:
            base = f"{srv.url}/datasets/{dataset_id}/icechunk/"
            described = requests.get(base, timeout=60).json()
            files = f"{srv.url}/datasets/{dataset_id}/files/"
            assert described["virtual_chunk_containers"] == [files]
            repo = icechunk.Repository.open(icechunk.http_storage(base),
                                            authorize_virtual_chunk_access={files: icechunk.credentials.HttpAccess})
            session = repo.readonly_session(branch="main")
            assert session.snapshot_id == described["snapshot_id"]
            locations = set(session.all_virtual_chunk_locations())
            assert locations and all(loc.startswith(files) for loc in locations)
            got = xr.open_zarr(session.store, consolidated=False, zarr_format=3).load()
            assert_equals_netcdf(got, want)
        # A Zarr store's chunks are objects no client reaches through /files: copied in.
        repo = icechunk.Repository.open(icechunk.http_storage(f"{srv.url}/datasets/store/icechunk"))
        session = repo.readonly_session(branch="main")
        assert list(session.all_virtual_chunk_locations()) == []
        got = xr.open_zarr(session.store, consolidated=False, zarr_format=3).load()
        xr.testing.assert_equal(got, xr.open_zarr(tmp_path / "store.zarr").load())
        # Objects are read with ranges as well; unknown ones and hostile paths are 404s.
        whole = requests.get(f"{srv.url}/datasets/chunked/icechunk/repo", timeout=30)
        part = requests.get(f"{srv.url}/datasets/chunked/icechunk/repo", headers={"Range": "bytes=2-9"}, timeout=30)
        assert part.status_code == 206 and part.content == whole.content[2:10]
        for path in ["snapshots/NOPE", "..%2f..%2fetc/passwd", "chunks//x"]:
            reply = requests.get(f"{srv.url}/datasets/chunked/icechunk/{path}", timeout=30)
            assert reply.status_code == 404 and "error" in reply.json(), path
        assert requests.get(f"{srv.url}/datasets/nothing/icechunk/repo", timeout=30).status_code == 404
    finally:
        srv.stop()


def test_a_corrupt_repository_is_skipped_and_retried(repo_path, tmp_path):
    """A repository whose `repo` object is garbage: one warning line, the others served, and
    served itself once it is repaired (retried every refresh)."""
    path, _, _ = repo_path
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "repo").write_bytes(b"ICE\xf0\x9f\xa7\x8aCHUNK" + os.urandom(200))
    srv = serve(tmp_path, {"id": "broken", "url": broken, "refresh_secs": 1}, {"id": "fine", "url": path})
    try:
        listed = requests.get(f"{srv.url}/datasets", timeout=30).json()
        assert "fine" in listed and "broken" not in listed
        assert requests.get(f"{srv.url}/datasets/broken/info", timeout=30).status_code == 404
        time.sleep(2.5)
        warnings = [line for line in srv.log if "icechunk repository 'broken' not served" in line]
        assert len(warnings) == 1, warnings  # one line per failure streak, not one per refresh
        (broken / "repo").unlink()
        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(str(broken)))
        session = repo.writable_session("main")
        write(session, dataset(1.0, "repaired"))
        session.commit("repaired")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "broken" not in requests.get(f"{srv.url}/datasets", timeout=30).json():
            time.sleep(0.3)
        assert served_read(srv, "broken", 3).attrs["title"] == "repaired"
    finally:
        srv.stop()
