#!/usr/bin/env bash
# Data-plane benchmark (figures, not a test): writes its files with the interop venv's
# netCDF4-python, then runs the release benchmark binary against them.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/setup.sh --python
cargo build --release --workspace --locked
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
.venv/bin/python tests/bench/make_files.py "$work"
target=${CARGO_TARGET_DIR:-target}
"$target/release/data-plane-bench" "$work/big.nc" "$work/small" "$target/release/cloudify"
