#!/usr/bin/env bash
# Soak test, not in CI: tests/soak/soak.sh [SECONDS, default 600] [CONCURRENCY, default 64].
# Builds the workspace, writes the test NetCDF files, and runs soak.py against the real server
# with the faulty test plugin loaded (panics, slow answers). Prints requests, statuses, wrong
# bytes and RSS; exits non-zero if the server died or answered wrong bytes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
scripts/setup.sh --python >/dev/null
cargo build --release --workspace --locked
target=${CARGO_TARGET_DIR:-$repo/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins" "$work/files"
cp "$target/release/libfaulty_test_plugin.so" "$work/plugins/libcloudify_plugin_faulty.so"
.venv/bin/python tests/data/make_netcdf.py "$work/files" >/dev/null
.venv/bin/python tests/soak/soak.py "$target/release/cloudify" "$work/plugins" "$work/files" "$work" "${1:-600}" "${2:-64}"
