"""The stac plugin as STAC clients see it: stac-validator, pystac, pystac-client, and what
CEDA DataPoint does with an item's assets (HEAD probes, then xarray on `zstore` and
`reference_file`). Values are compared with netCDF4-python and xarray on the source files."""

import calendar
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import netCDF4
import numpy as np
import pystac
import pytest
import requests
import xarray as xr
from pystac.extensions.datacube import DatacubeExtension
from pystac_client import Client
from stac_validator.validate import StacValidate

from conftest import Server, _binary

STAC_ROOT = Path(pystac.__file__).parent / "validation" / "jsonschemas"


def schema_map():
    """The core STAC 1.1 and GeoJSON schemas bundled with pystac, by their URLs (this machine
    reaches package registries only). Extension schemas are not bundled anywhere installable,
    so stac-validator checks the core schemas; the datacube fields are checked through
    pystac's extension and against xarray below."""
    spec = STAC_ROOT / "stac-spec" / "v1.1.0"
    found = {}
    for path in spec.iterdir():
        for part in ("item-spec", "catalog-spec", "collection-spec"):
            found[f"https://schemas.stacspec.org/v1.1.0/{part}/json-schema/{path.name}"] = str(path)
    for name in ("Feature.json", "Geometry.json"):
        found[f"https://geojson.org/schema/{name}"] = str(STAC_ROOT / "geojson" / name)
    return found


SCHEMAS = schema_map()


def assert_valid(doc):
    validator = StacValidate(core=True, schema_map=SCHEMAS)
    assert validator.validate_dict(doc), json.dumps(validator.message, indent=1)[:3000]


def get(url, **kwargs):
    response = requests.get(url, timeout=60, **kwargs)
    assert response.status_code == 200, (url, response.status_code, response.text[:500])
    return response.json()


def write_regions(folder):
    """Datasets with known extents: a Pacific region across the antimeridian with longitude
    bounds (CMIP-style attributes), a European one in 0–360 longitudes, cells of an
    unstructured grid in radians, and a field without time."""
    folder.mkdir(exist_ok=True)
    with netCDF4.Dataset(folder / "pacific.nc", "w") as ds:
        ds.title = "Pacific tas and pr"
        ds.experiment_id = "ssp585"
        ds.source_id = "MODEL-A"
        ds.institution_id = "CLOUDIFY"
        ds.frequency = "mon"
        ds.createDimension("time", None)
        ds.createDimension("lat", 5)
        ds.createDimension("lon", 5)
        ds.createDimension("bnds", 2)
        time = ds.createVariable("time", "f8", ("time",))
        time.units = "days since 2015-01-01"
        time.calendar = "standard"
        time[:] = np.arange(12) * 30.0 + 15.0
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-10, 10, 5)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon.bounds = "lon_bnds"
        lon[:] = np.linspace(170, 190, 5)
        bnds = ds.createVariable("lon_bnds", "f8", ("lon", "bnds"))
        bnds[:] = np.stack([lon[:] - 2.5, lon[:] + 2.5], axis=1)
        for name, units in [("tas", "K"), ("pr", "kg m-2 s-1")]:
            v = ds.createVariable(name, "f4", ("time", "lat", "lon"), zlib=True, chunksizes=(6, 5, 5))
            v.units = units
            v.long_name = name.upper()
            v[:] = np.arange(12 * 25, dtype="f4").reshape(12, 5, 5)
    with netCDF4.Dataset(folder / "europe.nc", "w") as ds:
        ds.title = "European cloud cover"
        ds.experiment_id = "historical"
        ds.source_id = "MODEL-B"
        ds.createDimension("time", 3)
        ds.createDimension("lat", 8)
        ds.createDimension("lon", 9)
        time = ds.createVariable("time", "i4", ("time",))
        time.units = "hours since 1990-01-01 00:00:00"
        time.calendar = "proleptic_gregorian"
        time[:] = [0, 6, 12]
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.standard_name = "latitude"
        lat.units = "degrees_north"
        lat[:] = np.linspace(35, 70, 8)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.standard_name = "longitude"
        lon.units = "degrees_east"
        lon[:] = [350, 355, 0, 5, 10, 15, 20, 25, 30]
        clt = ds.createVariable("clt", "i2", ("time", "lat", "lon"), fill_value=np.int16(-1))
        clt.scale_factor = 0.01
        clt.units = "%"
        clt[:] = np.full((3, 8, 9), 50.0)
    with netCDF4.Dataset(folder / "icon_cells.nc", "w") as ds:
        ds.createDimension("ncells", 6)
        for name, standard, values in [("clat", "latitude", [10, 12, 14, 16, 18, 20]),
                                       ("clon", "longitude", [100, 102, 104, 106, 108, 110])]:
            v = ds.createVariable(name, "f8", ("ncells",))
            v.standard_name = standard
            v.units = "radian"
            v[:] = np.radians(values)
        ts = ds.createVariable("ts", "f4", ("ncells",))
        ts.coordinates = "clat clon"
        ts[:] = np.arange(6)
    with netCDF4.Dataset(folder / "orography.nc", "w") as ds:
        ds.createDimension("lat", 4)
        ds.createDimension("lon", 8)
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = [-67.5, -22.5, 22.5, 67.5]
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = np.arange(8) * 45.0 - 180.0
        orog = ds.createVariable("orog", "f4", ("lat", "lon"))
        orog.units = "m"
        orog[:] = np.ones((4, 8))
    return folder


def config_text(files, regions, extra=""):
    return f"""
[demo]
enabled = false

[[folders]]
path = "{files}"
recursive = false

[[folders]]
path = "{regions}"

[[datasets]]
id = "series"
path = "{files}/series/tas_*.nc"

[plugin.stac.collection]
id = "test-all"
{extra}
"""


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    return write_regions(tmp_path_factory.mktemp("regions"))


@pytest.fixture(scope="module")
def config(files, regions, tmp_path_factory):
    path = tmp_path_factory.mktemp("stac-config") / "cloudify.toml"
    path.write_text(config_text(files, regions))
    return path


@pytest.fixture(scope="module")
def served(config, cache_dir):
    srv = Server("--config", str(config), cache_dir=cache_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def items(served):
    ids = get(f"{served.url}/datasets")
    return {i: get(f"{served.url}/datasets/{i}/stac") for i in ids}


def split_group(files, item_id):
    """A sub-group's dataset id as its file's id and group path (`nc4_groups.forecast`)."""
    stem, _, group = item_id.partition(".")
    if group and (files / f"{stem}.nc").exists():
        return stem, group.replace(".", "/")
    return item_id, None


def source_path(files, regions, item_id):
    item_id, _ = split_group(files, item_id)
    if item_id == "series":
        return sorted((files / "series").glob("tas_*.nc"))
    for path in (files / f"{item_id}.nc", regions / f"{item_id}.nc", files / f"{item_id}.zarr"):
        if path.exists():
            return [path]
    raise KeyError(item_id)


def open_source(files, regions, item_id, **kwargs):
    paths = source_path(files, regions, item_id)
    if paths[0].suffix == ".zarr":
        return xr.open_dataset(paths[0], engine="zarr", **kwargs)
    if len(paths) > 1:
        return xr.open_mfdataset(paths, combine="nested", concat_dim="time", data_vars="minimal", coords="minimal",
                                 compat="override", **kwargs)
    _, group = split_group(files, item_id)
    # Read whole and closed: libhdf5 crashes when a second handle of a file with string fill
    # values closes while the first reads (see test_strings.load).
    with xr.open_dataset(paths[0], group=group, cache=False, **kwargs) as ds:
        return ds.load()


def rfc3339(date):
    """A cftime date as the plugin writes it: the Gregorian day clamped into the month."""
    year = min(max(date.year, 1), 9999)
    day = min(date.day, calendar.monthrange(year, date.month)[1])
    return f"{year:04d}-{date.month:02d}-{day:02d}T{date.hour:02d}:{date.minute:02d}:{date.second:02d}Z"


def test_every_item_validates(items):
    assert len(items) >= 10
    for item in items.values():
        assert_valid(item)
        parsed = pystac.Item.from_dict(item)
        assert parsed.collection_id == "test-all"
        props = item["properties"]
        if props["datetime"] is None:
            start, end = (np.datetime64(props[k].rstrip("Z")) for k in ("start_datetime", "end_datetime"))
            assert start <= end


def test_items_describe_the_source_like_xarray(items, files, regions):
    for item_id, item in items.items():
        # Undecoded: character arrays keep their length dimension, as /zarr serves them.
        source = open_source(files, regions, item_id, concat_characters=False, mask_and_scale=False, decode_times=False)
        data_vars = [name for name in source.data_vars if not name.endswith("_bnds")]
        assert sorted(item["properties"]["variables"]) == sorted(data_vars), item_id
        cube = DatacubeExtension.ext(pystac.Item.from_dict(item))
        assert set(cube.dimensions) == set(source.sizes), item_id
        assert set(cube.variables) >= set(data_vars), item_id
        for name, variable in cube.variables.items():
            assert list(variable.dimensions) == list(source[name].dims), (item_id, name)
            assert variable.unit == source[name].attrs.get("units"), (item_id, name)


def test_bbox_from_the_coordinates(items, files, regions):
    pacific = items["pacific"]
    # Cell bounds 167.5–192.5 °E: across the antimeridian, so west > east.
    assert pacific["bbox"] == [167.5, -10.0, -167.5, 10.0]
    assert pacific["geometry"]["type"] == "MultiPolygon"
    assert items["europe"]["bbox"] == [-10.0, 35.0, 30.0, 70.0]
    # An unstructured grid with coordinates in radians.
    assert items["icon_cells"]["bbox"] == [100.0, 10.0, 110.0, 20.0]
    for item_id in ("nc4_chunked", "series", "orography"):
        source = open_source(files, regions, item_id)
        lon = (source.lon.values + 180) % 360 - 180
        expected = [lon.min(), source.lat.values.min(), lon.max(), source.lat.values.max()]
        assert np.allclose(items[item_id]["bbox"], expected), (item_id, items[item_id]["bbox"], expected)


def test_time_extent_in_every_calendar(items, files, regions):
    checked = 0
    for item_id, item in items.items():
        source = open_source(files, regions, item_id, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
        if "time" not in source.coords:
            continue
        times = source.time.values
        assert item["properties"]["start_datetime"] == rfc3339(times.min()), item_id
        assert item["properties"]["end_datetime"] == rfc3339(times.max()), item_id
        cube_time = item["properties"]["cube:dimensions"]["time"]
        assert cube_time["type"] == "temporal"
        assert cube_time["extent"] == [rfc3339(times.min()), rfc3339(times.max())]
        checked += 1
    assert checked >= 5  # standard, noleap, 360_day (NetCDF3 and the series), proleptic_gregorian
    assert items["series"]["properties"]["end_datetime"] == "2009-12-01T00:00:00Z"
    # No time coordinate: the time the data was written.
    assert items["orography"]["properties"]["datetime"].endswith("Z")


def test_cmip_attributes_become_properties(items):
    props = items["pacific"]["properties"]
    assert (props["experiment_id"], props["source_id"], props["institution_id"], props["frequency"]) == (
        "ssp585", "MODEL-A", "CLOUDIFY", "mon")
    assert props["title"] == "Pacific tas and pr"
    assert "experiment_id" not in items["orography"]["properties"]


def test_every_asset_answers_head_as_datapoint_probes_it(items):
    for item in items.values():
        assert {"zstore", "xarray_view"} <= set(item["assets"])
        for key, asset in item["assets"].items():
            assert asset["href"].startswith("http://127.0.0.1:")
            assert asset["roles"] and asset["type"] and asset["title"]
            # DataPoint: HEAD must give 200 without redirects; zarr stores at .zmetadata.
            probe = asset["href"] + "/.zmetadata" if asset.get("cloud_format") == "zarr" else asset["href"]
            response = requests.head(probe, timeout=60, allow_redirects=False)
            assert response.status_code == 200, (item["id"], key, probe, response.status_code)


def test_datapoint_conventions(items):
    assets = items["nc4_chunked"]["assets"]
    assert assets["zstore"]["cloud_format"] == "zarr"
    assert assets["zstore"]["open_zarr_kwargs"] == {"consolidated": True}
    assert assets["zstore"]["xarray:open_kwargs"]["engine"] == "zarr"
    assert assets["reference_file"]["cloud_format"] == "kerchunk"
    assert assets["reference_file"]["href"].endswith("/datasets/nc4_chunked/kerchunk.json")
    assert assets["kerchunk"]["href"].endswith("/datasets/nc4_chunked/kerchunk")
    assert assets["intake"]["href"].endswith("/datasets/nc4_chunked/catalog.yaml")
    # nc4_strings has variable-length strings read through libnetcdf: /kerchunk cannot serve
    # them, so its item offers the decoded Zarr store only.
    strings = items["nc4_strings"]["assets"]
    assert "zstore" in strings and not {"kerchunk", "reference_file", "reference_parquet"} & set(strings)
    assert {"kerchunk", "reference_file"} <= set(items["nc4_sparse"]["assets"]), "fletcher32 chunks are references"
    assert {"kerchunk", "reference_file"} <= set(items["nc4_contiguous"]["assets"]), "compact data is inline"
    assert set(items["nc4_strings"]["properties"]["variables"]) == {"flag", "label", "sparse", "nofill", "temp"}


@pytest.mark.parametrize("item_id", ["nc4_chunked", "pacific", "europe", "series"])
def test_datapoint_opens_zstore_and_reference_file(items, files, regions, item_id):
    """What DataPoint's open_dataset does with each cloud format, and what xpystac does with
    the xarray-assets fields; values equal netCDF4-python's on the source."""
    assets = items[item_id]["assets"]
    zstore = assets["zstore"]
    opened = {
        "zstore": xr.open_dataset(zstore["href"], engine="zarr", **zstore["open_zarr_kwargs"]),
        "zstore (xarray-assets)": xr.open_dataset(zstore["href"], **zstore["xarray:open_kwargs"],
                                                  storage_options=zstore["xarray:storage_options"] or None),
        "reference_file": xr.open_dataset(assets["reference_file"]["href"], engine="kerchunk",
                                          **assets["reference_file"]["open_zarr_kwargs"]),
        # Zarr v2 declared: zarr-python 3.0.x (which DataPoint pins) knows no v3 names for
        # the NetCDF4 codecs (numcodecs.shuffle, numcodecs.zlib).
        "kerchunk": xr.open_dataset(assets["kerchunk"]["href"], engine="zarr", **assets["kerchunk"]["open_zarr_kwargs"]),
    }
    assert assets["kerchunk"]["open_zarr_kwargs"]["zarr_format"] == 2
    assert assets["kerchunk"]["xarray:open_kwargs"]["zarr_format"] == 2
    paths = source_path(files, regions, item_id)
    for how, ds in opened.items():
        for name in items[item_id]["properties"]["variables"]:
            parts = []
            for path in paths:
                with netCDF4.Dataset(path) as nc:
                    parts.append(np.ma.filled(nc[name][...].astype("f8"), np.nan))
            expected = np.concatenate(parts) if len(parts) > 1 else parts[0]
            np.testing.assert_allclose(ds[name].values.astype("f8"), expected, rtol=1e-6, equal_nan=True,
                                       err_msg=f"{item_id} {name} via {how}")


def test_collection_extent_covers_the_items(served, items):
    collection = get(f"{served.url}/stac-collection-all.json")
    assert_valid(collection)
    assert collection["id"] == "test-all"
    # Pacific crosses the antimeridian: the union is every longitude.
    assert collection["extent"]["spatial"]["bbox"] == [[-180.0, -90.0, 180.0, 90.0]] or \
        collection["extent"]["spatial"]["bbox"][0][0] == -180.0
    starts = [i["properties"].get("start_datetime") or i["properties"]["datetime"] for i in items.values()]
    ends = [i["properties"].get("end_datetime") or i["properties"]["datetime"] for i in items.values()]
    assert collection["extent"]["temporal"]["interval"] == [[min(starts), max(ends)]]
    item_links = sorted(link["href"] for link in collection["links"] if link["rel"] == "item")
    assert item_links == sorted(f"{served.url}/datasets/{i}/stac" for i in items)
    assert sorted(collection["summaries"]["variables"]) == sorted({v for i in items.values() for v in i["properties"]["variables"]})
    # The item's collection link resolves (DataPoint calls item.get_collection()).
    item = pystac.Item.from_file(f"{served.url}/datasets/pacific/stac")
    assert item.get_collection().id == "test-all"


def test_stac_api_landing_and_collections(served):
    landing = get(f"{served.url}/stac")
    assert_valid(landing)
    assert "https://api.stacspec.org/v1.0.0/item-search#query" in landing["conformsTo"]
    assert {link["rel"] for link in landing["links"]} >= {"self", "root", "conformance", "data", "search", "child"}
    assert get(f"{served.url}/stac/conformance")["conformsTo"] == landing["conformsTo"]
    collections = get(f"{served.url}/stac/collections")["collections"]
    assert [c["id"] for c in collections] == ["test-all"]
    assert_valid(collections[0])
    item = get(f"{served.url}/stac/collections/test-all/items/pacific")
    assert_valid(item)
    assert {link["rel"]: link["href"] for link in item["links"]}["collection"] == f"{served.url}/stac/collections/test-all"
    assert requests.get(f"{served.url}/stac/collections/nope", timeout=30).status_code == 404
    assert requests.get(f"{served.url}/stac/collections/test-all/items/nope", timeout=30).status_code == 404


def overlaps(item, west, south, east, north):
    """Reference bbox test in plain Python, splitting boxes at the antimeridian."""
    def spans(w, e):
        return [(w, e)] if w <= e else [(w, 180.0), (-180.0, e)]
    w, s, e, n = item["bbox"]
    return s <= north and south <= n and any(a <= d and c <= b for a, b in spans(w, e) for c, d in spans(west, east))


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_pystac_client_searches(served, items, method):
    client = Client.open(f"{served.url}/stac")
    assert [c.id for c in client.get_collections()] == ["test-all"]

    def found(**kwargs):
        search = client.search(collections=["test-all"], method=method, **kwargs)
        return sorted(item.id for item in search.items())

    box = [-175.0, -5.0, -172.0, 5.0]
    assert found(bbox=box) == sorted(i for i, item in items.items() if overlaps(item, *box))
    assert "pacific" in found(bbox=box) and "europe" not in found(bbox=box)
    assert found(bbox=[-5.0, 40.0, 5.0, 50.0]) == sorted(i for i, item in items.items() if overlaps(item, -5, 40, 5, 50))
    polygon = {"type": "Polygon", "coordinates": [[[-8, 36], [-2, 36], [-2, 40], [-8, 40], [-8, 36]]]}
    assert "europe" in found(intersects=polygon) and "pacific" not in found(intersects=polygon)
    assert found(datetime="2015-03-01/2015-04-01") == ["pacific"]
    assert found(datetime="1990-01-01T03:00:00Z/1990-01-01T05:00:00Z") == ["europe"]
    assert found(query=["experiment_id=ssp585"]) == ["pacific"]
    assert found(query={"variables": {"eq": "clt"}}) == ["europe"]
    assert found(query=["experiment_id=historical"], datetime="2015-01-01/..") == []
    assert found(ids=["pacific", "europe", "nope"]) == ["europe", "pacific"]


def test_search_pages_with_limit(served, items):
    client = Client.open(f"{served.url}/stac")
    search = client.search(collections=["test-all"], limit=3)
    pages = [page.items for page in search.pages()]
    assert all(len(page) <= 3 for page in pages) and len(pages) == -(-len(items) // 3)
    assert sorted(item.id for page in pages for item in page) == sorted(items)
    first = get(f"{served.url}/stac/search?limit=3")
    assert first["numberMatched"] == len(items) and first["numberReturned"] == 3
    following = get(next(link["href"] for link in first["links"] if link["rel"] == "next"))
    assert [f["id"] for f in following["features"]] == list(items)[3:6]
    page = get(f"{served.url}/stac/collections/test-all/items?limit=2")
    assert page["numberReturned"] == 2 and any(link["rel"] == "next" for link in page["links"])


@pytest.mark.parametrize("bad", [
    "bbox=1,2,3", "bbox=0,10,10,5", "datetime=2015", "datetime=2016-01-01T00:00:00Z/2015-01-01T00:00:00Z",
    "limit=0", "limit=abc", "token=elsewhere", "query=notjson", "query=%7B%22a%22%3A%7B%22like%22%3A1%7D%7D",
    "intersects=%7B%22type%22%3A%22Blob%22%7D", "unknown=1", "filter=experiment_id%3D'ssp585'",
    "bbox=0,0,1,1&intersects=%7B%22type%22%3A%22Point%22%2C%22coordinates%22%3A%5B0%2C0%5D%7D",
])
def test_bad_searches_are_400(served, bad):
    response = requests.get(f"{served.url}/stac/search?{bad}", timeout=30)
    assert response.status_code == 400, (bad, response.text)
    assert response.json()["error"]


def test_stac_api_conformance_details(served, items):
    """What stac-api-validator checks beyond the schemas: one Content-Type per answer, a limit
    over the maximum lowered to it, and the service description in OpenAPI's media type."""
    for path in ["/stac", "/stac/search", "/stac/collections/test-all/items", f"/datasets/{next(iter(items))}/stac"]:
        response = requests.get(f"{served.url}{path}", timeout=30)
        assert response.status_code == 200, path
        assert len(response.raw.headers.getlist("content-type")) == 1, (path, response.raw.headers.getlist("content-type"))
    clamped = requests.get(f"{served.url}/stac/search?limit=100000", timeout=30)
    assert clamped.status_code == 200 and clamped.json()["numberReturned"] == len(items)
    landing = get(f"{served.url}/stac")
    desc = next(link for link in landing["links"] if link["rel"] == "service-desc")
    response = requests.get(desc["href"], headers={"Accept": desc["type"]}, timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == desc["type"]
    assert response.json()["openapi"].startswith("3.")
    assert requests.get(desc["href"], timeout=30).headers["content-type"] == "application/json"


def test_bad_post_bodies_are_400_and_the_server_keeps_serving(served):
    for body in [b"{", b'{"bbox": "x"}', b'{"limitt": 3}']:
        response = requests.post(f"{served.url}/stac/search", data=body, timeout=30,
                                 headers={"content-type": "application/json"})
        assert response.status_code == 400, body
    assert requests.get(f"{served.url}/datasets/pacific/stac", timeout=30).status_code == 200
    assert requests.get(f"{served.url}/datasets/nope/stac", timeout=30).status_code == 404
    assert requests.get(f"{served.url}/datasets/pacific/stac/", timeout=30).json()["id"] == "pacific"


def test_static_catalog(served, config, items, tmp_path):
    out = tmp_path / "catalog"
    done = subprocess.run([str(_binary()), "stac", "build", "--config", str(config), "--out", str(out),
                           "--base-url", served.url], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CLOUDIFY_LOG": "warn"})
    assert done.returncode == 0, done.stderr
    files = sorted(out.rglob("*.json"))
    assert len(files) == len(items) + 2
    for path in files:
        assert_valid(json.loads(path.read_text()))
    recursive = StacValidate(str(out / "catalog.json"), recursive=True, core=True, schema_map=SCHEMAS)
    assert recursive.run(), json.dumps(recursive.message, indent=1)[:3000]
    catalog = pystac.Catalog.from_file(str(out / "catalog.json"))
    walked = {item.id: item for item in catalog.get_items(recursive=True)}
    assert sorted(walked) == sorted(items)
    pacific = walked["pacific"].to_dict()
    assert pacific["bbox"] == items["pacific"]["bbox"]
    assert pacific["properties"]["variables"] == items["pacific"]["properties"]["variables"]
    # The assets still point at the server, and work.
    href = walked["pacific"].assets["zstore"].href
    assert href == f"{served.url}/datasets/pacific/zarr"
    assert float(xr.open_dataset(href, engine="zarr", consolidated=True).tas.sum()) == float(np.arange(300).sum())
    assert subprocess.run([str(_binary()), "stac", "build", "--config", str(config), "--out", str(tmp_path / "x")],
                          capture_output=True, timeout=120).returncode == 2  # no base URL


def test_institution_profile(files, regions, cache_dir, tmp_path):
    profile = Path(__file__).resolve().parents[2] / "examples" / "eerie" / "stac-profile.json"
    config = tmp_path / "cloudify.toml"
    config.write_text(config_text(files, regions).replace('[plugin.stac.collection]\nid = "test-all"\n',
                                                          f'[plugin.stac]\nprofile = "{profile}"\n'))
    srv = Server("--config", str(config), cache_dir=cache_dir)
    try:
        collection = get(f"{srv.url}/stac-collection-all.json")
        assert_valid(collection)
        assert collection["id"] == "eerie-cloud-all" and "EERIE" in collection["keywords"]
        assert collection["providers"][0]["name"] == "DKRZ"
        item = get(f"{srv.url}/datasets/pacific/stac")
        assert_valid(item)
        assert item["properties"]["project"] == "EERIE"
        cloud = item["assets"]["eerie-cloud"]
        assert cloud["href"] == f"{srv.url}/datasets/pacific/kerchunk"
        assert cloud["alternate"]["processed"]["href"] == f"{srv.url}/datasets/pacific/zarr"
        assert "kerchunk" not in item["assets"]
        assert requests.head(cloud["href"] + "/.zmetadata", timeout=30).status_code == 200
    finally:
        srv.stop()


def test_plugins_left_out_leave_their_assets_out(files, regions, cache_dir, tmp_path):
    config = tmp_path / "cloudify.toml"
    config.write_text("[plugins]\ndisabled = [\"kerchunk\", \"intake\"]\n" + config_text(files, regions))
    srv = Server("--config", str(config), cache_dir=cache_dir)
    try:
        assets = get(f"{srv.url}/datasets/pacific/stac")["assets"]
        assert sorted(assets) == ["xarray_view", "zstore"]
    finally:
        srv.stop()


def extension_schema_map():
    """The extension schemas the default profile declares (datacube, xarray-assets), kept in
    `schemas/` as published at their URLs, for validation without the network."""
    here = Path(__file__).parent / "schemas"
    return {
        f"https://stac-extensions.github.io/{path.parent.parent.name}/{path.parent.name}/schema.json": str(path)
        for path in here.glob("*/*/schema.json")
    }


def test_stac_api_validator_finds_no_error(served, items, monkeypatch):
    """stac-api-validator, the STAC API's own conformance suite, with every class the landing
    page advertises; stac-validator and stac-check read the core and extension schemas from
    local files instead of the network."""
    import stac_api_validator.validations as validations
    import stac_validator.stac_validator as stac_validator_module

    schemas = {**SCHEMAS, **extension_schema_map()}
    assert len(schemas) > len(SCHEMAS), "extension schemas missing from tests/interop/schemas"
    original = stac_validator_module.StacValidate.__init__

    def offline(self, *args, **kwargs):
        original(self, *args, **{**kwargs, "schema_map": schemas})

    monkeypatch.setattr(stac_validator_module.StacValidate, "__init__", offline)
    landing = get(f"{served.url}/stac")
    advertised = {cc.rsplit("/", 1)[-1].split("#")[0] for cc in landing["conformsTo"] if "api.stacspec.org" in cc}
    ccs = sorted(advertised & {"core", "collections", "ogcapi-features", "item-search"})
    assert {"core", "item-search", "collections"} <= set(ccs), landing["conformsTo"]
    ccs = ["features" if cc == "ogcapi-features" else cc for cc in ccs]
    pacific = next(item for item in items.values() if item["id"] == "pacific")
    warnings, errors = validations.validate_api(
        root_url=f"{served.url}/stac",
        ccs_to_validate=ccs,
        collection="test-all",
        geometry=json.dumps(pacific["geometry"]),
        auth_bearer_token=None,
        auth_query_parameter=None,
        fields_nested_property=None,
        validate_pagination=True,
        query_config=validations.QueryConfig(**{f.name: None for f in dataclasses.fields(validations.QueryConfig)}),
        transaction_collection=None,
        headers=None,
    )
    print("stac-api-validator warnings:", *warnings, sep="\n  ")
    assert not errors, "\n".join(errors)


ZARR30_PYTHON = Path(__file__).resolve().parents[2] / ".venv-zarr30" / "bin" / "python"

ZARR30_READER = """
import json, sys
import numpy as np, xarray as xr, zarr
asset = json.loads(sys.argv[1])
assert zarr.__version__.startswith("3.0."), zarr.__version__
ds = xr.open_dataset(asset["href"], **asset["xarray:open_kwargs"])
print(json.dumps({name: np.asarray(ds[name].values, dtype="f8").ravel().tolist() for name in ds.data_vars}))
"""


@pytest.mark.parametrize("item_id", ["nc4_chunked", "series"])
def test_kerchunk_asset_opens_in_zarr_3_0(items, files, regions, item_id):
    """The kerchunk asset with its own open kwargs, in zarr-python 3.0.x (.venv-zarr30, made by
    scripts/setup.sh --python), which knows no Zarr v3 names for NetCDF4's codecs: values equal
    netCDF4-python's on the source."""
    assert ZARR30_PYTHON.is_file(), "run scripts/setup.sh --python: .venv-zarr30 is missing"
    asset = items[item_id]["assets"]["kerchunk"]
    run = subprocess.run([str(ZARR30_PYTHON), "-c", ZARR30_READER, json.dumps(asset)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    values = json.loads(run.stdout)
    paths = source_path(files, regions, item_id)
    for name in items[item_id]["properties"]["variables"]:
        parts = []
        for path in paths:
            with netCDF4.Dataset(path) as nc:
                parts.append(np.ma.filled(nc[name][...].astype("f8"), np.nan))
        expected = np.concatenate(parts) if len(parts) > 1 else parts[0]
        np.testing.assert_allclose(np.array(values[name], dtype="f8"), expected.ravel(), rtol=1e-6, equal_nan=True,
                                   err_msg=f"{item_id} {name}")
