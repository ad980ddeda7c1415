"""CF aggregation files both ways: aggregations written by cfapyx and by netCDF4-python
(CF-1.13 and CFA-0.6 forms; relative, absolute, HTTP and S3 fragment URIs) served as datasets
equal to their fragments joined; `cfa.nc` and `cloudify cfa create` opened by cfapyx
(`engine="CFA"`) equal to the source."""

import functools
import http.server
import os
import subprocess
import threading
import time

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from conftest import RangeFiles, Server, _binary

YEARS = 3
STEPS = 4  # time steps per fragment file
LAT, LON = 24, 48  # chunks over the 500 bytes kerchunk inlines


def write_fragment(path, year, fmt="NETCDF4", units="K"):
    """One year of `tas` (chunked per step, zlib) and `pr` (contiguous), with coordinates."""
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", LAT)
        ds.createDimension("lon", LON)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar = "days since 2000-01-01", "360_day"
        time[:] = year * 360 + np.arange(STEPS) * 90
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-87, 87, LAT)
        ds.createVariable("lon", "f4", ("lon",))[:] = np.arange(LON) * 7.5
        chunked = {"zlib": True, "chunksizes": (1, LAT, LON)} if fmt == "NETCDF4" else {}
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), **chunked)
        tas.units, tas.standard_name = units, "air_temperature"
        rng = np.random.default_rng(year)
        tas[:] = 250 + 40 * rng.random((STEPS, LAT, LON), dtype="f4")
        pr = ds.createVariable("pr", "f8", ("time", "lat", "lon"))
        pr.units = "kg m-2 s-1"
        pr[:] = rng.random((STEPS, LAT, LON))


def joined(paths):
    parts = [xr.open_dataset(p).load() for p in paths]
    return xr.concat(parts, dim="time", data_vars="minimal", coords="minimal", compat="override")


@pytest.fixture(scope="module")
def fragments(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfa")
    for year in range(YEARS):
        write_fragment(folder / f"tas_{year}.nc", year)
        write_fragment(folder / f"classic_{year}.nc", year, fmt="NETCDF3_64BIT_OFFSET")
    return folder


def serve(tmp_path, datasets, env=None):
    lines = []
    for dataset in datasets:
        lines.append("[[datasets]]")
        lines += [f"{key} = {value!r}" if isinstance(value, str) else f"{key} = {value}" for key, value in dataset.items()]
    config = tmp_path / "cloudify.toml"
    config.write_text("\n".join(lines).replace("'", '"') + "\n")
    return Server("--config", str(config), cache_dir=str(tmp_path / "cache"), env=env)


def logged(srv, *words, timeout=10):
    """Whether a line of the server's log holds every one of `words` (the log is read by a
    thread: lines written before /ready may arrive a moment later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(all(w in line for w in words) for line in list(srv.log)):
            return True
        time.sleep(0.05)
    return False


def zarr_of(srv, dataset):
    return xr.open_dataset(f"{srv.url}/datasets/{dataset}/zarr", engine="zarr", consolidated=True).load()


def assert_same(got, want):
    """Every variable of `want` in `got`, equal in values, dimensions and units."""
    for name, var in want.variables.items():
        assert name in got.variables, name
        assert got[name].dims == var.dims, name
        np.testing.assert_array_equal(got[name].values, var.values, err_msg=name)
        assert got[name].attrs.get("units") == var.attrs.get("units"), name


def cfapyx_write(paths, out):
    """cfapyx's writer, as its own tests call it."""
    from cfapyx import CFANetCDF

    agg = CFANetCDF([str(p) for p in paths])
    agg.create()
    agg.write(str(out))


def test_an_aggregation_written_by_cfapyx_is_served_like_its_fragments(fragments, tmp_path):
    paths = [fragments / f"tas_{y}.nc" for y in range(YEARS)]
    cfapyx_write(paths, tmp_path / "tas.nca")
    srv = serve(tmp_path, [{"id": "agg", "path": str(tmp_path / "tas.nca"), "allow_targets": [str(fragments)]}])
    try:
        got = zarr_of(srv, "agg")
        want = joined(paths)
        assert_same(got, want)
        # No descriptor variable leaks into the dataset.
        assert not [v for v in got.variables if v.startswith("fragment_")]
        # The stored chunks are the fragments' own: /kerchunk and kerchunk.json read them.
        stored = xr.open_dataset(f"{srv.url}/datasets/agg/kerchunk", engine="zarr", zarr_format=2, consolidated=True)
        assert_same(stored.load(), want)
        refs = requests.get(f"{srv.url}/datasets/agg/kerchunk.json", timeout=30).json()["refs"]
        targets = {ref[0] for key, ref in refs.items() if key.startswith("tas/") and isinstance(ref, list)}
        assert len(targets) == YEARS, targets
        # cfapyx reads the same file to the same values.
        theirs = xr.open_dataset(tmp_path / "tas.nca", engine="CFA").load()
        np.testing.assert_array_equal(got.tas.values, theirs.tas.values)
    finally:
        srv.stop()


def cf113(path, fragment_uris, identifiers, grid, values=None, conventions="CF-1.13"):
    """A CF-1.13 aggregation file written by hand: `tas` over `fragment_uris` (a fragment
    array of shape `grid` over (time, lat)), `const` from `values` (unique_values)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.Conventions = conventions
        ds.createDimension("time", YEARS * STEPS)
        ds.createDimension("lat", LAT)
        ds.createDimension("lon", LON)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar = "days since 2000-01-01", "360_day"
        time[:] = np.concatenate([y * 360 + np.arange(STEPS) * 90 for y in range(YEARS)])
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-87, 87, LAT)
        ds.createVariable("lon", "f4", ("lon",))[:] = np.arange(LON) * 7.5
        ds.createDimension("f_time", grid[0])
        ds.createDimension("f_lat", grid[1])
        ds.createDimension("f_lon", 1)
        ds.createDimension("j", 3)
        ds.createDimension("i", max(grid))
        fmap = ds.createVariable("fragment_map", "i4", ("j", "i"), fill_value=-1)
        rows = np.full((3, max(grid)), -1)
        rows[0, : grid[0]] = YEARS * STEPS // grid[0]
        rows[1, : grid[1]] = LAT // grid[1]
        rows[2, 0] = LON
        fmap[:] = rows
        uris = ds.createVariable("fragment_uris", str, ("f_time", "f_lat", "f_lon"))
        uris[:] = np.array(fragment_uris, dtype=object).reshape(grid[0], grid[1], 1)
        ids = ds.createVariable("fragment_identifiers", str, ("f_time", "f_lat", "f_lon"))
        ids[:] = np.array(identifiers, dtype=object).reshape(grid[0], grid[1], 1)
        tas = ds.createVariable("tas", "f4", ())
        tas.units, tas.standard_name = "K", "air_temperature"
        tas.aggregated_dimensions = "time lat lon"
        tas.aggregated_data = "map: fragment_map uris: fragment_uris identifiers: fragment_identifiers"
        if values is not None:
            const = ds.createVariable("const", "f8", (), fill_value=-999.0)
            const.aggregated_dimensions = "time lat lon"
            const.aggregated_data = "map: fragment_map unique_values: fragment_values"
            fv = ds.createVariable("fragment_values", "f8", ("f_time", "f_lat", "f_lon"), fill_value=-999.0)
            fv[:] = np.ma.masked_equal(np.array(values, dtype="f8").reshape(grid[0], grid[1], 1), -999.0)


def test_cf113_with_relative_uris_a_2d_fragment_grid_and_unique_values(fragments, tmp_path):
    """Fragments split along time and latitude (tiles cut from the yearly files), named
    relative to the aggregation file, some constant (`unique_values`, one missing)."""
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    full = joined([fragments / f"tas_{y}.nc" for y in range(YEARS)])
    grid = (YEARS, 2)
    uris, names = [], []
    for t in range(grid[0]):
        for y in range(grid[1]):
            part = full.isel(time=slice(t * STEPS, (t + 1) * STEPS), lat=slice(y * LAT // 2, (y + 1) * LAT // 2))
            name = f"tile_{t}_{y}.nc"
            part[["tas"]].rename({"tas": f"t{t}{y}"}).to_netcdf(
                tiles / name, encoding={f"t{t}{y}": {"zlib": True, "chunksizes": (1, LAT // 2, LON)}})
            uris.append(f"tiles/{name}")
            names.append(f"t{t}{y}")
    values = [1.5, 2.5, -999.0, 4.0, 5.0, 6.0]
    cf113(tmp_path / "tiles.nc", uris, names, grid, values)
    srv = serve(tmp_path, [{"id": "tiles", "path": str(tmp_path / "tiles.nc")}])
    try:
        got = zarr_of(srv, "tiles")
        np.testing.assert_array_equal(got.tas.values, full.tas.values)
        expected = np.repeat(np.repeat(np.array(values).reshape(grid), STEPS, 0), LAT // 2, 1)[:, :, None]
        expected = np.where(expected == -999.0, np.nan, np.broadcast_to(expected, (YEARS * STEPS, LAT, LON)))
        np.testing.assert_array_equal(got.const.values, np.broadcast_to(expected, got.const.shape))
        info = requests.get(f"{srv.url}/datasets/tiles/info", timeout=30).json()
        assert info["global_attributes"]["Conventions"] == "CF-1.13"
        assert "fragment_uris" not in info["variables"]
        # tas keeps the tiles' chunks: one chunk per step and tile.
        zarray = requests.get(f"{srv.url}/datasets/tiles/kerchunk/tas/.zarray", timeout=30).json()
        assert zarray["chunks"] == [1, LAT // 2, LON]
    finally:
        srv.stop()


def test_the_cfa_0_6_form_over_netcdf3_fragments(fragments, tmp_path):
    """CFA-0.6 keywords (location/file/address/format, any case), classic-format fragments."""
    path = tmp_path / "old.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.Conventions = "CF-1.9 CFA-0.6.2"
        ds.createDimension("time", YEARS * STEPS)
        ds.createDimension("lat", LAT)
        ds.createDimension("lon", LON)
        ds.createDimension("f_time", YEARS)
        ds.createDimension("one", 1)
        ds.createDimension("j", 3)
        ds.createDimension("i", YEARS)
        loc = ds.createVariable("cfa_location", "i4", ("j", "i"), fill_value=-1)
        loc[:] = np.array([[STEPS] * YEARS, [LAT] + [-1] * (YEARS - 1), [LON] + [-1] * (YEARS - 1)])
        files = ds.createVariable("cfa_file", str, ("f_time", "one", "one"))
        files[:] = np.array([str(fragments / f"classic_{y}.nc") for y in range(YEARS)], dtype=object).reshape(YEARS, 1, 1)
        address = ds.createVariable("cfa_address", str, ())
        address[...] = "pr"
        fmt = ds.createVariable("cfa_format", str, ())
        fmt[...] = "nc"
        pr = ds.createVariable("pr", "f8", ())
        pr.units = "kg m-2 s-1"
        pr.aggregated_dimensions = "time lat lon"
        pr.aggregated_data = "Location: cfa_location File: cfa_file Address: cfa_address Format: cfa_format"
    srv = serve(tmp_path, [{"id": "old", "path": str(path), "allow_targets": [str(fragments)]}])
    try:
        got = zarr_of(srv, "old")
        want = joined([fragments / f"classic_{y}.nc" for y in range(YEARS)])
        np.testing.assert_array_equal(got.pr.values, want.pr.values)
    finally:
        srv.stop()


def test_fragments_over_http_and_s3(fragments, tmp_path):
    """Absolute URIs: NetCDF4 fragments on a web server (scanned from a copy), NetCDF3 ones
    in an S3 bucket (moto, loopback only)."""
    from moto.server import ThreadedMotoServer
    import boto3

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeFiles, directory=str(fragments)))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    try:
        endpoint = f"http://127.0.0.1:{moto._server.server_port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
        s3.create_bucket(Bucket="frags")
        for y in range(YEARS):
            s3.upload_file(str(fragments / f"classic_{y}.nc"), "frags", f"classic_{y}.nc")
        http_base = f"http://127.0.0.1:{web.server_port}"
        cf113(tmp_path / "web.nc", [f"{http_base}/tas_{y}.nc" for y in range(YEARS)], ["tas"] * YEARS, (YEARS, 1))
        cf113(tmp_path / "s3.nc", [f"s3://frags/classic_{y}.nc" for y in range(YEARS)], ["tas"] * YEARS, (YEARS, 1))
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true"}
        srv = serve(tmp_path, [
            {"id": "web", "path": str(tmp_path / "web.nc"), "allow_targets": [f"{http_base}/"]},
            {"id": "s3", "path": str(tmp_path / "s3.nc"), "allow_targets": ["s3://frags/"]},
        ], env=env)
        try:
            want = joined([fragments / f"tas_{y}.nc" for y in range(YEARS)])
            for dataset in ["web", "s3"]:
                got = zarr_of(srv, dataset)
                np.testing.assert_array_equal(got.tas.values, want.tas.values, err_msg=dataset)
            refs = requests.get(f"{srv.url}/datasets/web/kerchunk.json", timeout=30).json()["refs"]
            assert all(ref[0].startswith(http_base) for key, ref in refs.items()
                       if key.startswith("tas/") and isinstance(ref, list))
        finally:
            srv.stop()
    finally:
        moto.stop()
        web.shutdown()


def test_a_fragment_that_does_not_fit_refuses_its_variable_only(fragments, tmp_path):
    """A missing fragment file, fragments in other units and a fragment outside the allowed
    folders: each refuses its variable with a warning naming the fragment; the rest is served."""
    other = tmp_path / "other"
    other.mkdir()
    write_fragment(other / "kelvin_off.nc", 0, units="degC")
    paths = [str(fragments / f"tas_{y}.nc") for y in range(YEARS)]
    cf113(tmp_path / "missing.nc", paths[:-1] + [str(fragments / "gone.nc")], ["tas"] * YEARS, (YEARS, 1))
    cf113(tmp_path / "units.nc", [str(other / "kelvin_off.nc")] + paths[1:], ["tas"] * YEARS, (YEARS, 1))
    cf113(tmp_path / "outside.nc", paths, ["tas"] * YEARS, (YEARS, 1))
    srv = serve(tmp_path, [
        {"id": "missing", "path": str(tmp_path / "missing.nc"), "allow_targets": [str(fragments)]},
        {"id": "units", "path": str(tmp_path / "units.nc"), "allow_targets": [str(fragments), str(other)]},
        {"id": "outside", "path": str(tmp_path / "outside.nc")},
    ])
    try:
        for dataset, fragment, reason in [("missing", "gone.nc", "cannot read"), ("units", "kelvin_off.nc", "degC"),
                                          ("outside", "tas_0.nc", "outside")]:
            info = requests.get(f"{srv.url}/datasets/{dataset}/info", timeout=30).json()
            assert "tas" not in info["variables"] and "time" in info["variables"], dataset
            assert logged(srv, dataset, fragment, "tas", reason), dataset
        got = zarr_of(srv, "missing")
        np.testing.assert_array_equal(got.time.values, joined(paths).time.values)
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def series(fragments, tmp_path_factory):
    """A multi-file dataset served from the yearly files."""
    tmp = tmp_path_factory.mktemp("series")
    srv = serve(tmp, [{"id": "series", "path": str(fragments / "tas_*.nc")},
                      {"id": "one", "path": str(fragments / "tas_0.nc")}])
    yield srv
    srv.stop()


@pytest.mark.parametrize("targets", ["", "?targets=source"])
def test_cfa_nc_of_a_dataset_opens_with_cfapyx(series, fragments, tmp_path, targets):
    reply = requests.get(f"{series.url}/datasets/series/cfa.nc{targets}", timeout=60)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-netcdf"
    (tmp_path / "series.nc").write_bytes(reply.content)
    with netCDF4.Dataset(tmp_path / "series.nc") as ds:
        assert ds.Conventions == "CF-1.13"
        uris = list(np.asarray(ds["fragment_uris_0"][:]).ravel())
        assert ds["tas"].aggregated_dimensions == "time lat lon"
    if targets:
        assert uris == [str(fragments / f"tas_{y}.nc") for y in range(YEARS)]
    else:
        assert uris == [f"{series.url}/datasets/series/files/tas_{y}.nc" for y in range(YEARS)]
    got = xr.open_dataset(tmp_path / "series.nc", engine="CFA").load()
    assert_same(got, joined([fragments / f"tas_{y}.nc" for y in range(YEARS)]))


def test_cfa_nc_of_one_file_and_of_nothing(series, fragments, tmp_path):
    reply = requests.get(f"{series.url}/datasets/one/cfa.nc", timeout=60)
    assert reply.status_code == 200, reply.text
    (tmp_path / "one.nc").write_bytes(reply.content)
    got = xr.open_dataset(tmp_path / "one.nc", engine="CFA").load()
    assert_same(got, xr.open_dataset(fragments / "tas_0.nc").load())
    assert requests.get(f"{series.url}/datasets/nope/cfa.nc", timeout=30).status_code == 404


def test_cfa_nc_answers_ranges_and_keeps_string_values(files, tmp_path):
    """Strings with a fill value are written as values (schemathesis found a 500 on them), and
    byte ranges are answered, as readers of remote NetCDF ask."""
    srv = serve(tmp_path, [{"id": "strings", "path": str(files / "nc4_strings.nc")}])
    try:
        url = f"{srv.url}/datasets/strings/cfa.nc"
        whole = requests.get(url, timeout=60)
        assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes", whole.text
        part = requests.get(url, headers={"Range": "bytes=4-99"}, timeout=60)
        assert part.status_code == 206 and part.content == whole.content[4:100]
        assert part.headers["content-range"] == f"bytes 4-99/{len(whole.content)}"
        assert requests.get(url, headers={"Range": f"bytes={len(whole.content)}-"}, timeout=60).status_code == 416
        (tmp_path / "strings.nc").write_bytes(whole.content)
        with netCDF4.Dataset(tmp_path / "strings.nc") as got, netCDF4.Dataset(files / "nc4_strings.nc") as want:
            for name in ["station_name", "sparse", "nofill"]:
                assert list(got[name][:]) == list(want[name][:]), name
            assert got["sparse"].getncattr("_FillValue") == "missing"
    finally:
        srv.stop()


@pytest.mark.parametrize("relative", [False, True])
def test_cfa_create_writes_what_cfapyx_and_the_server_read(fragments, tmp_path, relative):
    out = fragments / ("rel.nca" if relative else "abs.nca")
    args = [str(_binary()), "cfa", "create", *[str(fragments / f"tas_{y}.nc") for y in range(YEARS)], "-o", str(out)]
    done = subprocess.run(args + (["--relative"] if relative else []), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with netCDF4.Dataset(out) as ds:
        uris = list(np.asarray(ds["fragment_uris_0"][:]).ravel())
    assert uris[0] == ("tas_0.nc" if relative else str(fragments / "tas_0.nc"))
    want = joined([fragments / f"tas_{y}.nc" for y in range(YEARS)])
    # cfapyx resolves relative URIs against its working directory, not the file (CF says the file).
    cwd = os.getcwd()
    os.chdir(fragments)
    try:
        assert_same(xr.open_dataset(out, engine="CFA").load(), want)
    finally:
        os.chdir(cwd)
    srv = serve(tmp_path, [{"id": "created", "path": str(out)}])
    try:
        assert_same(zarr_of(srv, "created"), want)
    finally:
        srv.stop()


def test_stac_items_carry_the_cfa_asset(series):
    item = requests.get(f"{series.url}/datasets/series/stac", timeout=30).json()
    asset = item["assets"]["reference_file_2"]
    assert asset["cloud_format"] == "CFA" and asset["href"].endswith("/datasets/series/cfa.nc")
    assert asset["xarray:open_kwargs"] == {"engine": "CFA"}
    assert requests.head(asset["href"], timeout=30).status_code == 200


def test_malformed_descriptions_refuse_their_variable(fragments, tmp_path):
    """Maps that do not add up, sizes that are not counts, URIs that do not match the
    fragments, unknown keywords: each a warning, the rest of the file served."""
    paths = [str(fragments / f"tas_{y}.nc") for y in range(YEARS)]
    cases = {
        "sums": ("fragment_map", [[STEPS + 1] * YEARS, [LAT] + [-1] * (YEARS - 1), [LON] + [-1] * (YEARS - 1)], "sums to"),
        "negative": ("fragment_map", [[-STEPS] * YEARS, [LAT] + [-1] * (YEARS - 1), [LON] + [-1] * (YEARS - 1)], "row 0"),
        "keywords": ("aggregated_data", "location: fragment_map shape: fragment_uris", "draft"),
    }
    datasets = []
    for name, (what, value, _) in cases.items():
        path = tmp_path / f"{name}.nc"
        cf113(path, paths, ["tas"] * YEARS, (YEARS, 1))
        with netCDF4.Dataset(path, "a") as ds:
            if what == "fragment_map":
                ds["fragment_map"][:] = np.ma.masked_equal(np.array(value), -1)
            else:
                ds["tas"].aggregated_data = value
        datasets.append({"id": name, "path": str(path), "allow_targets": [str(fragments)]})
    srv = serve(tmp_path, datasets)
    try:
        for name, (_, _, reason) in cases.items():
            info = requests.get(f"{srv.url}/datasets/{name}/info", timeout=30).json()
            assert "tas" not in info["variables"] and "time" in info["variables"], name
            assert logged(srv, name, reason), (name, reason)
    finally:
        srv.stop()
