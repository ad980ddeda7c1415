"""/groupby, /resample and /fldmean: the diagnostics plugin's results equal xarray's
groupby(...).<action>(), resample(time=...).<action>() and weighted(cos(lat)).mean(...) on the
same files, in every calendar, with masked values handled as xarray handles them.
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
