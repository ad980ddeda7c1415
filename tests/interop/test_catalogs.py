"""The server's documents as real clients read them: the OpenAPI spec and intake catalogs."""

import intake
import requests
import yaml
from openapi_spec_validator import validate


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
