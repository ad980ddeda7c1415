"""Scale-out on loopback: data in an S3-compatible store (moto), three server replicas behind
nginx with deploy/nginx's configuration. xarray through nginx reads what the source holds; a
replica killed in the middle of a read loop and started again costs no request and no byte;
nginx's cache answers repeated chunks."""

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import boto3
import netCDF4
import numpy as np
import pytest
import requests
import xarray as xr
from conftest import REPO, Server, _binary

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1",
               "AWS_ALLOW_HTTP": "true"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_config(folder: Path, listen: int, replicas: list[int], rate: str = "200r/s") -> Path:
    """nginx.conf in `folder` around deploy/nginx/cloudify.conf, with this machine's port,
    replicas, cache folder and per-client rate put in (the lines a deployment changes)."""
    site = (REPO / "deploy/nginx/cloudify.conf").read_text()
    assert "rate=200r/s" in site
    site = site.replace("/var/cache/nginx/cloudify", str(folder / "cache")).replace("listen 80;", f"listen 127.0.0.1:{listen};")
    site = site.replace("rate=200r/s", f"rate={rate}")
    (folder / "cloudify.conf").write_text(site)
    (folder / "cloudify-upstreams.conf").write_text(
        "".join(f"server 127.0.0.1:{port} max_fails=1 fail_timeout=2s;\n" for port in replicas))
    for sub in ["cache", "tmp", "logs"]:
        (folder / sub).mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(f"""
daemon off;
user root root;
worker_processes 2;
pid {folder}/nginx.pid;
error_log {folder}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {folder}/logs/access.log;
    client_body_temp_path {folder}/tmp/body;
    proxy_temp_path {folder}/tmp/proxy;
    fastcgi_temp_path {folder}/tmp/fastcgi;
    uwsgi_temp_path {folder}/tmp/uwsgi;
    scgi_temp_path {folder}/tmp/scgi;
    include {folder}/cloudify.conf;
}}
""")
    return conf


def write_source(path):
    with netCDF4.Dataset(path, "w") as ds:
        ds.title = "scale-out test"
        for dim, size in [("time", 24), ("lat", 30), ("lon", 40)]:
            ds.createDimension(dim, size)
        time_ = ds.createVariable("time", "f8", ("time",))
        time_.units, time_.calendar = "days since 2000-01-01", "standard"
        time_[:] = np.arange(24)
        ds.createVariable("lat", "f8", ("lat",))[:] = np.linspace(-87, 87, 30)
        ds.createVariable("lon", "f8", ("lon",))[:] = np.linspace(0, 351, 40)
        tas = ds.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True, chunksizes=(1, 30, 40))
        tas.units = "K"
        tas[:] = np.random.default_rng(7).normal(280, 10, (24, 30, 40)).astype("f4")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from moto.server import ThreadedMotoServer

    folder = tmp_path_factory.mktemp("scale")
    source = folder / "tas.nc"
    write_source(source)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    moto.start()
    endpoint = f"http://127.0.0.1:{moto._server.server_port}"
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                      aws_secret_access_key="testing")
    s3.create_bucket(Bucket="climate")
    # A Zarr store and a kerchunk reference set whose targets are S3 objects.
    xr.open_dataset(source).to_zarr(folder / "tas.zarr", zarr_format=2, consolidated=True,
                                    encoding={"tas": {"chunks": (1, 30, 40)}})
    for path in (folder / "tas.zarr").rglob("*"):
        if path.is_file():
            s3.upload_file(str(path), "climate", f"tas.zarr/{path.relative_to(folder / 'tas.zarr')}")
    s3.upload_file(str(source), "climate", "tas.nc")
    refs = folder / "refs.json"
    subprocess.run([str(_binary()), "refs", "scan", str(source), "-o", str(refs)], check=True, timeout=60)
    refs.write_text(refs.read_text().replace(str(source), "s3://climate/tas.nc"))
    config = folder / "cloudify.toml"
    config.write_text(f"""[demo]
enabled = false

[[datasets]]
id = "store"
path = "s3://climate/tas.zarr"

[[datasets]]
id = "refs"
path = "{refs}"
allow_targets = ["s3://climate/"]
""")
    ports = [free_port() for _ in range(3)]
    # SCALE_OUT_IMAGE=cloudify:dev runs the replicas from deploy/Dockerfile's image.
    image = os.environ.get("SCALE_OUT_IMAGE")
    start = lambda port: Server("--config", str(config), env=env, bind=f"127.0.0.1:{port}",  # noqa: E731
                                cache_dir=str(folder / f"cache-{port}"), image=image, mounts=(str(folder),))
    replicas = [start(port) for port in ports]
    listen = free_port()
    (folder / "nginx").mkdir()
    # The test's one client asks as fast as four threads can: no per-client limit.
    conf = nginx_config(folder / "nginx", listen, ports, rate="1000000r/s")
    nginx = subprocess.Popen(["nginx", "-p", str(folder / "nginx"), "-c", str(conf)], stderr=subprocess.PIPE)
    proxy = f"http://127.0.0.1:{listen}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if requests.get(f"{proxy}/ready", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "nginx did not start"
        time.sleep(0.1)
    yield {"proxy": proxy, "replicas": replicas, "ports": ports, "start": start, "source": source}
    os.kill(nginx.pid, signal.SIGTERM)
    nginx.wait(20)
    for replica in replicas:
        replica.stop()
    moto.stop()


@pytest.mark.parametrize("dataset", ["store", "refs"])
def test_xarray_through_nginx_reads_the_source(cluster, dataset):
    got = xr.open_dataset(f"{cluster['proxy']}/datasets/{dataset}/zarr", engine="zarr").load()
    with netCDF4.Dataset(cluster["source"]) as source:
        np.testing.assert_array_equal(got.tas.values, source["tas"][:])
        np.testing.assert_array_equal(got.lat.values, source["lat"][:])


def test_a_replica_killed_mid_loop_loses_no_request_and_no_byte(cluster):
    proxy, replicas = cluster["proxy"], cluster["replicas"]
    # Encoded chunks vary by nothing but the key: what replica 0 sends is what every request
    # must get back. The loop asks for chunks nginx has not cached (a query it does not know
    # makes each URL new), so every request reaches a replica.
    keys = [f"/datasets/{d}/zarr/tas/{t}.0.0" for d in ["store", "refs"] for t in range(24)]
    direct = replicas[0].url
    want = {key: requests.get(f"{direct}{key}", timeout=30).content for key in keys}
    failures, answered, stop = [], [], threading.Event()

    def loop():
        session = requests.Session()
        n = 0
        while not stop.is_set():
            key = keys[n % len(keys)]
            try:
                reply = session.get(f"{proxy}{key}?n={n}", timeout=30)
                if reply.status_code != 200 or reply.content != want[key]:
                    failures.append((key, reply.status_code))
            except requests.RequestException as err:
                failures.append((key, str(err)))
            answered.append(n)
            n += 1

    threads = [threading.Thread(target=loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    victim = 1
    replicas[victim].kill()
    before_restart = len(answered)
    time.sleep(1.0)
    replicas[victim] = cluster["start"](cluster["ports"][victim])
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(60)
    assert not failures, failures[:5]
    assert len(answered) > before_restart > 50
    # The restarted replica is back in rotation.
    assert requests.get(f"{replicas[victim].url}/metrics", timeout=30).status_code == 200


def test_nginx_caches_repeated_chunks(cluster):
    proxy = cluster["proxy"]
    keys = [f"/datasets/store/zarr/tas/{t}.0.0" for t in range(24)]
    first = [requests.get(f"{proxy}{key}", timeout=30) for key in keys]
    again = [requests.get(f"{proxy}{key}", timeout=30) for key in keys]
    assert all(r.status_code == 200 for r in first + again)
    assert [r.content for r in again] == [r.content for r in first]
    statuses = [r.headers.get("X-Cache-Status") for r in again]
    assert statuses.count("HIT") == len(keys), statuses
