#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run).
# Installs what is missing, builds with -Werror, runs every test, then the
# unit and integration tests again under AddressSanitizer and
# UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export WERROR=1
make -j"$(nproc)" all
make check
make asan
make ubsan
echo "test.sh: all test stages passed"
