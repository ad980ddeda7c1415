"""Starts the real cloudify binary on 127.0.0.1 for the interop suite and stops it by PID."""

import http.server
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _binary() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "release" / "cloudify"
    if not binary.is_file():
        pytest.fail(f"{binary} missing: run `cargo build --release --workspace` first (tests/run.sh does)")
    return binary


class Server:
    """The release binary serving on `bind`; or, with `image`, the container image running it
    (`docker run --network host`, `mounts` folders at the same paths, as the calling user)."""

    def __init__(self, *args: str, env: dict | None = None, cache_dir: str | None = None, bind="127.0.0.1:0",
                 image: str | None = None, mounts: tuple = ()):
        self.log: list[str] = []
        settings = {"CLOUDIFY_LOG": "info", "CLOUDIFY_CACHE__DIR": cache_dir or tempfile.mkdtemp(), **(env or {})}
        self.container = None
        if image:
            self.container = f"cloudify-test-{os.getpid()}-{time.monotonic_ns()}"
            command = ["docker", "run", "--rm", "--name", self.container, "--network", "host",
                       "--user", f"{os.getuid()}:{os.getgid()}"]
            for folder in {*mounts, settings["CLOUDIFY_CACHE__DIR"]}:
                command += ["-v", f"{folder}:{folder}"]
            for key, value in settings.items():
                command += ["-e", f"{key}={value}"]
            command += [image, "serve", "--bind", bind, *args]
            env_of_process = None
        else:
            command = [str(_binary()), "serve", "--bind", bind, *args]
            env_of_process = {**os.environ, **settings}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=env_of_process)
        found = threading.Event()
        self.url = None

        def read():
            for line in self.proc.stdout:
                self.log.append(line)
                match = re.search(r"listening on (http://[^\s\"]+)", line)
                if match and not found.is_set():
                    self.url = match.group(1)
                    found.set()

        threading.Thread(target=read, daemon=True).start()
        if not found.wait(60):
            self.stop()
            pytest.fail("server did not start:\n" + "".join(self.log))
        # Datasets open in the background: wait until /ready says all are.
        deadline = time.monotonic() + 120
        while not self.ready():
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("datasets did not open:\n" + "".join(self.log))
            time.sleep(0.05)

    def ready(self):
        """Whether /ready answers 200."""
        try:
            with urllib.request.urlopen(f"{self.url}/ready", timeout=10) as response:
                return response.status == 200
        except urllib.error.HTTPError:
            return False

    def kill(self):
        """Ends the server at once (SIGKILL; `docker kill` for a container)."""
        if self.container:
            subprocess.run(["docker", "kill", self.container], capture_output=True, timeout=30)
        else:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.container and self.proc.poll() is None:
            subprocess.run(["docker", "stop", "-t", "20", self.container], capture_output=True, timeout=60)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class RangeFiles(http.server.SimpleHTTPRequestHandler):
    """Static files with single byte ranges (`bytes=a-b`, `bytes=a-`, `bytes=-n`), which the
    standard library's handler lacks and object_store's HTTP client needs."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        spec = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not spec or not os.path.isfile(path):
            return super().do_GET()
        size = os.path.getsize(path)
        first, _, last = spec.removeprefix("bytes=").partition("-")
        start, end = (size - int(last), size - 1) if not first else (int(first), int(last) if last else size - 1)
        end = min(end, size - 1)
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def server(cache_dir):
    srv = Server(cache_dir=cache_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    """The test files of tests/data/make_netcdf.py (NetCDF4, NetCDF3, Zarr stores, a series)."""
    out = tmp_path_factory.mktemp("netcdf")
    subprocess.run([sys.executable, str(REPO / "tests/data/make_netcdf.py"), str(out)], check=True)
    return out
