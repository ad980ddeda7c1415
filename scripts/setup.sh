#!/usr/bin/env bash
# Installs what cloudify needs on Debian, only what is missing: system packages, and with
# --python the venv of the interop suite (.venv, re-made when its requirements change).
set -euo pipefail
cd "$(dirname "$0")/.."

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

packages=()
# The C toolchain and the NetCDF/HDF5 libraries the server links (scans go through them).
for package in gcc pkg-config libnetcdf-dev libhdf5-dev; do
  installed "$package" || packages+=("$package")
done
if [ "${1:-}" = "--python" ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv python3-pip)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}"
fi

if [ "${1:-}" = "--python" ]; then
  stamp=.venv/.requirements.sha256
  want=$(sha256sum tests/interop/requirements.txt | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating .venv for the interop tests"
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r tests/interop/requirements.txt
    echo "$want" > "$stamp"
  fi
fi
