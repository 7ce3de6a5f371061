#!/usr/bin/env bash
# The demo of the README, on the embedded default: a volume image file
# (sparse, on /dev/shm) instead of a SAN LUN.
#   scripts/demo.sh [IMAGE]      default IMAGE: /dev/shm/lunfs-demo.img
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
make -j"$(nproc)" all >/dev/null

img="${1:-/dev/shm/lunfs-demo.img}"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

rm -f "$img"
# A 4 TiB thin volume: the image file only holds what lunfs writes.
step build/mkfs.lunfs -L demo -H 8 -s 4T "$img"
step build/lunfs inspect "$img"
step du -h --apparent-size "$img"
step du -h "$img"
echo
echo "demo: formatted and inspected $img (mounting comes with the mount daemon)."
