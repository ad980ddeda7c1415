"""NetCDF4 sub-groups: each served as a dataset of its own (`{file}.{group}.{subgroup}`),
equal to what xarray opens with `group=` on the source file."""

import json

import pytest
import requests
import xarray as xr

from test_info import normalise
from test_zarr import assert_same_dataset, start

GROUPS = {"nc4_groups": None, "nc4_groups.forecast": "forecast", "nc4_groups.forecast.members": "forecast/members"}


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    srv = start(files, cache_dir, tmp_path_factory)
    yield srv
    srv.stop()


def source(files, group, **kwargs):
    """The group read whole by xarray, its handle closed (see test_strings.load)."""
    with xr.open_dataset(files / "nc4_groups.nc", group=group, cache=False, **kwargs) as ds:
        return ds.load()


def test_every_group_is_listed(served):
    listed = requests.get(f"{served.url}/datasets", timeout=30).json()
    assert set(GROUPS) <= set(listed)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("dataset", GROUPS)
def test_xarray_reads_each_group_like_the_source(served, files, dataset, fmt):
    got = xr.open_dataset(f"{served.url}/datasets/{dataset}/zarr", engine="zarr", zarr_format=fmt).load()
    assert_same_dataset(got, source(files, GROUPS[dataset]), dataset)


@pytest.mark.parametrize("dataset", GROUPS)
def test_info_of_each_group_matches_xarray(served, files, dataset):
    info = requests.get(f"{served.url}/datasets/{dataset}/info", timeout=30).json()
    raw = source(files, GROUPS[dataset], decode_cf=False)
    assert set(info["variables"]) == set(raw.variables)
    assert info["global_attributes"] == {k: normalise(v) for k, v in raw.attrs.items()}
    for var in raw.variables:
        assert info["variables"][var]["dimensions"] == list(raw[var].dims), var


def test_kerchunk_of_a_group_reads_the_stored_chunks(served, files):
    url = f"{served.url}/datasets/nc4_groups.forecast/kerchunk"
    got = xr.open_dataset(url, engine="zarr", zarr_format=2, consolidated=True).load()
    assert_same_dataset(got, source(files, "forecast"), "nc4_groups.forecast/kerchunk")
    # The group's chunks are the bytes Python kerchunk references in the file.
    theirs = json.loads((files / "nc4_groups.nc.kerchunk.json").read_text())["refs"]
    data = (files / "nc4_groups.nc").read_bytes()
    compared = 0
    for key, ref in theirs.items():
        if key.startswith("forecast/tas/") and isinstance(ref, list):
            _, offset, length = ref
            body = requests.get(f"{url}/{key.removeprefix('forecast/')}", timeout=30).content
            assert body == data[offset:offset + length], key
            compared += 1
    assert compared == 6
