#!/usr/bin/env bash
# Builds deploy/Dockerfile's image and runs the scale-out test against it (three replicas as
# containers behind nginx, moto as the object store). Too long for CI (the image compiles
# every plugin from scratch: ~25 min on 2 cores), so run by hand; the figures go in the
# issue notes. Starts a Docker engine if none runs (root; storage driver vfs, no bridge, as
# in containers without privileges) and, where no registry is reachable, makes the base
# images with local-base-images.sh. Needs the interop venv (tests/run.sh or
# scripts/setup.sh --python).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info > /dev/null 2>&1; then
  command -v dockerd > /dev/null || apt-get install -y -q docker.io
  dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs > /tmp/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info > /dev/null 2>&1 && break; sleep 1; done
fi
if ! docker image inspect rust:1-bookworm > /dev/null 2>&1 && ! docker pull rust:1-bookworm; then
  command -v debootstrap > /dev/null || apt-get install -y -q debootstrap
  deploy/local-base-images.sh
fi
start=$(date +%s)
docker build --network host -f deploy/Dockerfile -t cloudify:test .
echo "image built in $(( $(date +%s) - start )) s; $(docker image inspect cloudify:test --format '{{.Size}}') bytes"
# The test writes its reference set with the local binary (`cloudify refs scan`).
cargo build --release -q -p cloudify
SCALE_OUT_IMAGE=cloudify:test .venv/bin/python -m pytest -q -p no:warnings tests/interop/test_scale_out.py
