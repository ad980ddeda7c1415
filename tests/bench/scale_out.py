"""Scale-out figures (not a test): requests/s of chunk GETs through nginx with deploy/nginx's
configuration, in front of 1 and of 3 replicas of this server, and the cache-hit rate.

Three loads, each `wrk` for DURATION s with CONNECTIONS connections from this machine:
  direct: one replica without nginx, for the proxy's cost;
  miss: every URL new (a counter in the query), so every request reaches a replica;
  hit:  the dataset's chunk keys over and over, which nginx's cache answers after the first.
The hit rate is 1 - (requests the replicas answered) / (requests nginx answered), from the
replicas' /metrics. On a 2-core machine nginx, wrk and the replicas share the two cores: more
replicas cannot add cores here, the figures show the overhead of the proxy and the cache.

Usage: .venv/bin/python tests/bench/scale_out.py   (env DURATION=10 CONNECTIONS=32; needs the
release build, nginx and wrk: scripts/setup.sh --python, apt-get install wrk)
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests/interop"))
from conftest import Server  # noqa: E402
from test_scale_out import free_port, nginx_config, write_source  # noqa: E402

DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
KEYS = [f"/datasets/tas/zarr/tas/{t}.0.0" for t in range(24)]

LUA = """
local keys = {%s}
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local n = 0
request = function()
  n = n + 1
  local path = keys[(n %% #keys) + 1]
  if os.getenv("BUST") == "1" then path = path .. "?t=" .. id .. "&n=" .. n end
  return wrk.format("GET", path)
end
""" % ", ".join(f'"{k}"' for k in KEYS)


def answered(replicas):
    total = 0.0
    for replica in replicas:
        text = requests.get(f"{replica.url}/metrics", timeout=30).text
        total += sum(float(v) for v in re.findall(r'^cloudify_http_requests_total\{route="/datasets/\{id\}/zarr/\{\*key\}".*\} (\S+)$',
                                                     text, re.M))
    return total


def wrk(url, script, bust):
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "-s", script, url],
                         env={**os.environ, "BUST": "1" if bust else "0"}, capture_output=True, text=True, check=True)
    rps = float(re.search(r"Requests/sec:\s+(\S+)", out.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", out.stdout).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return rps, total, int(errors.group(1)) if errors else 0


def run(replica_count, folder):
    config = folder / "cloudify.toml"
    config.write_text(f'[demo]\nenabled = false\n\n[[datasets]]\nid = "tas"\npath = "{folder}/tas.nc"\n')
    ports = [free_port() for _ in range(replica_count)]
    # Its start line only: no line per request.
    env = {"CLOUDIFY_LOG": "warn,cloudify=info", "CLOUDIFY_SERVER__USAGE_DAYS": "0"}
    replicas = [Server("--config", str(config), bind=f"127.0.0.1:{p}", env=env) for p in ports]
    proxy_dir = folder / f"nginx-{replica_count}"
    proxy_dir.mkdir()
    listen = free_port()
    conf = nginx_config(proxy_dir, listen, ports, rate="1000000r/s")
    nginx = subprocess.Popen(["nginx", "-p", str(proxy_dir), "-c", str(conf)])
    try:
        url = f"http://127.0.0.1:{listen}"
        for _ in range(100):
            try:
                if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        size = len(requests.get(f"{url}{KEYS[0]}", timeout=30).content)
        if replica_count == 1:
            print(f"(a chunk answer: {size:,} bytes, blosc-lz4)", flush=True)
        script = folder / "keys.lua"
        script.write_text(LUA)
        before = answered(replicas)
        miss = wrk(url, script, bust=True)
        middle = answered(replicas)
        hit = wrk(url, script, bust=False)
        after = answered(replicas)
        hit_rate = 1 - (after - middle) / hit[1]
        direct = wrk(replicas[0].url, script, bust=False)
        print(f"| {replica_count} | {direct[0]:,.0f} | {miss[0]:,.0f} ({miss[2]} errors; replicas answered "
              f"{middle - before:,.0f} of {miss[1]:,}) | {hit[0]:,.0f} ({hit[2]} errors) | {hit_rate:.2%} |", flush=True)
    finally:
        nginx.terminate()
        nginx.wait(20)
        for replica in replicas:
            replica.stop()


def main():
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_source(folder / "tas.nc")
        print(f"nginx {subprocess.run(['nginx', '-v'], capture_output=True, text=True).stderr.strip()}, "
              f"{os.cpu_count()} cores, wrk -c{CONNECTIONS} -d{DURATION}s over {len(KEYS)} chunk keys")
        print("| replicas | req/s, one replica directly | req/s through nginx, every URL new (misses, each cached) "
              "| req/s through nginx, repeated chunks | cache-hit rate (repeated) |")
        print("|---|---|---|---|---|")
        for count in (1, 3):
            run(count, folder)


if __name__ == "__main__":
    main()
