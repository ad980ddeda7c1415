"""Slow tiers (cloudify's tape access): a file behind a simulated HSM is read only once it is
online. A read of an offline file answers 503 with Retry-After at once and starts staging;
once staged, xarray reads the values netCDF4 reads."""

import json
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr
from conftest import Server

RETRY_AFTER = 120
# The simulated tape: a file is online while `{path}.online` exists; staging takes
# STAGE_SECS, counts its runs in `{path}.runs`, then marks the file online.
STAGE_SECS = 3
STAGE = 'echo run >> "$1.runs"; sleep "$2"; touch "$1.online"'


def write_field(path):
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", 6)
        ds.createDimension("lat", 10)
        ds.createDimension("lon", 12)
        ds.createVariable("time", "f8", ("time",))[:] = np.arange(6)
        ds["time"].units = "days since 2000-01-01"
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), chunksizes=(1, 5, 12), zlib=True, shuffle=True)
        tas[:] = np.random.default_rng(7).normal(280, 10, (6, 10, 12)).astype("f4")


def runs(file: Path) -> int:
    runs_file = Path(f"{file}.runs")
    return len(runs_file.read_text().splitlines()) if runs_file.exists() else 0


def wait_for(check, seconds):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.1)


@pytest.fixture
def tape(tmp_path):
    folder = tmp_path / "tape"
    folder.mkdir()
    file = folder / "field.nc"
    write_field(file)
    config = tmp_path / "cloudify.toml"
    config.write_text(f"""
[demo]
enabled = false

[[datasets]]
id = "field"
path = "{file}"

[[staging]]
prefix = "{folder}/"
online = ["test", "-e", "{{path}}.online"]
stage = ["sh", "-c", {json.dumps(STAGE)}, "stage", "{{path}}", "{STAGE_SECS}"]
retry_after_secs = {RETRY_AFTER}
online_secs = 1
""")
    return file, config


def released(file: Path):
    """The HSM releases the file; the server's last online answer expires."""
    Path(f"{file}.online").unlink()
    time.sleep(1.2)


def equal_to_source(url, file):
    served = xr.open_dataset(f"{url}/datasets/field/zarr", engine="zarr")
    with netCDF4.Dataset(file) as source:
        np.testing.assert_array_equal(served.tas.values, source["tas"][:])


def test_a_file_on_tape_is_opened_once_staged(tape):
    file, config = tape
    srv = Server("--config", str(config))
    try:
        # Not scanned yet (its scan would read the tape): 503 while its staging runs.
        reply = requests.get(f"{srv.url}/datasets/field/info", timeout=30)
        assert reply.status_code == 503 and reply.headers["retry-after"] == str(RETRY_AFTER)
        assert "staged" in reply.json()["error"]
        assert not Path(f"{file}.online").exists() and runs(file) == 1
        # Opened when the staging ends, without a restart or a reload.
        wait_for(lambda: requests.get(f"{srv.url}/datasets", timeout=30).json() == ["field"], STAGE_SECS + 10)
        equal_to_source(srv.url, file)
        assert runs(file) == 1
    finally:
        srv.stop()


def test_a_released_file_answers_503_at_once_then_its_bytes(tape):
    file, config = tape
    Path(f"{file}.online").touch()
    srv = Server("--config", str(config))
    try:
        assert requests.get(f"{srv.url}/datasets", timeout=30).json() == ["field"]
        released(file)
        # Metadata comes from the scan, not the tape.
        assert requests.get(f"{srv.url}/datasets/field/zarr/.zmetadata", timeout=30).status_code == 200
        for path in ["zarr/tas/0.0.0", "zarr/tas/1.0.0", "kerchunk/tas/2.1.0", "files/field.nc"]:
            reply = requests.get(f"{srv.url}/datasets/field/{path}", timeout=30)
            assert reply.status_code == 503, (path, reply.status_code, reply.text)
            assert reply.headers["retry-after"] == str(RETRY_AFTER), path
            error = reply.json()["error"]
            assert "staged" in error and str(file.parent) not in error
        # Answered while the staging still ran (it takes STAGE_SECS): no request waited.
        assert not Path(f"{file}.online").exists()
        assert runs(file) == 1, "one staging for all reads of the file"
        wait_for(lambda: Path(f"{file}.online").exists(), STAGE_SECS + 10)
        assert requests.get(f"{srv.url}/datasets/field/zarr/tas/0.0.0", timeout=30).status_code == 200
        equal_to_source(srv.url, file)
        assert runs(file) == 1
    finally:
        srv.stop()


def test_a_dataset_is_ordered_ahead_of_reading(tape):
    file, config = tape
    Path(f"{file}.online").touch()
    srv = Server("--config", str(config))
    try:
        status = lambda: requests.get(f"{srv.url}/datasets/field/staging", timeout=30)  # noqa: E731
        reply = status()
        assert reply.status_code == 200 and reply.json()["files"] == 1
        released(file)
        # Nothing asked since: GET runs no command and says so.
        assert status().json()["unknown"] == 1
        ordered = requests.post(f"{srv.url}/datasets/field/staging", timeout=30)
        assert ordered.status_code == 202, ordered.text
        assert ordered.json()["staging"] == 1 and ordered.headers["retry-after"] == str(RETRY_AFTER)
        assert status().json()["staging"] == 1
        # Ordering again while it runs starts nothing more.
        assert requests.post(f"{srv.url}/datasets/field/staging", timeout=30).status_code == 202
        wait_for(lambda: status().json()["online"] == 1, STAGE_SECS + 10)
        assert "retry-after" not in status().headers
        equal_to_source(srv.url, file)
        assert runs(file) == 1
        unknown = requests.post(f"{srv.url}/datasets/nowhere/staging", timeout=30)
        assert unknown.status_code == 404
    finally:
        srv.stop()
