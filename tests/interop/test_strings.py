"""Variable-length strings (NetCDF4 `string`) with real clients: /info, /zarr v2 (`|O` with
the vlen-utf8 filter) and v3 (`string`), kerchunk's reference set, Python kerchunk's own set
and an xarray-written Zarr store served as datasets; values compared with netCDF4-python and
with what xarray reads from the source file.
"""

import base64
import json

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr
import zarr

from test_kerchunk import reference_options
from test_zarr import start

STRINGS = ["station_name", "flag", "label", "sparse", "nofill"]


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    # xarray writes the strings it reads from NetCDF as fixed-length unicode (`<U`), and
    # object arrays as variable-length strings.
    unicode = load(files, mask_and_scale=False)
    objects = unicode.assign({var: unicode[var].astype(object) for var in STRINGS})
    del objects["sparse"].attrs["_FillValue"]  # xarray writes no string _FillValue of objects
    stores = {"unicode": unicode, "strings": objects}
    extra = ""
    for kind, dataset in stores.items():
        for fmt in (2, 3):
            name = f"{kind}_v{fmt}"
            dataset.to_zarr(files / f"{name}.zarr", zarr_format=fmt, consolidated=True, mode="w")
            extra += f'\n[[datasets]]\nid = "{name}"\npath = "{files}/{name}.zarr"\n'

    extra += f'\n[[datasets]]\nid = "strings_refs"\npath = "{files}/nc4_strings.nc.kerchunk.json"\n'
    srv = start(files, cache_dir, tmp_path_factory, extra)
    yield srv
    srv.stop()


def load(files, **kwargs):
    """The source file read whole by xarray, its handle closed: libhdf5 crashes when a second
    handle of a file whose string variables have fill values closes while the first reads."""
    with xr.open_dataset(files / "nc4_strings.nc", cache=False, **kwargs) as ds:
        return ds.load()


def netcdf4_strings(files, var):
    """What netCDF4-python reads, unmasked, as a list in C order."""
    with netCDF4.Dataset(files / "nc4_strings.nc") as nc:
        nc.set_auto_mask(False)
        return np.asarray(nc[var][...], dtype=object).ravel().tolist()


def netcdf4_shape(files, var):
    with netCDF4.Dataset(files / "nc4_strings.nc") as nc:
        return nc[var].shape


def as_list(values):
    """Strings of any numpy kind (object, <U, StringDType) as a list; NaN (masked) as None."""
    return [None if isinstance(v, float) and np.isnan(v) else str(v) for v in np.asarray(values, dtype=object).ravel()]


def test_info_shows_strings_as_xarray_does(served, files):
    info = requests.get(f"{served.url}/datasets/nc4_strings/info", timeout=30).json()
    # xarray shows text as numpy unicode (`<U20`, its width the longest string, known only
    # once read) or as objects; /info names the type without reading data: "object".
    with xr.open_dataset(files / "nc4_strings.nc", decode_cf=False, cache=False) as raw:
        for var in STRINGS:
            assert info["variables"][var]["type"] == "object" and raw[var].dtype.kind in "OU", var
            assert info["variables"][var]["dimensions"] == list(raw[var].dims), var
    assert info["variables"]["sparse"]["attributes"] == {"_FillValue": "missing"}


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("chunks", [None, {}], ids=["numpy", "dask"])
def test_xarray_reads_the_strings(served, files, fmt, chunks):
    got = xr.open_dataset(f"{served.url}/datasets/nc4_strings/zarr", engine="zarr", zarr_format=fmt, chunks=chunks).load()
    source = load(files)
    assert set(got.variables) == set(source.variables)
    for var in STRINGS:
        assert got[var].dims == source[var].dims, var
        if fmt == 3 and var == "sparse":
            # xarray cannot read a string _FillValue from Zarr v3 (nor write one it can read
            # back): the fill is Zarr's fill_value there, and the values come unmasked.
            assert as_list(got[var].values) == netcdf4_strings(files, var)
            assert got[var].encoding["fill_value"] == "missing"
            continue
        assert as_list(got[var].values) == as_list(source[var].values), (fmt, var)
    assert as_list(got["sparse"].values)[1] == "one"
    np.testing.assert_array_equal(got["temp"].values, source["temp"].values)


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr_python_reads_raw_strings_like_netcdf4(served, files, fmt):
    group = zarr.open_group(f"{served.url}/datasets/nc4_strings/zarr", mode="r", zarr_format=fmt)
    for var in STRINGS:
        array = group[var]
        assert array.shape == netcdf4_shape(files, var), var
        assert as_list(array[...]) == netcdf4_strings(files, var), (fmt, var)
    # Edge chunks hold the full chunk shape, padded with the fill value (2 x 2 of a 5 x 3 array).
    assert group["flag"].chunks == (2, 2)
    meta = requests.get(f"{served.url}/datasets/nc4_strings/zarr/.zmetadata", timeout=30).json()["metadata"]
    assert meta["flag/.zarray"]["dtype"] == "|O" and meta["flag/.zarray"]["filters"] == [{"id": "vlen-utf8"}]
    assert meta["sparse/.zarray"]["fill_value"] == "missing"


@pytest.mark.parametrize("fmt", [2, 3])
def test_kerchunk_store_serves_strings_encoded_like_the_reference_set(served, files, fmt):
    """Strings have no stored bytes: /kerchunk serves them encoded with the declared
    vlen-utf8 chain, so the whole store opens, as the reference set (which inlines them) does."""
    got = xr.open_dataset(f"{served.url}/datasets/nc4_strings/kerchunk", engine="zarr", zarr_format=fmt)
    source = load(files)
    for var in STRINGS:
        # As from /zarr: a v3 client reads `sparse` unmasked (no string _FillValue in v3).
        expected = netcdf4_strings(files, var) if (fmt, var) == (3, "sparse") else as_list(source[var].values)
        assert as_list(got[var].values) == expected, (fmt, var)
    url = f"{served.url}/datasets/nc4_strings/kerchunk.json"
    refs = requests.get(url, timeout=30).json()["refs"]
    chunk = requests.get(f"{served.url}/datasets/nc4_strings/kerchunk/flag/0.0", timeout=30)
    inline = refs["flag/0.0"]
    inline = base64.b64decode(inline[len("base64:"):]) if inline.startswith("base64:") else inline.encode()
    assert chunk.status_code == 200 and chunk.content == inline


def test_the_reference_set_inlines_strings(served, files):
    url = f"{served.url}/datasets/nc4_strings/kerchunk.json"
    refs = requests.get(url, timeout=30).json()["refs"]
    assert json.loads(refs["flag/.zarray"])["filters"] == [{"id": "vlen-utf8"}]
    source = load(files)
    for got in (
        xr.open_dataset(url, engine="kerchunk"),
        xr.open_dataset("reference://", engine="zarr",
                        backend_kwargs={"consolidated": False, "storage_options": reference_options(url)}),
    ):
        for var in STRINGS:
            assert as_list(got[var].values) == as_list(source[var].values), var


@pytest.mark.parametrize("dataset", ["strings_refs", "strings_v2", "strings_v3", "unicode_v3"])
def test_strings_of_reference_sets_and_zarr_stores_are_served(served, files, dataset):
    """Python kerchunk's set (`|O`, vlen-utf8 chunks inline) and xarray's own Zarr stores,
    variable-length and fixed-length unicode (served as strings)."""
    for fmt in (2, 3):
        got = xr.open_dataset(f"{served.url}/datasets/{dataset}/zarr", engine="zarr", zarr_format=fmt,
                              mask_and_scale=False).load()
        for var in STRINGS:
            expected = netcdf4_strings(files, var)
            if dataset == "strings_refs" and var == "label":
                expected = [""]  # kerchunk leaves the chunk of a scalar string out: its fill value
            assert as_list(got[var].values) == expected, (dataset, fmt, var)


def test_an_array_zarrs_cannot_open_leaves_the_others_served(served, files):
    """xarray writes v2 `<U` text with a null fill value, which zarrs refuses: those arrays
    are left out with a warning and the rest of the store is served."""
    got = xr.open_dataset(f"{served.url}/datasets/unicode_v2/zarr", engine="zarr", zarr_format=2, mask_and_scale=False)
    # `sparse` has a fill value ("missing") and opens; the other text arrays do not.
    assert set(got.variables) == {"temp", "sparse"}
    assert as_list(got["sparse"].values) == netcdf4_strings(files, "sparse")
    assert any("array not served" in line and "flag" in line for line in served.log)


def test_stac_item_of_a_dataset_with_strings(served):
    """STAC reads no text for extents; the item lists the data variables, strings included."""
    item = requests.get(f"{served.url}/datasets/nc4_strings/stac", timeout=30)
    assert item.status_code == 200 and {"temp", "flag"} <= set(item.json()["properties"]["variables"])
    assert requests.get(f"{served.url}/datasets/nc4_strings/zarr/flag/2.1", timeout=30).status_code == 200
