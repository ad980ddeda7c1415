"""/groupby, /resample and /fldmean: the diagnostics plugin's results equal xarray's
groupby(...).<action>(), resample(time=...).<action>() and weighted(cos(lat)).mean(...) on the
same files, in every calendar, with masked values handled as xarray handles them; as JSON, as
NetCDF4 files and as derived datasets read through /zarr (v2 and v3).
"""

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from conftest import Server

CALENDARS = ["standard", "noleap", "360_day", "julian", "proleptic_gregorian", "all_leap"]
ACTIONS = ["mean", "min", "max", "sum", "count", "std", "var", "median", "first", "last"]


def write_daily(out):
    """Two years of daily values on a small grid, one file per calendar, with masked values."""
    for calendar in CALENDARS:
        with netCDF4.Dataset(out / f"daily_{calendar}.nc", "w") as ds:
            days = 720 if calendar == "360_day" else 730
            ds.createDimension("time", days)
            ds.createDimension("lat", 4)
            ds.createDimension("lon", 5)
            t = ds.createVariable("time", "f8", ("time",))
            t.units, t.calendar = "days since 1999-12-01 12:00", calendar
            t[:] = np.arange(days)
            lat = ds.createVariable("lat", "f8", ("lat",))
            lat.units = "degrees_north"
            lat[:] = [-60, -20, 20, 60]
            lon = ds.createVariable("lon", "f8", ("lon",))
            lon.units = "degrees_east"
            lon[:] = [0, 72, 144, 216, 288]
            tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(100, 4, 5), zlib=True,
                                    fill_value=np.float32(1e20))
            tas.units = "K"
            rng = np.random.default_rng(len(calendar))
            data = (280 + 10 * np.sin(np.arange(days) / 58.0)[:, None, None] + rng.normal(0, 2, (days, 4, 5))).astype("f4")
            data[30:40, 1, 2] = 1e20
            data[:, 3, 4] = 1e20  # a cell without any value
            tas[:] = data


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    daily = tmp_path_factory.mktemp("daily")
    write_daily(daily)
    config = tmp_path_factory.mktemp("config") / "cloudify.toml"
    config.write_text(f"""
[demo]
enabled = false

[[folders]]
path = "{daily}"

[[folders]]
path = "{files}"

[[plugin.diagnostics.derived]]
dataset = "daily_noleap"
variable = "tas"
operation = "groupby/time.season/mean"
""")
    srv = Server("--config", str(config), cache_dir=cache_dir)
    srv.daily = daily
    srv.files = files
    yield srv
    srv.stop()


def result(server, path):
    reply = requests.get(f"{server.url}/datasets/{path}", timeout=120)
    assert reply.status_code == 200, reply.text
    doc = reply.json()
    return np.array(doc["data"], dtype="f8"), doc


def check(got, expected, action):
    expected = expected.values.astype("f8")
    assert got.shape == expected.shape
    if action == "count":
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("calendar", CALENDARS)
@pytest.mark.parametrize("group", ["month", "season", "year", "dayofyear"])
def test_groupby_time_parts_in_every_calendar(served, calendar, group):
    ds = xr.open_dataset(served.daily / f"daily_{calendar}.nc")
    got, doc = result(served, f"daily_{calendar}/groupby/tas/time.{group}/mean")
    expected = ds.tas.groupby(f"time.{group}").mean()
    check(got, expected, "mean")
    assert doc["dims"][0] == group
    labels = expected[group].values.tolist()
    assert doc["coords"][group]["data"] == labels


@pytest.mark.parametrize("action", ACTIONS)
def test_every_action(served, action):
    ds = xr.open_dataset(served.daily / "daily_noleap.nc")
    got, _ = result(served, f"daily_noleap/groupby/tas/time.season/{action}")
    check(got, getattr(ds.tas.groupby("time.season"), action)(), action)
    got, _ = result(served, f"daily_noleap/resample/tas/1MS/{action}")
    check(got, getattr(ds.tas.resample(time="1MS"), action)(), action)


@pytest.mark.parametrize("calendar", CALENDARS)
@pytest.mark.parametrize("freq", ["1MS", "QS-DEC", "1YS", "5D"])
def test_resample_in_every_calendar(served, calendar, freq):
    ds = xr.open_dataset(served.daily / f"daily_{calendar}.nc")
    got, doc = result(served, f"daily_{calendar}/resample/tas/{freq}/mean")
    expected = ds.tas.resample(time=freq).mean()
    check(got, expected, "mean")
    assert doc["coords"]["time"]["data"][0].startswith(str(expected.time.values[0])[:10])


@pytest.mark.parametrize("calendar", ["noleap", "360_day"])
def test_fldmean_is_the_cos_lat_weighted_mean(served, calendar):
    ds = xr.open_dataset(served.daily / f"daily_{calendar}.nc")
    got, doc = result(served, f"daily_{calendar}/fldmean/tas")
    check(got, ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon")), "mean")
    assert doc["attrs"]["cell_methods"] == "area: mean"


def test_packed_values_and_coordinates(served):
    ds = xr.open_dataset(served.files / "nc4_packed.nc")
    got, _ = result(served, "nc4_packed/groupby/pr/lat/mean")
    check(got, ds.pr.groupby("lat").mean(), "mean")
    got, _ = result(served, "nc4_packed/fldmean/pr")
    check(got, ds.pr.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon")), "mean")


def test_refusals(served):
    for path in ["daily_noleap/groupby/tas/time.month/mode", "daily_noleap/groupby/tas/lat.month/mean",
                 "daily_noleap/resample/tas/1W/mean", "daily_noleap/groupby/tas/time.month).__class__/mean"]:
        reply = requests.get(f"{served.url}/datasets/{path}", timeout=60)
        assert reply.status_code == 400, path
        assert "error" in reply.json()


def derived_id(path):
    """The derived dataset's id of a result's path: `{source}~{operation}~{var}~...`."""
    return "~".join(path.split("/"))


def expected_of(ds, operation, arg=None, action="mean"):
    if operation == "groupby":
        return getattr(ds.tas.groupby(arg), action)()
    if operation == "resample":
        return getattr(ds.tas.resample(time=arg), action)()
    return ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon"))


DERIVED = [("groupby", "time.month", "mean"), ("groupby", "time.season", "max"), ("groupby", "time.year", "count"),
           ("resample", "QS-DEC", "std"), ("resample", "1MS", "median"), ("fldmean", None, None)]


def same_coords(got, expected):
    for name, coord in expected.coords.items():
        if coord.dtype.kind in "OUST":
            # Text: numpy's unicode, objects or StringDType, as each reader chooses.
            assert [str(v) for v in got[name].values] == [str(v) for v in coord.values], name
        elif coord.dtype.kind in "Mm" or coord.dtype == object:
            assert [str(v)[:19] for v in got[name].values] == [str(v)[:19] for v in coord.values], name
        else:
            np.testing.assert_array_equal(got[name].values, coord.values, err_msg=name)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("calendar", CALENDARS)
@pytest.mark.parametrize("operation,arg,action", DERIVED)
def test_derived_datasets_read_through_zarr_equal_xarray(served, calendar, operation, arg, action, fmt):
    ds = xr.open_dataset(served.daily / f"daily_{calendar}.nc")
    path = "/".join(filter(None, [f"daily_{calendar}", operation, "tas", arg, action]))
    url = f"{served.url}/datasets/{derived_id(path)}/zarr"
    got = xr.open_dataset(url, engine="zarr", zarr_format=fmt, consolidated=True, chunks={}).load()
    expected = expected_of(ds, operation, arg, action or "mean")
    check(got.tas.values.astype("f8"), expected, action or "mean")
    assert got.tas.dims == expected.dims
    same_coords(got, expected)


@pytest.mark.parametrize("calendar", CALENDARS)
@pytest.mark.parametrize("operation,arg,action", DERIVED)
def test_results_as_netcdf_files_equal_xarray(served, tmp_path, calendar, operation, arg, action):
    ds = xr.open_dataset(served.daily / f"daily_{calendar}.nc")
    path = "/".join(filter(None, [f"daily_{calendar}", operation, "tas", arg, action]))
    reply = requests.get(f"{served.url}/datasets/{path}?format=netcdf", timeout=120)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/x-netcdf"
    (tmp_path / "result.nc").write_bytes(reply.content)
    got = xr.open_dataset(tmp_path / "result.nc").load()
    expected = expected_of(ds, operation, arg, action or "mean")
    check(got.tas.values.astype("f8"), expected, action or "mean")
    same_coords(got, expected)
    assert "cell_methods" in got.tas.attrs


def test_derived_datasets_are_datasets(served):
    source_info = requests.get(f"{served.url}/datasets/daily_noleap/info", timeout=30).content
    listed = requests.get(f"{served.url}/datasets", timeout=30).json()
    # Configured derived datasets are listed (and so in STAC); others resolve without being listed.
    assert "daily_noleap~groupby~tas~time.season~mean" in listed
    assert not any("~fldmean~" in d for d in listed)
    item = requests.get(f"{served.url}/stac/collections/cloudify-all/items/daily_noleap~groupby~tas~time.season~mean",
                        timeout=60)
    assert item.status_code == 200, item.text
    assert item.json()["properties"]["cube:variables"]["tas"]["dimensions"] == ["season", "lat", "lon"]
    info = requests.get(f"{served.url}/datasets/daily_noleap~fldmean~tas/info", timeout=60)
    assert info.status_code == 200, info.text
    assert "tas" in info.json()["variables"]
    picture = requests.get(f"{served.url}/datasets/daily_noleap~groupby~tas~time.month~mean/plot/tas", timeout=60)
    assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"
    # A browser gets a summary that links the result's forms.
    page = requests.get(f"{served.url}/datasets/daily_noleap/groupby/tas/time.month/mean",
                        headers={"Accept": "text/html"}, timeout=60)
    assert page.headers["content-type"].startswith("text/html")
    assert "daily_noleap~groupby~tas~time.month~mean/zarr" in page.text and "format=netcdf" in page.text
    # Unknown sources and refused operations, as ids.
    assert requests.get(f"{served.url}/datasets/nowhere~fldmean~tas/info", timeout=30).status_code == 404
    assert requests.get(f"{served.url}/datasets/daily_noleap~groupby~tas~time.week~mean/info",
                        timeout=30).status_code == 400
    # Nothing of the source changed.
    assert requests.get(f"{served.url}/datasets/daily_noleap/info", timeout=30).content == source_info
