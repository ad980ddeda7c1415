"""Soak test (not in CI): the server under c concurrent clients over mixed endpoints for a
while, with faults injected, reporting crashes, wrong bytes and resident memory.

    tests/soak/soak.sh [SECONDS, default 600] [CONCURRENCY, default 64]

Faults: a served NetCDF file truncated and then replaced by another file mid-run (every
20 s), requests that make a plugin panic, slow plugin requests, malformed keys and paths. Every
answer of a file that is never touched is checked against the bytes first read for that URL
(checksums); answers of the mutated file may be errors but the server must go on. RSS is
sampled every second from /proc.
"""

import asyncio
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp

binary, plugins, files, work, seconds, concurrency = sys.argv[1:7]
seconds, concurrency = int(seconds), int(concurrency)
work, files = Path(work), Path(files)

published = work / "published"
published.mkdir(parents=True, exist_ok=True)
for name in ["nc4_chunked.nc", "nc3_classic.nc", "nc4_packed.nc", "nc4_strings.nc"]:
    shutil.copy(files / name, published / name)
victim = published / "victim.nc"
shutil.copy(files / "nc4_chunked.nc", victim)
config = work / "soak.toml"
config.write_text(f'[[folders]]\npath = "{published}"\n\n[server]\nmax_concurrent_requests = 4096\n')

server = subprocess.Popen(
    [binary, "serve", "--bind", "127.0.0.1:0", "--config", str(config), "--plugin-dir", plugins],
    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    env={**os.environ, "CLOUDIFY_LOG": "warn,cloudify=info", "CLOUDIFY_CACHE__DIR": str(work / "cache")},
)
found = threading.Event()
url = []
log_tail = []


def read_log():
    for line in server.stdout:
        log_tail.append(line)
        del log_tail[:-200]
        match = re.search(r"listening on (http://\S+)", line)
        if match and not found.is_set():
            url.append(match.group(1))
            found.set()


threading.Thread(target=read_log, daemon=True).start()
assert found.wait(120), "server did not start"
base = url[0]

STABLE = ["nc4_chunked", "nc3_classic", "nc4_packed", "nc4_strings"]
PATHS = []
for ds in STABLE + ["victim"]:
    PATHS += [
        f"/datasets/{ds}/info", f"/datasets/{ds}/zarr/.zmetadata", f"/datasets/{ds}/kerchunk/.zmetadata",
        f"/datasets/{ds}/stac", f"/datasets/{ds}/kerchunk.json", f"/datasets/{ds}/catalog.yaml",
    ]
PATHS += [f"/datasets/nc4_chunked/zarr/tas/{t}.{a}.{b}" for t in range(5) for a in range(2) for b in range(2)]
PATHS += [f"/datasets/victim/zarr/tas/{t}.0.0" for t in range(5)]
PATHS += [f"/datasets/nc4_chunked/kerchunk/tas/{t}.0.0" for t in range(5)]
PATHS += [f"/datasets/nc3_classic/zarr/ts/{t}.0.0" for t in range(4)]
PATHS += ["/datasets", "/stac/search?limit=5", "/intake.yaml", "/health", "/ready"]
FAULTS = ["/faulty/panic-async", "/faulty/panic-sync", "/faulty/slow?ms=300", "/datasets/nc4_chunked/zarr/tas/99.0.0",
          "/datasets/%ff/info", "/datasets/nc4_chunked/zarr/..%252f..%252fetc%252fpasswd", "/datasets/nope/zarr/.zmetadata"]

status = Counter()
mismatches = []
first_seen = {}
stop_at = time.monotonic() + seconds
rss = []


def sample_rss():
    while time.monotonic() < stop_at and server.poll() is None:
        try:
            text = Path(f"/proc/{server.pid}/status").read_text()
            rss.append((time.monotonic(), int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024))
        except (OSError, AttributeError):
            pass
        time.sleep(1)


def mutate():
    """Truncate the victim file, then replace it by another file, then restore it."""
    original = published / "nc4_chunked.nc"
    other = published / "nc4_packed.nc"
    step = 0
    while time.monotonic() < stop_at and server.poll() is None:
        time.sleep(20)
        step += 1
        if step % 3 == 1:
            data = victim.read_bytes()
            victim.write_bytes(data[: len(data) // 3])
        elif step % 3 == 2:
            tmp = published / "victim.tmp"
            shutil.copy(other, tmp)
            os.replace(tmp, victim)
        else:
            tmp = published / "victim.tmp"
            shutil.copy(original, tmp)
            os.replace(tmp, victim)


async def worker(session, rng):
    while time.monotonic() < stop_at:
        path = rng.choice(FAULTS) if rng.random() < 0.1 else rng.choice(PATHS)
        try:
            async with session.get(base + path) as response:
                body = await response.read()
                status[response.status] += 1
                stable = response.status == 200 and "victim" not in path and not path.startswith(("/health", "/ready", "/datasets?"))
                if stable and path not in ("/datasets",) and "stac" not in path and "intake" not in path and "catalog" not in path:
                    digest = hashlib.sha256(body).hexdigest()
                    if first_seen.setdefault(path, digest) != digest:
                        mismatches.append(path)
        except (aiohttp.ClientError, asyncio.TimeoutError) as err:
            status[type(err).__name__] += 1


async def main():
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(worker(session, random.Random(i)) for i in range(concurrency)))


while True:
    try:
        import urllib.request
        if urllib.request.urlopen(base + "/ready", timeout=10).status == 200:
            break
    except Exception:
        time.sleep(0.2)
threading.Thread(target=sample_rss, daemon=True).start()
threading.Thread(target=mutate, daemon=True).start()
started = time.monotonic()
asyncio.run(main())
elapsed = time.monotonic() - started
alive = server.poll() is None
total = sum(v for k, v in status.items())
print(f"soak: {seconds} s at c={concurrency}: {total} requests ({total / elapsed:.0f}/s)")
print("  statuses:", dict(sorted(status.items(), key=lambda kv: str(kv[0]))))
print(f"  server alive: {alive}; wrong bytes (stable URLs): {len(mismatches)} {sorted(set(mismatches))[:5]}")
if rss:
    values = [mb for _, mb in rss]
    half = len(values) // 2
    print(f"  RSS MB: start {values[0]:.0f}, peak {max(values):.0f}, end {values[-1]:.0f}; "
          f"mean first half {sum(values[:half]) / max(half, 1):.0f}, second half {sum(values[half:]) / max(len(values) - half, 1):.0f}")
server.terminate()
server.wait(30)
if not alive or mismatches:
    print("".join(log_tail[-40:]))
    sys.exit(1)
