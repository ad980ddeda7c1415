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
