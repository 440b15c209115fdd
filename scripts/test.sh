#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds chv with ASan + UBSan
# in build-asan/, and runs every test (unit and integration) through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build-asan -DCHV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$(nproc)"
cd build-asan
ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@"
