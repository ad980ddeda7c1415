"""STAC figures (not a test): a folder of 1,000 regional NetCDF files with lat/lon/time,
served by cloudify; times the first search (every item built, coordinates read), warm
searches, item requests and `cloudify stac build`.

usage: stac_bench.py WORKDIR CLOUDIFY_BINARY
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import netCDF4
import numpy as np
import requests

work, binary = Path(sys.argv[1]), sys.argv[2]
folder = work / "regions"
folder.mkdir(parents=True, exist_ok=True)
for i in range(1000):
    with netCDF4.Dataset(folder / f"r{i:04d}.nc", "w") as ds:
        ds.experiment_id = ["historical", "ssp126", "ssp585"][i % 3]
        for name, n in [("time", 12), ("lat", 20), ("lon", 30)]:
            ds.createDimension(name, n)
        t = ds.createVariable("time", "f8", ("time",))
        t.units, t.calendar = "days since 1850-01-01", ["standard", "noleap", "360_day"][i % 3]
        t[:] = np.arange(12) * 30 + 365 * (i % 250)
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-80, 80, 20) * (0.2 + (i % 5) / 5)
        lon = ds.createVariable("lon", "f8", ("lon",))
        lon.units = "degrees_east"
        lon[:] = (np.linspace(0, 60, 30) + i * 7) % 360
        v = ds.createVariable("tas", "f4", ("time", "lat", "lon"), zlib=True)
        v[:] = np.full((12, 20, 30), i, dtype="f4")
config = work / "stac.toml"
config.write_text(f'[demo]\nenabled = false\n\n[[folders]]\npath = "{folder}"\n')

env = {**os.environ, "CLOUDIFY_LOG": "info", "CLOUDIFY_CACHE__DIR": str(work / "cache")}
server = subprocess.Popen([binary, "serve", "--bind", "127.0.0.1:0", "--config", str(config)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
found = threading.Event()
url = []


def read():
    for line in server.stdout:
        match = re.search(r"listening on (http://\S+)", line)
        if match and not found.is_set():
            url.append(match.group(1))
            found.set()


threading.Thread(target=read, daemon=True).start()
try:
    assert found.wait(120), "server did not start"
    base = url[0]
    session = requests.Session()
    # Datasets open in the background: start once all are open.
    while session.get(base + "/ready", timeout=60).status_code != 200:
        time.sleep(0.1)

    def timed(path, method="GET", **kwargs):
        start = time.perf_counter()
        response = session.request(method, base + path, timeout=600, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return time.perf_counter() - start, response.json()

    cold, page = timed("/stac/search?limit=1000")
    print(f"first search, 1,000 items built (coordinates read): {cold:.2f} s ({cold:.3f} ms per dataset)")
    assert page["numberMatched"] == 1000
    runs = [timed("/stac/search", "POST", json={"bbox": [-10, -10, 10, 10], "limit": 100,
                                                 "query": {"experiment_id": {"eq": "ssp585"}}})[0] for _ in range(20)]
    print(f"warm POST search over 1,000 items (bbox + query, limit 100): median {np.median(runs) * 1000:.1f} ms")
    runs = [timed("/stac/search?limit=1000")[0] for _ in range(5)]
    print(f"warm GET search returning all 1,000 items: median {np.median(runs) * 1000:.1f} ms")
    runs = [timed("/stac-collection-all.json")[0] for _ in range(5)]
    print(f"/stac-collection-all.json (extent of 1,000 items): median {np.median(runs) * 1000:.1f} ms")

    # Throughput with wrk (the harness's load generator); a Python client saturates first.
    for path in ["/datasets/r0001/stac", "/stac/search?limit=10&bbox=-10,-10,10,10",
                 "/stac/search?limit=10&query=%7B%22experiment_id%22%3A%7B%22eq%22%3A%22ssp585%22%7D%7D"]:
        for connections in (1, 8):
            if not shutil.which("wrk"):
                print("wrk not found: no throughput figures")
                break
            done = subprocess.run(["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", "5s", base + path],
                                  capture_output=True, text=True, check=True).stdout
            rate = re.search(r"Requests/sec:\s+([\d.]+)", done).group(1)
            print(f"GET {path}, c={connections}: {float(rate):,.0f} req/s")
    start = time.perf_counter()
    subprocess.run([binary, "stac", "build", "--config", str(config), "--out", str(work / "static"),
                    "--base-url", base], check=True, env={**env, "CLOUDIFY_LOG": "warn"}, stdout=subprocess.DEVNULL)
    print(f"cloudify stac build, 1,000 items (cold, new process): {time.perf_counter() - start:.2f} s")
finally:
    os.kill(server.pid, signal.SIGTERM)
    server.wait(30)
