#!/usr/bin/env bash
# STAC benchmark (figures, not a test): 1,000 regional NetCDF files written with the interop
# venv's netCDF4-python, served from a folder; see tests/bench/stac_bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --python
cargo build --release --workspace --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python tests/bench/stac_bench.py "$work" "${CARGO_TARGET_DIR:-target}/release/cloudify"
