"""What operators read: /metrics (parsed by the Prometheus client's text parser) and the
JSON access log."""

import json
import time

import pytest
import requests
from conftest import Server
from prometheus_client.parser import text_string_to_metric_families


def scrape(url):
    """{(sample name, frozen labels): value} of one scrape."""
    text = requests.get(f"{url}/metrics", timeout=30).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    srv = Server(env={"CLOUDIFY_SERVER__ACCESS_LOG": "true", "CLOUDIFY_SERVER__LOG_FORMAT": "json"})
    yield srv
    srv.stop()


def test_counters_move_as_requests_are_made(observed):
    url = observed.url
    route = {"route": "/datasets/{id}/zarr/{*key}", "plugin": "zarr"}
    before = scrape(url)
    chunks = [requests.get(f"{url}/datasets/demo/zarr/tas/{t}.0.0", timeout=30) for t in range(3)]
    assert requests.get(f"{url}/datasets/demo/zarr/tas/99.0.0", timeout=30).status_code == 404
    after = scrape(url)
    grew = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert grew("cloudify_http_requests_total", status="200", **route) == 3
    assert grew("cloudify_http_requests_total", status="404", **route) == 1
    assert grew("cloudify_http_request_duration_seconds_count", **route) == 4
    sent = sum(len(c.content) for c in chunks)
    # The 404's JSON body counts as bytes sent too.
    assert sent < grew("cloudify_http_response_bytes_total", **route) < sent + 1000
    assert grew("cloudify_dataset_requests_total", dataset="demo") == 3
    assert grew("cloudify_dataset_response_bytes_total", dataset="demo") == sent
    assert grew("cloudify_decoded_cache_requests_total", result="miss") + \
        grew("cloudify_decoded_cache_requests_total", result="hit") >= 3
    # The zarr plugin's own cache, appended from /metrics/zarr: each new chunk a miss, a
    # repeated one a hit.
    assert grew("cloudify_zarr_encoded_cache_requests_total", result="miss") == 3
    assert requests.get(f"{url}/datasets/demo/zarr/tas/0.0.0", timeout=30).content == chunks[0].content
    assert value(scrape(url), "cloudify_zarr_encoded_cache_requests_total", result="hit") == \
        value(after, "cloudify_zarr_encoded_cache_requests_total", result="hit") + 1
    assert ("cloudify_kerchunk_stored_cache_requests_total", frozenset({("result", "miss")})) in after
    assert value(after, "cloudify_datasets") == 1
    assert value(after, "cloudify_plugins") >= 8
    # An unknown dataset gets no label of its own.
    requests.get(f"{url}/datasets/made-up/zarr/.zmetadata", timeout=30)
    assert not any(("dataset", "made-up") in labels for _, labels in scrape(url))


def test_the_access_log_is_one_json_line_per_answer(observed):
    reply = requests.get(f"{observed.url}/datasets/demo/info", headers={"X-Request-Id": "probe-7"}, timeout=30)
    assert reply.status_code == 200
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in observed.log if line.startswith("{") and "probe-7" in line]
        access = [line for line in lines if line.get("target") == "cloudify::access"]
        if access:
            break
        time.sleep(0.1)
    (entry,) = access
    fields = entry["fields"]
    assert fields["request_id"] == "probe-7" and fields["route"] == "/datasets/{id}/info"
    assert fields["dataset"] == "demo" and fields["status"] == 200 and fields["bytes"] == len(reply.content)
    assert fields["duration_ms"] >= 0


def write_field(path, value, steps=4):
    import netCDF4
    import numpy as np

    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", steps)
        ds.createDimension("x", 8)
        ds.createVariable("time", "f8", ("time",))[:] = np.arange(steps)
        var = ds.createVariable("v", "f4", ("time", "x"), chunksizes=(1, 8))
        var[:] = np.full((steps, 8), value, dtype="f4")


def wait_for(check, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)
    return time.monotonic() - (deadline - seconds)


def served_values(url, dataset):
    import xarray as xr

    return xr.open_dataset(f"{url}/datasets/{dataset}/zarr", engine="zarr").v.values


def test_a_watched_folder_is_followed_within_seconds(tmp_path):
    folder = tmp_path / "watched"
    folder.mkdir()
    write_field(folder / "first.nc", 1.0)
    config = tmp_path / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[[folders]]\npath = "{folder}"\nwatch = true\n')
    srv = Server("--config", str(config))
    try:
        ids = lambda: requests.get(f"{srv.url}/datasets", timeout=30).json()  # noqa: E731
        assert ids() == ["first"]
        # A file dropped in is served within 5 s, with its values.
        write_field(tmp_path / "second.nc", 2.0)
        (tmp_path / "second.nc").rename(folder / "second.nc")
        wait_for(lambda: "second" in ids())
        assert (served_values(srv.url, "second") == 2.0).all()
        # A changed file is scanned again: new values, a new ETag.
        etag = requests.get(f"{srv.url}/datasets/first/zarr/.zmetadata", timeout=30).headers["etag"]
        write_field(tmp_path / "first.nc", 3.0, steps=6)
        (tmp_path / "first.nc").rename(folder / "first.nc")
        wait_for(lambda: requests.get(f"{srv.url}/datasets/first/zarr/.zmetadata", timeout=30).headers["etag"] != etag)
        values = served_values(srv.url, "first")
        assert values.shape == (6, 8) and (values == 3.0).all()
        # A deleted file is dropped.
        (folder / "second.nc").unlink()
        wait_for(lambda: "second" not in ids())
        assert requests.get(f"{srv.url}/datasets/second/info", timeout=30).status_code == 404
    finally:
        srv.stop()


def test_sighup_applies_a_changed_config_while_requests_run(tmp_path):
    import os
    import signal
    import threading

    write_field(tmp_path / "a.nc", 1.0)
    write_field(tmp_path / "b.nc", 2.0)
    config = tmp_path / "cloudify.toml"
    entry = lambda name: f'[[datasets]]\nid = "{name}"\npath = "{tmp_path}/{name}.nc"\n\n'  # noqa: E731
    config.write_text("[demo]\nenabled = false\n\n" + entry("a"))
    srv = Server("--config", str(config))
    failures, answered, stop = [], [], threading.Event()

    def loop():
        session = requests.Session()
        n = 0
        while not stop.is_set():
            reply = session.get(f"{srv.url}/datasets/a/zarr/v/{n % 4}.0", timeout=30)
            if reply.status_code != 200:
                failures.append(reply.status_code)
            answered.append(n)
            n += 1

    threads = [threading.Thread(target=loop) for _ in range(3)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        config.write_text("[demo]\nenabled = false\n\n" + entry("a") + entry("b"))
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(lambda: "b" in requests.get(f"{srv.url}/datasets", timeout=30).json())
        assert (served_values(srv.url, "b") == 2.0).all()
        # And back: b is dropped, a keeps answering.
        config.write_text("[demo]\nenabled = false\n\n" + entry("a"))
        os.kill(srv.proc.pid, signal.SIGHUP)
        wait_for(lambda: "b" not in requests.get(f"{srv.url}/datasets", timeout=30).json())
        # A broken file is refused; the running configuration stays.
        config.write_text("[[datasets]\nbroken")
        os.kill(srv.proc.pid, signal.SIGHUP)
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(30)
        assert srv.proc.poll() is None
        assert not failures and len(answered) > 100, (failures[:5], len(answered))
        assert requests.get(f"{srv.url}/datasets", timeout=30).json() == ["a"]
        assert any("reload refused" in line for line in srv.log)
    finally:
        stop.set()
        srv.stop()


def test_the_first_entry_of_an_id_keeps_it_across_reloads(tmp_path):
    import os
    import signal

    folder = tmp_path / "folder"
    folder.mkdir()
    write_field(tmp_path / "a.nc", 1.0)
    write_field(folder / "a.nc", 5.0)
    config = tmp_path / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[[datasets]]\nid = "a"\npath = "{tmp_path}/a.nc"\n\n'
                      f'[[folders]]\npath = "{folder}"\n')
    srv = Server("--config", str(config))
    try:
        assert (served_values(srv.url, "a") == 1.0).all()
        assert any("dataset id already taken" in line for line in srv.log)
        for _ in range(2):
            os.kill(srv.proc.pid, signal.SIGHUP)
            wait_for(lambda: sum("configuration reloaded" in line for line in srv.log) >= 1)
            time.sleep(1.2)  # past the store plugins' metadata check
            assert (served_values(srv.url, "a") == 1.0).all()
    finally:
        srv.stop()
