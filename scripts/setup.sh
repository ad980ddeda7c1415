#!/usr/bin/env bash
# Installs what cloudify needs on Debian, only what is missing: system packages, and with
# --python (everything the test suite needs) cargo-deny and the venvs of the interop suite
# (.venv, .venv-zarr30 and .venv-icechunk, re-made when their requirements change).
set -euo pipefail
cd "$(dirname "$0")/.."

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

packages=()
# The C and C++ toolchains (snappy, under the parquet reader, is C++) and the NetCDF/HDF5
# libraries the server links (scans go through them).
for package in gcc g++ pkg-config libnetcdf-dev libhdf5-dev; do
  installed "$package" || packages+=("$package")
done
if [ "${1:-}" = "--python" ]; then
  python3 -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv python3-pip)
  # The browser the web plugin's page tests drive (through Playwright, which downloads none).
  installed chromium || packages+=(chromium)
  # The caching proxy of deploy/nginx, which the scale-out test puts in front of replicas.
  installed nginx-light || installed nginx || packages+=(nginx-light)
fi
if [ ${#packages[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "setup: installing ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}"
fi

# cargo-deny for the licence and ban checks of tests/run.sh (a pinned version, built once).
CARGO_DENY_VERSION=0.20.2
if [ "${1:-}" = "--python" ] && ! cargo deny --version 2>/dev/null | grep -q " $CARGO_DENY_VERSION\$"; then
  echo "setup: installing cargo-deny $CARGO_DENY_VERSION"
  cargo install -q --locked cargo-deny --version "$CARGO_DENY_VERSION"
fi

# A venv from a requirements file (with the interpreter $3, default python3), re-made when
# the file changes.
venv() {
  local dir=$1 requirements=$2 python=${3:-python3} want
  want=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$dir/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
    echo "setup: creating $dir for the interop tests"
    rm -rf "$dir"
    "$python" -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
    "$dir/bin/pip" install -q -r "$requirements"
    echo "$want" > "$dir/.requirements.sha256"
  fi
}

if [ "${1:-}" = "--python" ]; then
  venv .venv tests/interop/requirements.txt
  # zarr-python 3.0.x, still pinned by clients such as ceda-datapoint: the catalog assets must
  # open there too.
  venv .venv-zarr30 tests/interop/requirements-zarr30.txt
  # Python icechunk 2.x needs Python >= 3.12, which Debian's python3 (3.11) is not: the
  # oldest 3.12+ of pyenv, else a python3.12/3.13 on the PATH.
  python312=""
  if command -v pyenv >/dev/null; then
    for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.(1[2-9])' | sort -V); do
      python312="$(pyenv root)/versions/$version/bin/python3"
      break
    done
  fi
  if [ -z "$python312" ]; then
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
      [ -x "$candidate" ] && python312=$candidate && break
    done
  fi
  [ -n "$python312" ] || python312=$(command -v python3.12 || command -v python3.13 || true)
  if [ -z "$python312" ]; then
    echo "setup: no Python >= 3.12 (pyenv or python3.12) for the icechunk tests" >&2
    exit 1
  fi
  venv .venv-icechunk tests/interop/requirements-icechunk.txt "$python312"
fi
