#!/usr/bin/env bash
# /zarr benchmark (figures, not a test): the shared harness (../shared/bench, or BENCH_DIR)
# measures xpublish, static nginx and this server on the same data, interleaved, in one run.
#
#   run 1 "uncached": xpublish-dask, nginx-v2, nginx-v3 and cloudify with both chunk caches off
#   run 2 "cached":   nginx-v2 and cloudify with an encoded-chunk cache that holds the working
#                     set (2 GiB: tas and pr re-encoded take 1.2 GB; nginx has the page cache) and
#                     no decoded-chunk cache; the load phase cycles over every chunk key, so after
#                     the first pass every chunk comes from the cache
#   run 3 "source":   nginx-v2 and cloudify with codec "source" (stored chunks as they are),
#                     caches off
#   run 4 "default":  nginx-v2 and cloudify with the default config (512 MiB encoded-chunk
#                     cache, 256 MiB decoded-chunk cache, 128 MiB read budget): peak RSS against
#                     what the configuration allows
#
# Usage: tests/bench/zarr_vs_xpublish.sh   (env: RUNS, ROUNDS=2, DURATION=10, OUT=/tmp/cloudify-bench,
#        ZARR_FORMAT=2|3, BENCH_DIR=../shared/bench). Needs the harness set up (its setup.sh).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bench=${BENCH_DIR:-$repo/../shared/bench}
data=${DATA:-/tmp/anchors-data}
out=${OUT:-/tmp/cloudify-bench}
export ROUNDS=${ROUNDS:-2} DATA=$data ENDPOINT=zarr ZARR_FORMAT=${ZARR_FORMAT:-2}
source "$repo/tests/bench/server.sh"

# RUNS selects runs (default: all four).
for run in ${RUNS:-uncached cached source default}; do
  case $run in
    uncached) targets="xpublish-dask nginx-v2 nginx-v3 server"
              env="CLOUDIFY_CACHE__CHUNK_BYTES=0 CLOUDIFY_PLUGIN__ZARR__CACHE_BYTES=0" ;;
    cached)   targets="nginx-v2 server"
              env="CLOUDIFY_CACHE__CHUNK_BYTES=0 CLOUDIFY_PLUGIN__ZARR__CACHE_BYTES=2147483648" ;;
    source)   targets="nginx-v2 server"
              env="CLOUDIFY_PLUGIN__ZARR__CODEC=source CLOUDIFY_CACHE__CHUNK_BYTES=0 CLOUDIFY_PLUGIN__ZARR__CACHE_BYTES=0" ;;
    default)  targets="nginx-v2 server"; env="" ;;
    *) echo "unknown run $run" >&2; exit 2 ;;
  esac
  OUTDIR=$out/$run SERVER_CMD="env CLOUDIFY_LOG=warn $env $serve" bash "$bench/run_all.sh" $targets
  echo "summary: $out/$run/summary.md"
done
