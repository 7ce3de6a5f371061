#!/usr/bin/env bash
# Install, on Debian 12, exactly the packages lunfs needs that are missing.
# Idempotent: when everything is present it runs no apt-get at all.
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --bench  also the benchmark tools
#   scripts/deps.sh --fuzz   also clang and libFuzzer
set -euo pipefail

pkgs=(
	build-essential pkg-config
	libfuse3-dev fuse3
	liburing-dev
	libssl-dev
	libblkid-dev uuid-dev
	libjson-c-dev
	libcorosync-common-dev libcpg-dev libcmap-dev libquorum-dev libvotequorum-dev
	check
	e2fsprogs util-linux
	attr
	qemu-utils
	python3
)
case "${1:-}" in
--bench) pkgs+=(fio linux-perf valgrind) ;;
--fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
esac

missing=()
for p in "${pkgs[@]}"; do
	# dpkg-query prints "install ok installed" only for a fully installed package.
	if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]]; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
