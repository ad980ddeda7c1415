"""/datasets/{id}/info agrees with what xarray reports for the same NetCDF file."""

import numpy as np
import pytest
import requests
import xarray as xr

from conftest import Server


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "cloudify.toml"
    config.write_text(f'[[folders]]\npath = "{files}"\n')
    srv = Server("--config", str(config), cache_dir=cache_dir)
    yield srv
    srv.stop()


def normalise(value):
    """An attribute as JSON carries it (numpy scalars and arrays become numbers and lists)."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
        return value[0] if len(value) == 1 else value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return "NaN"
    return value


NAMES = ["nc4_chunked", "nc4_contiguous", "nc4_packed", "nc4_sparse", "nc4_calendars",
         "nc3_classic", "nc3_64bit", "nc3_single_record", "cdf5"]


@pytest.mark.parametrize("name", NAMES)
def test_info_matches_xarray(served, files, name):
    info = requests.get(f"{served.url}/datasets/{name}/info", timeout=30).json()
    # Raw view: no CF decoding, so dtypes and attributes are the file's own.
    ds = xr.open_dataset(files / f"{name}.nc", decode_cf=False, mask_and_scale=False, decode_times=False)
    served_vars = set(info["variables"])
    assert served_vars == set(ds.variables)
    assert info["dimensions"] == dict(ds.sizes)
    for key, value in ds.attrs.items():
        assert info["global_attributes"][key] == normalise(value), key
    for var in served_vars:
        xv = ds[var]
        entry = info["variables"][var]
        assert entry["type"] == str(xv.dtype), var
        assert entry["dimensions"] == list(xv.dims), var
        expected = {k: normalise(v) for k, v in xv.attrs.items()}
        assert entry["attributes"] == expected, var
