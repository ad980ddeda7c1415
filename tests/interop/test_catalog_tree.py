"""`[[catalogs]]`: an intake catalog tree as the dataset list, as DKRZ's EERIE service is
configured. A v1 tree (a nested catalog, a parameterised entry over kerchunk JSON references,
parquet references, a Zarr store, an entry kind not served) and a v2 catalog (catalog-level
options) are served under their dotted paths, one dataset per parameter value, each equal to
what intake reads from the same catalog."""

import functools
import http.server
import threading
import time
import warnings

import intake
import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr

from conftest import RangeFiles, Server


def write_netcdf(path, offset):
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 6)
        ds.createDimension("lat", 20)
        ds.createDimension("lon", 40)
        time = ds.createVariable("time", "f8", ("time",))
        time.units, time.calendar = "days since 2000-01-01", "proleptic_gregorian"
        time[:] = np.arange(6) * 30
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-85, 85, 20)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.arange(40) * 9.0
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, chunksizes=(1, 20, 40))
        tas.units = "K"
        tas[:] = offset + np.random.default_rng(int(offset)).random((6, 20, 40), dtype="f4")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The catalog tree and the data it names: NetCDF files in `nc/`, their kerchunk
    references in `refs/` (JSON, parquet), a Zarr store."""
    from kerchunk.df import refs_to_dataframe
    from kerchunk.hdf import SingleHdf5ToZarr

    root = tmp_path_factory.mktemp("tree")
    for folder in ["nc", "refs", "model"]:
        (root / folder).mkdir()
    for name, offset in [("atmos_mon", 250.0), ("atmos_day", 260.0), ("ocean", 270.0)]:
        path = root / "nc" / f"{name}.nc"
        write_netcdf(path, offset)
        with open(path, "rb") as f:
            refs = SingleHdf5ToZarr(f, str(path), inline_threshold=0).translate()
        if name == "ocean":
            refs_to_dataframe(refs, str(root / "refs" / "ocean.parq"))
        else:
            import json

            (root / "refs" / f"{name}.json").write_text(json.dumps(refs))
    xr.open_dataset(root / "nc" / "ocean.nc").to_zarr(root / "store.zarr", mode="w", zarr_format=2, consolidated=True)
    (root / "main.yaml").write_text("""
sources:
  model:
    driver: yaml_file_cat
    args: {path: '{{CATALOG_DIR}}/model/main.yaml'}
  notes:
    driver: csv
    args: {urlpath: notes.csv}
""")
    (root / "model" / "main.yaml").write_text("""
sources:
  atmos:
    driver: zarr
    parameters:
      freq: {description: output frequency, type: str, default: mon, allowed: [mon, day]}
    args:
      urlpath: 'reference://'
      consolidated: false
      storage_options: {fo: '{{ CATALOG_DIR }}/../refs/atmos_{{ freq }}.json', remote_protocol: file}
  ocean:
    driver: zarr
    args:
      urlpath: 'reference://'
      consolidated: false
      storage_options: {fo: '{{CATALOG_DIR}}/../refs/ocean.parq', remote_protocol: file, lazy: true}
  store:
    driver: zarr
    args: {urlpath: '{{CATALOG_DIR}}/../store.zarr'}
""")
    (root / "v2.yaml").write_text(f"""
version: 2
aliases: {{}}
metadata: {{}}
user_parameters:
  freq:
    cls: intake.readers.user_parameters:OptionsUserParameter
    default: mon
    options: [mon, day]
    dtype: str
    description: output frequency
data:
  refs:
    datatype: intake.readers.datatypes:HDF5
    kwargs: {{url: '{root}/refs/atmos_{{freq}}.json', storage_options: null}}
    metadata: {{}}
    user_parameters: {{}}
entries:
  atmos:
    reader: intake.readers.readers:XArrayDatasetReader
    output_instance: xarray:Dataset
    kwargs: {{args: ['{{data(refs)}}'], engine: kerchunk}}
    metadata: {{}}
    user_parameters: {{}}
""")
    return root


@pytest.fixture(scope="module")
def served(tree, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "cloudify.toml"
    config.write_text(f"""
[demo]
enabled = false
[[catalogs]]
path = "{tree / 'main.yaml'}"
allow_targets = ["{tree / 'nc'}"]
[[catalogs]]
path = "{tree / 'v2.yaml'}"
prefix = "v2."
allow_targets = ["{tree / 'nc'}"]
[[catalogs]]
path = "{tree / 'main.yaml'}"
prefix = "only."
include = ["*.atmos.*"]
exclude = ["*.day"]
allow_targets = ["{tree / 'nc'}"]
""")
    srv = Server("--config", str(config))
    yield srv
    srv.stop()


def zarr_of(srv, dataset):
    return xr.open_dataset(f"{srv.url}/datasets/{dataset}/zarr", engine="zarr", consolidated=True).load()


def assert_same(got, want):
    for name, var in want.variables.items():
        np.testing.assert_array_equal(got[name].values, var.values, err_msg=name)
        assert got[name].dims == var.dims, name


def test_every_entry_is_a_dataset_named_by_its_path(served):
    ids = requests.get(f"{served.url}/datasets", timeout=30).json()
    assert sorted(ids) == sorted([
        "model.atmos.mon", "model.atmos.day", "model.ocean", "model.store",
        "v2.atmos.mon", "v2.atmos.day", "only.model.atmos.mon",
    ])
    deadline = time.monotonic() + 10
    while not any("notes" in line and '"csv"' in line for line in list(served.log)):
        assert time.monotonic() < deadline, "the entry kind not served is named in a warning"
        time.sleep(0.05)


def test_v1_entries_equal_what_intake_reads(served, tree):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = intake.open_catalog(str(tree / "main.yaml"))
        for entry in ["atmos", "ocean", "store"]:
            want = getattr(cat.model, entry).to_dask().load()
            dataset = "model.atmos.mon" if entry == "atmos" else f"model.{entry}"
            assert_same(zarr_of(served, dataset), want)
    # intake 2's v1 loader ignores a non-default parameter value: the entry's URL with it.
    assert_same(zarr_of(served, "model.atmos.day"), xr.open_dataset(tree / "nc" / "atmos_day.nc").load())
    # The kerchunk references are served from the files' stored chunks.
    refs = requests.get(f"{served.url}/datasets/model.atmos.day/kerchunk.json", timeout=30).json()["refs"]
    assert any(isinstance(r, list) and r[0].endswith("atmos_day.nc") for r in refs.values())


@pytest.mark.parametrize("freq", ["mon", "day"])
def test_v2_options_equal_what_intake_reads(served, tree, freq):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = intake.open_catalog(str(tree / "v2.yaml"))
        cat.user_parameters["freq"] = cat.user_parameters["freq"].with_default(freq)
        want = cat["atmos"].read().load()
    assert_same(zarr_of(served, f"v2.atmos.{freq}"), want)


@pytest.fixture(scope="module")
def served_over_http(tree, tmp_path_factory):
    """The same v1 tree read from an HTTP server: what it names is at URLs too."""
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeFiles, directory=str(tree)))
    threading.Thread(target=web.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{web.server_address[1]}"
    (tree / "remote.yaml").write_text(f"""
sources:
  model:
    driver: yaml_file_cat
    args: {{path: '{{{{CATALOG_DIR}}}}/model/main.yaml'}}
  local:
    driver: netcdf
    args: {{urlpath: '{tree / "nc" / "ocean.nc"}'}}
""")
    config = tmp_path_factory.mktemp("config-http") / "cloudify.toml"
    config.write_text(f"""
[demo]
enabled = false
[[catalogs]]
path = "{base}/remote.yaml"
prefix = "web."
allow_targets = ["{tree / 'nc'}"]
""")
    srv = Server("--config", str(config))
    yield srv, base
    srv.stop()
    web.shutdown()


def test_a_catalog_at_a_url_names_urls(served_over_http, tree):
    srv, base = served_over_http
    ids = requests.get(f"{srv.url}/datasets", timeout=30).json()
    assert sorted(ids) == ["web.model.atmos.day", "web.model.atmos.mon", "web.model.ocean", "web.model.store"]
    # A catalog at a URL does not get to name local files.
    deadline = time.monotonic() + 10
    while not any("no local file" in line and "ocean.nc" in line for line in list(srv.log)):
        assert time.monotonic() < deadline, "".join(srv.log)
        time.sleep(0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cat = intake.open_catalog(str(tree / "main.yaml"))
        for entry in ["atmos", "ocean", "store"]:
            want = getattr(cat.model, entry).to_dask().load()
            dataset = "web.model.atmos.mon" if entry == "atmos" else f"web.model.{entry}"
            assert_same(zarr_of(srv, dataset), want)
    # The reference sets were read from the HTTP server, their targets from the allowed folder.
    refs = requests.get(f"{srv.url}/datasets/web.model.atmos.day/kerchunk.json", timeout=30).json()["refs"]
    assert any(isinstance(r, list) and r[0].endswith("atmos_day.nc") for r in refs.values())
