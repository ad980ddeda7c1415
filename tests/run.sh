#!/usr/bin/env bash
# Every test, from a fresh clone on Debian with Rust: set-up, the style gates (rustfmt, clippy,
# rustdoc, all warnings as errors), build, the Rust suites (unit and end-to-end with
# dynamically loaded plugins), then the Python interop suite against the server.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh --python
cargo fmt --all --check
cargo fmt --manifest-path examples/hello-plugin/Cargo.toml --check
cargo test --manifest-path examples/hello-plugin/Cargo.toml --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
# Licences and bans of every crate (all platforms: fetched first, then checked offline).
cargo fetch --locked
cargo deny --offline check licenses bans sources
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked
cargo build --release --workspace --locked
cargo test --release --workspace --locked
.venv/bin/python -m pytest -q tests/interop --ignore=tests/interop/test_icechunk.py
# Python icechunk 2.x needs Python >= 3.12: its tests run in their own venv.
.venv-icechunk/bin/python -m pytest -q tests/interop/test_icechunk.py
