#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers and request decoders with libFuzzer, through
# cargo-bolero (`cargo install cargo-bolero`) and a nightly toolchain. The same targets run
# for about a second each on stable inside `cargo test` (random inputs).
#
#   scripts/fuzz.sh [SECONDS per target, default 600] [TARGET...]
#
# Corpora and crashes go to the crates' `src/__fuzz__/` folders (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=(
  "cloudify-netcdf3 header::tests::fuzz_header"
  "cloudify-netcdf tests::fuzz_classic_scan"
  "cloudify-netcdf chunk_index::tests::fuzz_chunk_index_walk"
  "cloudify-kerchunk source::tests::fuzz_reference_sets"
  "cloudify-kerchunk parquet::tests::fuzz_parquet_records"
  "cloudify-zarr-store store::tests::fuzz_store_keys"
  "cloudify-plugin-stac search::tests::fuzz_search_parameters"
  "cloudify-dataset region::tests::fuzz_region_selections"
)
for entry in "${targets[@]}"; do
  read -r package test <<<"$entry"
  if [ $# -gt 0 ] && [[ ! " $* " == *" ${test##*::} "* ]]; then
    continue
  fi
  echo "== $package $test: ${seconds}s"
  cargo +nightly bolero test -p "$package" "$test" --all-features --engine libfuzzer -T "${seconds}s"
done
