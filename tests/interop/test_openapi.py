"""schemathesis against /openapi.json with every plugin and the test files served: property-
based requests to every operation, checking that no answer is a server error and that every
answer keeps to the document (status codes, content types, schemas, headers)."""

import subprocess
import sys
from pathlib import Path

import pytest

from test_zarr import start

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def served(files, cache_dir, tmp_path_factory):
    srv = start(files, cache_dir, tmp_path_factory)
    yield srv
    srv.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(served):
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [str(st), "run", f"{served.url}/openapi.json", "--checks", CHECKS, "--max-examples", "25", "--workers", "2",
         "--seed", "1", "--request-timeout", "30", "--no-color"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert served.proc.poll() is None, "the server is still running"
