#!/usr/bin/env bash
# The whole test suite: installs what it needs, builds chv with ASan + UBSan
# in build-asan/, runs every test (unit and integration) through ctest, then
# the fuzz targets for a bounded time (scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cmake -S . -B build-asan -DCHV_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j"$(nproc)"
(cd build-asan && ctest --output-on-failure -j"$(nproc)" --timeout 600 "$@") | tee build-asan/ctest.out
# Then every fuzz target for a short while from its seeds (tests/fuzz):
# 12 targets, two at a time, 45 s each: 4.5 minutes plus the build (about
# 2 minutes from scratch on 2 cores), under 8 minutes in all.
# CHV_FUZZ_SECONDS changes the time per target; 0 skips the fuzzers.
if [ "${CHV_FUZZ_SECONDS:-45}" != 0 ]; then
	./scripts/fuzz.sh "${CHV_FUZZ_SECONDS:-45}"
fi
# ctest's summary last, so it closes the output.
grep -E '^[0-9]+% tests passed' build-asan/ctest.out
