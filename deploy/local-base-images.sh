#!/usr/bin/env bash
# Builds the two base images deploy/Dockerfile starts from, for a Docker engine that reaches
# no image registry (air-gapped sites, this project's CI machines): `debian:bookworm-slim`
# from debootstrap, and `rust:1-bookworm` from this machine's stable Rust toolchain on it.
# Needs root, debootstrap and a Debian mirror; CA certificates in
# /usr/local/share/ca-certificates (e.g. a proxy's) are trusted inside the Rust image, so
# that cargo reaches crates.io through the proxy. Then, from the repository root:
#   docker build --network host -f deploy/Dockerfile -t cloudify .
set -euo pipefail

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
toolchain=${RUST_TOOLCHAIN_DIR:-$(rustc --print sysroot)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! docker image inspect debian:bookworm-slim > /dev/null 2>&1; then
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror"
  tar -C "$work/rootfs" -c . | docker import - debian:bookworm-slim
fi

mkdir "$work/rust"
cp -a "$toolchain" "$work/rust/toolchain"
rm -rf "$work/rust/toolchain/share/doc"
mkdir "$work/rust/certs"
cp /usr/local/share/ca-certificates/*.crt "$work/rust/certs/" 2> /dev/null || true
cat > "$work/rust/Dockerfile" << 'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc g++ make libc6-dev ca-certificates pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
COPY certs/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:$PATH CARGO_HOME=/usr/local/cargo
DOCKERFILE
docker build --network host -t rust:1-bookworm "$work/rust"
