#!/usr/bin/env bash
# Installs what the build and the tests need, when missing:
#   - Debian packages (as root; otherwise says what to install and fails),
#   - the npm packages of the interoperability harness (tests/interop, pinned by its lock file).
# Usage: scripts/deps.sh [--no-npm]
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config
  luajit libluajit-5.1-dev lua-cjson lua-cjson-dev lua-busted
  libhiredis-dev libuv1-dev libpq-dev libssl-dev libcurl4-openssl-dev
  redis-server redis-tools postgresql-15 postgresql-client-15
  clang clang-format libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "deps: missing Debian packages: ${missing[*]}" >&2
    echo "deps: run as root, or: sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" \
    >/tmp/rex-deps-apt.log 2>&1 || { tail -30 /tmp/rex-deps-apt.log >&2; exit 1; }
fi

if [[ "${1:-}" != "--no-npm" ]]; then
  command -v node >/dev/null || { echo "deps: node (>= 18) is needed for tests/interop" >&2; exit 1; }
  command -v npm >/dev/null || { echo "deps: npm is needed for tests/interop" >&2; exit 1; }
  stamp=tests/interop/node_modules/.rex-lock-stamp
  if [[ ! -f "$stamp" ]] || ! cmp -s tests/interop/package-lock.json "$stamp"; then
    echo "deps: installing the interop harness's npm packages"
    (cd tests/interop && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp tests/interop/package-lock.json "$stamp"
  fi
fi
