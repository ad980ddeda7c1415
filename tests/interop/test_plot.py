"""/datasets/{id}/plot: what the plot plugin draws (format=json) equals xarray's sel/isel and
means on the same files, for every kind and grid: 0-360 longitudes, packed values, the
noleap and 360_day calendars, a curvilinear grid, ICON-like unstructured cells (radians,
cell bounds) and HEALPix cells.
"""

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from conftest import Server


def write_grids(out):
    """Curvilinear, unstructured and HEALPix test files."""
    with netCDF4.Dataset(out / "curvilinear.nc", "w") as ds:
        ds.createDimension("y", 6)
        ds.createDimension("x", 8)
        ds.createDimension("time", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 1990-01-01", "standard"
        t[:] = [0, 31]
        yy, xx = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
        lat = ds.createVariable("nav_lat", "f4", ("y", "x"))
        lat.standard_name, lat.units = "latitude", "degrees_north"
        lat[:] = 30 + 4 * yy + 0.5 * xx
        lon = ds.createVariable("nav_lon", "f4", ("y", "x"))
        lon.standard_name, lon.units = "longitude", "degrees_east"
        lon[:] = 350 + 5 * xx - 0.5 * yy  # crosses 0/360
        sst = ds.createVariable("sst", "f4", ("time", "y", "x"), fill_value=np.float32(-999))
        sst.coordinates = "nav_lon nav_lat"
        sst.units = "degC"
        data = np.arange(2 * 6 * 8, dtype="f4").reshape(2, 6, 8)
        data[:, 2, 3] = -999
        sst[:] = data
    with netCDF4.Dataset(out / "icon.nc", "w") as ds:
        n = 20
        ds.createDimension("ncells", n)
        ds.createDimension("vertices", 3)
        ds.createDimension("time", 3)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "hours since 2020-01-01", "proleptic_gregorian"
        t[:] = [0, 6, 12]
        rng = np.random.default_rng(3)
        lat_deg, lon_deg = rng.uniform(-80, 80, n), rng.uniform(-180, 180, n)
        clat = ds.createVariable("clat", "f8", ("ncells",))
        clat.standard_name, clat.units, clat.bounds = "latitude", "radian", "clat_bnds"
        clat[:] = np.deg2rad(lat_deg)
        clon = ds.createVariable("clon", "f8", ("ncells",))
        clon.standard_name, clon.units, clon.bounds = "longitude", "radian", "clon_bnds"
        clon[:] = np.deg2rad(lon_deg)
        ds.createVariable("clat_bnds", "f8", ("ncells", "vertices"))[:] = np.deg2rad(
            np.stack([lat_deg - 2, lat_deg - 2, lat_deg + 2], axis=1))
        ds.createVariable("clon_bnds", "f8", ("ncells", "vertices"))[:] = np.deg2rad(
            np.stack([lon_deg - 2, lon_deg + 2, lon_deg], axis=1))
        ts = ds.createVariable("ts", "f4", ("time", "ncells"))
        ts.coordinates = "clat clon"
        ts.units = "K"
        ts[:] = 270 + np.arange(3 * n, dtype="f4").reshape(3, n)
    with netCDF4.Dataset(out / "healpix.nc", "w") as ds:
        nside = 4
        ds.createDimension("cell", 12 * nside * nside)
        ds.createDimension("time", 2)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 2000-01-01", "360_day"
        t[:] = [15, 45]
        crs = ds.createVariable("crs", "i4", ())
        crs.grid_mapping_name, crs.healpix_nside, crs.healpix_order = "healpix", nside, "nest"
        tas = ds.createVariable("tas", "f4", ("time", "cell"))
        tas.grid_mapping = "crs"
        tas.units = "K"
        tas[:] = 250 + np.arange(2 * 12 * nside * nside, dtype="f4").reshape(2, -1) % 37


@pytest.fixture(scope="module")
def plotted(files, cache_dir, tmp_path_factory):
    grids = tmp_path_factory.mktemp("grids")
    write_grids(grids)
    config = tmp_path_factory.mktemp("config") / "cloudify.toml"
    config.write_text(f"""
[demo]
enabled = false

[[folders]]
path = "{files}"

[[folders]]
path = "{grids}"
""")
    srv = Server("--config", str(config), cache_dir=cache_dir)
    srv.files = {"grids": grids, "files": files}
    yield srv
    srv.stop()


def drawn(server, path):
    reply = requests.get(f"{server.url}/datasets/{path}", timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def values(frame):
    return np.array([np.nan if v is None else v for v in frame["values"]], dtype="f8")


def source(server, folder, name):
    return xr.open_dataset(server.files[folder] / f"{name}.nc")


@pytest.mark.parametrize("query, selection", [
    ("", {"time": -1}),
    ("?isel.time=2", {"time": 2}),
])
def test_a_map_holds_what_isel_selects(plotted, query, selection):
    doc = drawn(plotted, f"nc4_chunked/plot/tas/map/viridis{query}{'&' if query else '?'}format=json")
    expected = source(plotted, "files", "nc4_chunked").tas.isel(**selection)
    np.testing.assert_allclose(values(doc["frames"][0]), expected.values.ravel(), rtol=1e-6)
    assert doc["geometry"]["lon"] == expected.lon.values.tolist()
    assert doc["frames"][0]["label"].startswith(str(expected.time.values.item())[:10])


def test_labelled_selection_equals_sel(plotted):
    ds = source(plotted, "files", "nc4_chunked")
    doc = drawn(plotted, "nc4_chunked/plot/tas/map/viridis?lat=-30:30&lon=100:200&isel.time=0&format=json")
    expected = ds.tas.isel(time=0).sel(lat=slice(-30, 30), lon=slice(100, 200))
    # Across the antimeridian, west to east: 100..180, then 180..200 (written -180..-160).
    assert doc["geometry"]["lon"] == expected.lon.values.tolist()
    np.testing.assert_allclose(values(doc["frames"][0]), expected.values.ravel(), rtol=1e-6)


def test_packed_values_are_unpacked_and_masked_like_xarray(plotted):
    doc = drawn(plotted, "nc4_packed/plot/pr/map/Blues?isel.time=0&format=json")
    expected = source(plotted, "files", "nc4_packed").pr.isel(time=0)
    np.testing.assert_allclose(values(doc["frames"][0]), expected.values.ravel(), rtol=1e-6)
    assert np.isnan(values(doc["frames"][0])[:3]).all()


def test_a_line_is_the_cos_lat_weighted_mean(plotted):
    ds = source(plotted, "files", "nc4_chunked")
    doc = drawn(plotted, "nc4_chunked/plot/tas/line?format=json")
    expected = ds.tas.weighted(np.cos(np.deg2rad(ds.lat))).mean(("lat", "lon"))
    np.testing.assert_allclose(doc["values"], expected.values, rtol=1e-6)
    point = drawn(plotted, "nc4_chunked/plot/tas/line?lat=45&lon=90&format=json")
    np.testing.assert_allclose(point["values"], ds.tas.sel(lat=45, lon=90, method="nearest").values, rtol=1e-6)


def test_360_day_times_by_label(plotted):
    ds = source(plotted, "files", "nc3_classic")
    label = str(ds.time.values[1])[:10]
    doc = drawn(plotted, f"nc3_classic/plot/ts/map/viridis?time={label}&format=json")
    np.testing.assert_allclose(values(doc["frames"][0]), ds.ts.sel(time=label).values.ravel(), rtol=1e-6)
    assert doc["frames"][0]["label"].startswith(label)


def test_histograms_count_like_numpy(plotted):
    doc = drawn(plotted, "nc4_chunked/plot/tas/hist?isel.time=0&format=json")
    data = source(plotted, "files", "nc4_chunked").tas.isel(time=0).values.ravel()
    counts, _ = np.histogram(data[np.isfinite(data)], bins=30, range=(doc["vmin"], doc["vmax"]))
    assert doc["counts"] == counts.tolist()


def test_curvilinear_cells_and_positions(plotted):
    ds = source(plotted, "grids", "curvilinear")
    doc = drawn(plotted, "curvilinear/plot/sst?format=json")
    np.testing.assert_allclose(values(doc["frames"][0]), ds.sst.isel(time=-1).values.ravel())
    assert doc["geometry"]["type"] == "curvilinear"
    np.testing.assert_allclose(doc["geometry"]["lat"], ds.nav_lat.values.ravel(), rtol=1e-6)
    line = drawn(plotted, "curvilinear/plot/sst/line?format=json")
    expected = ds.sst.weighted(np.cos(np.deg2rad(ds.nav_lat))).mean(("y", "x"))
    np.testing.assert_allclose(line["values"], expected.values, rtol=1e-5)
    png = requests.get(f"{plotted.url}/datasets/curvilinear/plot/sst", timeout=60)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"


def test_unstructured_cells_in_degrees(plotted):
    ds = source(plotted, "grids", "icon")
    doc = drawn(plotted, "icon/plot/ts/map/viridis?isel.time=1&format=json")
    np.testing.assert_allclose(values(doc["frames"][0]), ds.ts.isel(time=1).values)
    np.testing.assert_allclose(doc["geometry"]["lat"], np.rad2deg(ds.clat.values))
    line = drawn(plotted, "icon/plot/ts/line?format=json")
    np.testing.assert_allclose(line["values"], ds.ts.mean("ncells").values, rtol=1e-6)
    assert requests.get(f"{plotted.url}/datasets/icon/plot/ts/scatter", timeout=60).status_code == 200


def test_healpix_cells(plotted):
    ds = source(plotted, "grids", "healpix")
    doc = drawn(plotted, "healpix/plot/tas?format=json")
    np.testing.assert_allclose(values(doc["frames"][0]), ds.tas.isel(time=-1).values)
    assert doc["geometry"]["type"] == "cells"
    # Nested cell 0 of nside 4 lies at 45°E, in the northern hemisphere's equatorial belt.
    assert doc["geometry"]["lon"][0] == pytest.approx(45.0)
    assert 0 < doc["geometry"]["lat"][0] < 10
    line = drawn(plotted, "healpix/plot/tas/line?format=json")
    np.testing.assert_allclose(line["values"], ds.tas.mean("cell").values, rtol=1e-6)
    assert line["axis"]["labels"][0].startswith("2000-01-16")


def test_pictures_and_refusals(plotted):
    animated = requests.get(f"{plotted.url}/datasets/nc4_chunked/plot/tas/map/viridis?isel.time=0:5", timeout=60)
    assert animated.status_code == 200 and b"acTL" in animated.content[:200]
    svg = requests.get(f"{plotted.url}/datasets/nc4_chunked/plot/tas?format=svg", timeout=60)
    assert svg.headers["content-type"] == "image/svg+xml" and svg.text.startswith("<svg")
    for path, status in [("nc4_chunked/plot/nothing", 404), ("nc4_chunked/plot/tas/pie", 400),
                         ("nc4_chunked/plot/tas/map/jet", 400), ("nc4_chunked/plot/tas?lat=95:99", 400)]:
        reply = requests.get(f"{plotted.url}/datasets/{path}", timeout=60)
        assert reply.status_code == status, path
        assert "error" in reply.json()
