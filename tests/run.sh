#!/usr/bin/env bash
# Every test, from a fresh clone on Debian with Rust: set-up, build, the Rust suites (unit and
# end-to-end with dynamically loaded plugins), then the Python interop suite against the server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --python
cargo build --release --workspace --locked
cargo test --release --workspace --locked
.venv/bin/python -m pytest -q tests/interop
