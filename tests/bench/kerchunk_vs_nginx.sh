#!/usr/bin/env bash
# /kerchunk benchmark (figures, not a test): the shared harness (../shared/bench, or BENCH_DIR)
# measures static nginx serving the stored chunks (nginx-v2: zlib + shuffle, the same bytes)
# and this server's /kerchunk, interleaved, in one run.
#
#   run 1 "default": the default config: no stored-chunk cache, every chunk read from the
#                    file (the OS page cache holds it, as for nginx)
#   run 2 "cached":  a 2 GiB stored-chunk cache, which holds the working set (1 GB of tas and pr)
#
# Usage: tests/bench/kerchunk_vs_nginx.sh   (env: RUNS="default cached", ROUNDS=2, DURATION=10,
#        OUT=/tmp/cloudify-bench-kerchunk, BENCH_DIR=../shared/bench). Needs the harness set up
#        (its setup.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BENCH_DIR:-$repo/../shared/bench}
data=${DATA:-/tmp/anchors-data}
out=${OUT:-/tmp/cloudify-bench-kerchunk}
export ROUNDS=${ROUNDS:-2} DATA=$data ENDPOINT=kerchunk ZARR_FORMAT=2
source "$repo/tests/bench/server.sh"

for run in ${RUNS:-default cached}; do
  case $run in
    default) env="" ;;
    cached) env="CLOUDIFY_PLUGIN__KERCHUNK__CACHE_BYTES=2147483648" ;;
  esac
  OUTDIR=$out/$run SERVER_CMD="env CLOUDIFY_LOG=warn $env $serve" bash "$bench/run_all.sh" nginx-v2 server
  echo "summary: $out/$run/summary.md"
done
