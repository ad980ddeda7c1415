"""`cloudify datapoint` (the DataPoint client in Rust) against our own STAC API and against a
second server with other data: the items and products pystac-client finds, every product
opened and equal to xarray on the source file, and `datapoint get` selections equal to
`xr.open_dataset(...).sel(...)`."""

import json
import subprocess

import netCDF4
import numpy as np
import pystac_client
import pytest
import xarray as xr

from conftest import Server, _binary

MONTHS = 36


def write_tas(path, lon_start, seed):
    """Three years of monthly `tas` (zlib, chunked 6 months), coordinates with bounds."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("bnds", 2)
        ds.createDimension("lat", 18)
        ds.createDimension("lon", 36)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar, time.standard_name, time.bounds = "days since 2000-01-01", "standard", "time", "time_bnds"
        days = np.array([(np.datetime64(f"{2000 + m // 12}-{m % 12 + 1:02d}-15") - np.datetime64("2000-01-01")).astype(int) for m in range(MONTHS)])
        time[:] = days
        ds.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = np.stack([days - 14, days + 14], axis=1)
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.units, lat.standard_name = "degrees_north", "latitude"
        lat[:] = np.linspace(-85, 85, 18)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units, lon.standard_name = "degrees_east", "longitude"
        lon[:] = lon_start + np.arange(36) * 10.0
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, shuffle=True, chunksizes=(6, 18, 36), fill_value=1e20)
        tas.units, tas.standard_name = "K", "air_temperature"
        tas[:] = 250 + 40 * np.random.default_rng(seed).random((MONTHS, 18, 36), dtype="f4")
        ds.setncattr("source_id", f"MODEL-{seed}")


def write_pr_classic(path):
    """A NetCDF3 file of packed precipitation on 0–360 longitudes."""
    with netCDF4.Dataset(path, "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("time", None)
        ds.createDimension("lat", 18)
        ds.createDimension("lon", 36)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar = "days since 2000-01-01", "360_day"
        time[:] = np.arange(24) * 30 + 15
        ds.createVariable("lat", "f4", ("lat",))[:] = np.linspace(-85, 85, 18)
        ds.variables["lat"].units = "degrees_north"
        ds.createVariable("lon", "f4", ("lon",))[:] = np.arange(36) * 10.0
        ds.variables["lon"].units = "degrees_east"
        pr = ds.createVariable("pr", "i2", ("time", "lat", "lon"), fill_value=-32767)
        pr.units, pr.scale_factor, pr.add_offset = "kg m-2 s-1", 1e-6, 0.01
        pr[:] = 0.01 + 0.01 * np.random.default_rng(7).random((24, 18, 36))


def config(path, datasets):
    lines = []
    for id, file in datasets.items():
        lines += ["[[datasets]]", f'id = "{id}"', f'path = "{file}"']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("datapoint")
    write_tas(folder / "tas_a.nc", -175.0, 1)
    write_tas(folder / "tas_b.nc", -175.0, 2)
    write_pr_classic(folder / "pr.nc")
    return folder


@pytest.fixture(scope="module")
def ours(sources, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ours")
    toml = config(folder / "cloudify.toml", {"tas-a": sources / "tas_a.nc", "tas-b": sources / "tas_b.nc"})
    srv = Server("--config", str(toml), cache_dir=str(folder / "cache"))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def peer(sources, tmp_path_factory):
    """A second server with other data."""
    folder = tmp_path_factory.mktemp("peer")
    toml = config(folder / "cloudify.toml", {"pr-classic": sources / "pr.nc"})
    srv = Server("--config", str(toml), cache_dir=str(folder / "cache"))
    yield srv
    srv.stop()


def datapoint(*args, check=True):
    run = subprocess.run([str(_binary()), "datapoint", *map(str, args)], capture_output=True, text=True, timeout=300)
    if check:
        assert run.returncode == 0, run.stderr
    return run


def searched(url, *args):
    return json.loads(datapoint("search", url, "--json", *args).stdout)


# DataPoint's rule: the asset's `cloud_format`, else what its key implies.
KEYS = {"reference_file": "kerchunk", "reference_file_2": "CFA", "zstore": "zarr", "cog": "cog"}


def products_of(item):
    found = {}
    for key, asset in item.assets.items():
        fmt = asset.extra_fields.get("cloud_format") or KEYS.get(key)
        if fmt in ("kerchunk", "CFA", "zarr", "cog"):
            found[key] = (fmt, asset.href)
    return found


SEARCHES = [
    ([], {}),
    (["--collection", "cloudify-all"], {"collections": ["cloudify-all"]}),
    (["--bbox", "-10,-20,30,40"], {"bbox": [-10, -20, 30, 40]}),
    (["--datetime", "2001-01-01T00:00:00Z/2001-06-30T00:00:00Z"], {"datetime": "2001-01-01T00:00:00Z/2001-06-30T00:00:00Z"}),
    (["--datetime", "2030-01-01T00:00:00Z/.."], {"datetime": "2030-01-01T00:00:00Z/.."}),
    (["--query", "source_id=MODEL-2"], {"query": ["source_id=MODEL-2"]}),
    (["--id", "tas-a", "--id", "pr-classic"], {"ids": ["tas-a", "pr-classic"]}),
    (["--limit", "1"], {"limit": 1}),
]


@pytest.mark.parametrize("args,kwargs", SEARCHES, ids=[" ".join(a) or "all" for a, _ in SEARCHES])
def test_searches_find_what_pystac_client_finds(ours, peer, args, kwargs):
    for srv in (ours, peer):
        found = searched(f"{srv.url}/stac", *args)
        expected = list(pystac_client.Client.open(f"{srv.url}/stac").search(**kwargs).items())
        assert [i["id"] for i in found] == [i.id for i in expected]
        for item, stac in zip(found, expected):
            products = {p["asset"]: (p["cloud_format"], p["href"]) for p in item["products"]}
            assert products == products_of(stac)
            assert item["collection"] == stac.collection_id
            assert all(p["product"] == f"{stac.get_self_href()}#{p['asset']}" for p in item["products"])
    # The filters do filter: the empty future, one model.
    assert searched(f"{ours.url}/stac", "--datetime", "2030-01-01T00:00:00Z/..") == []
    assert [i["id"] for i in searched(f"{ours.url}/stac", "--query", "source_id=MODEL-2")] == ["tas-b"]


def test_the_table_names_items_and_products(ours):
    table = datapoint("search", f"{ours.url}/stac").stdout
    assert table.splitlines()[0].split() == ["ITEM", "COLLECTION", "TIME", "PRODUCTS"]
    row = next(line for line in table.splitlines() if line.startswith("tas-a "))
    assert "2000-01-15..2002-12-15" in row and "reference_file (kerchunk)" in row and "zstore (zarr)" in row
    assert f"{ours.url}/stac/collections/cloudify-all/items/tas-a#reference_file_2" in table


def test_info_shows_products_and_their_reachability(ours):
    item = f"{ours.url}/stac/collections/cloudify-all/items/tas-a"
    listing = datapoint("info", item, "--check").stdout
    assert "<DataPointCluster: tas-a" in listing
    assert " - tas-a-zstore: zarr (all)" in listing and " - tas-a-reference_file_2: CFA (all)" in listing
    one = datapoint("info", f"{item}#reference_file").stdout
    assert "<DataPointCloudProduct: tas-a-reference_file (Format: kerchunk)>" in one
    assert f" - href: {ours.url}/datasets/tas-a/kerchunk.json" in one
    assert " - source_id: MODEL-1" in one
    bad = datapoint("info", f"{item}#nope", check=False)
    assert bad.returncode == 1 and "no product nope of tas-a" in bad.stderr and "tas-a-zstore" in bad.stderr


def assert_same(ours, expected, names):
    for name in names:
        np.testing.assert_array_equal(ours[name].values, expected[name].values, err_msg=name)
        assert ours[name].dims == expected[name].dims, name
        assert ours[name].attrs.get("units") == expected[name].attrs.get("units"), name


@pytest.mark.parametrize("srv_name,dataset,source", [("ours", "tas-a", "tas_a.nc"), ("ours", "tas-b", "tas_b.nc"), ("peer", "pr-classic", "pr.nc")])
def test_every_product_opens_and_equals_the_source(request, sources, tmp_path, srv_name, dataset, source):
    srv = request.getfixturevalue(srv_name)
    [item] = searched(f"{srv.url}/stac", "--id", dataset)
    formats = sorted(p["cloud_format"] for p in item["products"])
    assert formats == ["CFA", "kerchunk", "zarr", "zarr"]
    expected = xr.open_dataset(sources / source)
    for product in item["products"]:
        out = tmp_path / f"{product['asset']}.nc"
        datapoint("get", product["product"], "-o", out)
        with xr.open_dataset(out) as got:
            assert_same(got, expected, list(expected.variables))


def test_get_selects_as_xarray_sel(ours, sources, tmp_path):
    out = tmp_path / "subset.nc"
    item = f"{ours.url}/stac/collections/cloudify-all/items/tas-a"
    run = datapoint("get", f"{item}#reference_file", "--var", "tas", "--bbox", "-60,-30,45,50", "--time", "2001-01:2001-12", "-o", out)
    assert "chunks" in run.stderr
    expected = xr.open_dataset(sources / "tas_a.nc").sel(lat=slice(-30, 50), lon=slice(-60, 45), time=slice("2001-01", "2001-12"))
    with xr.open_dataset(out) as got:
        assert got.sizes["time"] == 12 and 0 < got.sizes["lat"] < 18 and 0 < got.sizes["lon"] < 36
        assert set(got.data_vars) == {"tas", "time_bnds"}
        assert_same(got, expected, ["tas", "time", "lat", "lon", "time_bnds"])
    # Positions, and a value picked by its nearest label.
    datapoint("get", f"{item}#zstore", "--var", "tas", "--sel", "isel.time=-3:", "--sel", "lat=41", "-o", out)
    expected = xr.open_dataset(sources / "tas_a.nc").isel(time=slice(-3, None)).sel(lat=[41], method="nearest")
    with xr.open_dataset(out) as got:
        assert_same(got, expected, ["tas", "time", "lat"])


def test_a_bbox_across_the_antimeridian_takes_both_sides(peer, sources, tmp_path):
    out = tmp_path / "wrapped.nc"
    item = f"{peer.url}/stac/collections/cloudify-all/items/pr-classic"
    datapoint("get", f"{item}#reference_file_2", "--bbox", "-30,0,25,20", "--time", "2000-06:2000-08", "-o", out)
    source = xr.open_dataset(sources / "pr.nc").sel(lat=slice(0, 20), time=slice("2000-06", "2000-08"))
    expected = xr.concat([source.sel(lon=slice(330, 360)), source.sel(lon=slice(0, 25))], dim="lon")
    with xr.open_dataset(out) as got:
        assert list(got.lon.values) == [330, 340, 350, 0, 10, 20]
        assert_same(got, expected, ["pr", "time", "lat", "lon"])
        # Packed values stay packed, as the source stores them.
        assert got.pr.encoding["dtype"] == np.int16 and got.pr.encoding["scale_factor"] == pytest.approx(1e-6)


def test_selections_that_cannot_be_made_are_refused(ours, tmp_path):
    item = f"{ours.url}/stac/collections/cloudify-all/items/tas-a"
    out = tmp_path / "x.nc"
    run = datapoint("get", f"{item}#zstore", "--var", "nope", "-o", out, check=False)
    assert run.returncode == 1 and "none of the variables [nope]" in run.stderr and "tas" in run.stderr
    run = datapoint("get", f"{item}#zstore", "--time", "1990:1991", "-o", out, check=False)
    assert run.returncode == 1 and "time" in run.stderr
    run = datapoint("get", f"{item}#zstore", "--max-bytes", "1000", "-o", out, check=False)
    assert run.returncode == 1 and "more than 1000" in run.stderr
    assert not out.exists()
    run = datapoint("search", "http://127.0.0.1:9/stac", check=False)
    assert run.returncode == 1 and "127.0.0.1:9" in run.stderr


def federating(tmp_path, sources_toml):
    toml = tmp_path / "federation.toml"
    toml.write_text("[demo]\nenabled = false\n" + sources_toml)
    return Server("--config", str(toml), cache_dir=str(tmp_path / "cache"))


def test_the_federation_serves_a_peers_products(ours, peer, sources, tmp_path):
    srv = federating(
        tmp_path,
        f'[[plugin.datapoint.sources]]\nurl = "{peer.url}/stac"\nprefix = "peer."\n'
        f'[[plugin.datapoint.sources]]\nurl = "{ours.url}/stac"\nquery = ["source_id=MODEL-2"]\nformats = ["zarr"]\n',
    )
    try:
        listed = requests_json(f"{srv.url}/datasets")
        assert sorted(listed) == ["peer.demo", "peer.pr-classic", "tas-b"]
        for dataset, source in [("peer.pr-classic", "pr.nc"), ("tas-b", "tas_b.nc")]:
            expected = xr.open_dataset(sources / source)
            with xr.open_dataset(f"{srv.url}/datasets/{dataset}/zarr", engine="zarr") as got:
                assert_same(got, expected, [n for n in expected.variables if n != "time_bnds"])
        # A peer's products are datasets here like any other: STAC describes them.
        found = [i.id for i in pystac_client.Client.open(f"{srv.url}/stac").search().items()]
        assert sorted(found) == ["peer.demo", "peer.pr-classic", "tas-b"]
    finally:
        srv.stop()


def test_an_unreachable_peer_is_one_warning(tmp_path):
    srv = federating(tmp_path, '[[plugin.datapoint.sources]]\nurl = "http://127.0.0.1:9/stac"\n')
    try:
        assert requests_json(f"{srv.url}/datasets") == []
        warnings = [line for line in srv.log if "datapoint source http://127.0.0.1:9/stac not searched" in line]
        assert len(warnings) == 1, "".join(srv.log)
    finally:
        srv.stop()


def requests_json(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_a_parquet_reference_product_opens(sources, tmp_path):
    """kerchunk parquet reference sets are products too, when the catalogue says so."""
    toml = config(tmp_path / "cloudify.toml", {"tas-a": sources / "tas_a.nc"})
    toml.write_text(toml.read_text() + '[plugin.stac.assets.reference_parquet]\ncloud_format = "kerchunk"\n')
    srv = Server("--config", str(toml), cache_dir=str(tmp_path / "cache"))
    try:
        [item] = searched(f"{srv.url}/stac", "--id", "tas-a")
        parquet = next(p for p in item["products"] if p["asset"] == "reference_parquet")
        assert parquet["cloud_format"] == "kerchunk" and parquet["href"].endswith("/kerchunk.parq")
        out = tmp_path / "parquet.nc"
        datapoint("get", parquet["product"], "--var", "tas", "--time", "2002", "-o", out)
        expected = xr.open_dataset(sources / "tas_a.nc").sel(time=slice("2002", "2002"))
        with xr.open_dataset(out) as got:
            assert got.sizes["time"] == 12
            assert_same(got, expected, ["tas", "time", "lat", "lon"])
    finally:
        srv.stop()
