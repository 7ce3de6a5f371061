#!/usr/bin/env bash
# The demo of the README, on the embedded default: a volume image file
# (sparse, on /dev/shm) instead of a SAN LUN. Formats it, mounts it with
# FUSE, stores a VM disk image on it, shows it, and unmounts.
#   scripts/demo.sh [IMAGE]      default IMAGE: /dev/shm/lunfs-demo.img
# Needs root (FUSE with allow_other) and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
make -j"$(nproc)" all >/dev/null

img="${1:-/dev/shm/lunfs-demo.img}"
mnt="$(mktemp -d /tmp/lunfs-demo-mnt.XXXXXX)"
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

cleanup() {
	if mountpoint -q "$mnt"; then
		fusermount3 -u "$mnt" || umount -l "$mnt" || true
	fi
	rmdir "$mnt" 2>/dev/null || true
}
trap cleanup EXIT

rm -f "$img"
# A 4 TiB thin volume: the image file only holds what lunfs writes.
step build/mkfs.lunfs -L demo -H 8 -s 4T "$img"
step build/lunfs inspect "$img"
step du -h --apparent-size "$img"
step du -h "$img"

# Mount it: the command returns once the mount is in place; the daemon
# serves it in the background (logging to syslog) until it is unmounted.
step build/lunfs mount -o host=demo-host "$img" "$mnt"
step findmnt "$mnt"

# A VM disk image, the way a hypervisor makes one.
if command -v qemu-img >/dev/null; then
	step qemu-img create -f qcow2 "$mnt/vm1.qcow2" 64G
	disk="$mnt/vm1.qcow2"
	fmt=qcow2
else
	step truncate -s 64G "$mnt/vm1.raw"
	disk="$mnt/vm1.raw"
	fmt=raw
fi
# The guest writes: its boot sector, some data 10 GiB in, and more at the end.
if command -v qemu-io >/dev/null; then
	step qemu-io -t none -f "$fmt" -c 'write -P 0xab 0 1M' -c 'write -P 0xcd 10G 64M' \
		-c 'write -P 0xef 63G 1M' "$disk"
	step qemu-io -t none -f "$fmt" -c 'read -P 0xcd 10G 64M' "$disk"
else
	step dd if=/dev/urandom of="$disk" bs=1M count=64 seek=$((10 << 10)) conv=notrunc oflag=direct status=none
fi
if [[ $fmt == qcow2 ]]; then
	step qemu-img snapshot -c before-upgrade "$disk"
	step qemu-img info "$disk"
fi
step ls -l "$mnt"
step du -h "$disk"
step df -h "$mnt"

step fusermount3 -u "$mnt"
# The daemon flushed everything and left the journal clean on its way out.
for _ in $(seq 1 100); do
	if build/lunfs inspect --json "$img" 2>/dev/null |
		python3 -c 'import json,sys; sys.exit(json.load(sys.stdin)["journals"]["dirty"] != 0)'; then
		break
	fi
	sleep 0.1
done
step build/lunfs inspect "$img"
step build/fsck.lunfs "$img"
echo
echo "demo: formatted $img, mounted it, stored a VM image on it, unmounted it cleanly, checked it."
