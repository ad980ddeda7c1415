"""The server's documents as real clients read them: the OpenAPI spec and intake catalogs."""

import intake
import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr
import yaml
from openapi_spec_validator import validate

from conftest import Server


def test_openapi_document_is_a_valid_openapi_31_spec(server):
    spec = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    validate(spec)  # raises on any violation
    assert spec["openapi"].startswith("3.1")
    assert "/intake.yaml" in spec["paths"]
    assert spec["paths"]["/datasets/{id}/catalog.yaml"]["get"]["tags"] == ["intake"]


def test_intake_opens_the_root_catalog(server):
    cat = intake.open_catalog(f"{server.url}/intake.yaml")
    assert list(cat) == requests.get(f"{server.url}/datasets", timeout=30).json()
    doc = yaml.safe_load(requests.get(f"{server.url}/intake.yaml", timeout=30).text)
    demo = doc["sources"]["demo"]
    assert demo["driver"] == "zarr"
    assert demo["args"]["urlpath"] == f"{server.url}/datasets/demo/{{{{ method }}}}"
    assert demo["parameters"]["method"] == {
        "allowed": ["zarr", "kerchunk"],
        "default": "zarr",
        "type": "str",
        "description": "server-side loading method",
    }


def test_per_dataset_catalog_points_at_both_endpoints(server):
    doc = yaml.safe_load(requests.get(f"{server.url}/datasets/demo/catalog.yaml", timeout=30).text)
    assert doc["name"] == "demo"
    sources = doc["sources"]
    assert sources["demo-zarr"]["args"]["urlpath"] == f"{server.url}/datasets/demo/zarr"
    assert sources["demo-kerchunk"]["args"]["urlpath"] == f"{server.url}/datasets/demo/kerchunk"
    assert sources["demo-zarr"]["args"]["consolidated"] is True


@pytest.fixture(scope="module")
def folder_server(files, cache_dir, tmp_path_factory):
    config = tmp_path_factory.mktemp("intake") / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[[folders]]\npath = "{files}"\n')
    srv = Server("--config", str(config), cache_dir=cache_dir)
    yield srv
    srv.stop()


@pytest.mark.parametrize("name", ["nc4_chunked", "nc4_packed", "nc3_classic"])
def test_intake_xarray_loads_both_methods_alike(folder_server, files, name):
    """intake + intake-xarray's zarr driver on /intake.yaml, once per `method`."""
    cat = intake.open_catalog(f"{folder_server.url}/intake.yaml")
    by_zarr = getattr(cat, name)(method="zarr").to_dask()
    by_kerchunk = getattr(cat, name)(method="kerchunk").to_dask()
    xr.testing.assert_identical(by_zarr.load(), by_kerchunk.load())
    with netCDF4.Dataset(files / f"{name}.nc") as nc:
        for var in by_zarr.data_vars:
            if by_zarr[var].dtype.kind in "SUO":
                continue
            expected = np.ma.filled(nc[var][...].astype("f8"), np.nan)
            np.testing.assert_allclose(by_zarr[var].values.astype("f8"), expected, rtol=1e-6, equal_nan=True, err_msg=var)

