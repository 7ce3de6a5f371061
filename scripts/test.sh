#!/usr/bin/env bash
# The test command of the README, and what CI runs (.ci/run).
# Installs what is missing, builds with -Werror, runs every test (unit and
# integration), then the unit tests and the hostile-input tool tests again
# under AddressSanitizer and UndefinedBehaviorSanitizer, both in one build.
# (`make asan` and `make ubsan` run everything under them; they take longer.)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export WERROR=1
make -j"$(nproc)" all
make check
make san-both-quick
echo "test.sh: all test stages passed"
