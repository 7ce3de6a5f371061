#!/bin/bash
# VM images on a FUSE-mounted lunfs volume, driven by QEMU's own tools:
# a qcow2 image written and verified with qemu-io in cache=none (O_DIRECT)
# mode, its internal snapshots and an external overlay, qemu-img check; a
# 64 GiB sparse raw image written at scattered offsets and verified,
# staying sparse, converted to qcow2 through SEEK_DATA/SEEK_HOLE and
# compared; everything verified again after a remount.
# Skips when qemu-img or qemu-io is missing (scripts/deps.sh: qemu-utils).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
mnt_require_fuse
if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
	echo "# SKIP $(basename "$0"): qemu-img/qemu-io not installed (scripts/deps.sh installs qemu-utils)"
	exit 0
fi

# qio WHAT ARGS...: run qemu-io; passes if it exits 0 and reports no error
# (a failed read -P prints "Pattern verification failed").
qio() {
	local what="$1" out
	shift
	out="$(qemu-io "$@" 2>&1)"
	local rc=$?
	if [[ $rc -eq 0 ]] && ! grep -qiE 'verification failed|error|failed' <<<"$out"; then
		pass "$what"
	else
		fail "$what (exit $rc)"
		echo "$out" | grep -iE 'verification failed|error|failed' | head -5
	fi
}

img="$T/vol.img"
M="$T/mnt"
check "mkfs 16 GiB" "$B/mkfs.lunfs" -q -L qemu -s 16G "$img"
check "mount" mnt_up "$img" "$M" -o host=qemu1

# --- qcow2, cache=none -----------------------------------------------------------
q="$M/vm.qcow2"
check "qemu-img create -f qcow2 4G" qemu-img create -q -f qcow2 "$q" 4G
qio "qcow2 (cache=none): scattered writes" -t none -f qcow2 \
	-c 'write -P 0xab 0 1M' -c 'write -P 0xcd 1G 4M' -c 'write -P 0xef 4095M 1M' \
	-c 'write -P 0x12 123456512 64k' "$q"
qio "qcow2 (cache=none): read back with pattern checks" -t none -f qcow2 \
	-c 'read -P 0xab 0 1M' -c 'read -P 0xcd 1G 4M' -c 'read -P 0xef 4095M 1M' \
	-c 'read -P 0x12 123456512 64k' -c 'read -P 0 2G 1M' "$q"
qio "qcow2 (writeback): read back too" -f qcow2 -c 'read -P 0xcd 1G 4M' "$q"
out="$(qemu-io -t none -f qcow2 -c 'read -P 0x99 0 1M' "$q" 2>&1)"
check "a wrong pattern is detected (the check itself works)" grep -q "verification failed" <<<"$out"
check "qemu-img check is clean" qemu-img check -q "$q"
check "internal snapshot create" qemu-img snapshot -c snap1 "$q"
qio "write after the snapshot" -t none -f qcow2 -c 'write -P 0x55 0 1M' "$q"
check "snapshot listed" grep -q snap1 <<<"$(qemu-img snapshot -l "$q")"
check "revert to the snapshot" qemu-img snapshot -a snap1 "$q"
qio "reverted data is the old pattern" -t none -f qcow2 -c 'read -P 0xab 0 1M' -c 'read -P 0xcd 1G 4M' "$q"
o="$M/overlay.qcow2"
check "external overlay on the image" qemu-img create -q -f qcow2 -b "$q" -F qcow2 "$o"
qio "write to the overlay" -t none -f qcow2 -c 'write -P 0x66 1G 1M' "$o"
qio "overlay reads its own and the base's data" -f qcow2 \
	-c 'read -P 0x66 1G 1M' -c 'read -P 0xcd 1025M 3M' -c 'read -P 0xab 0 1M' "$o"
qio "the base is unchanged under the overlay" -f qcow2 -c 'read -P 0xcd 1G 4M' "$q"
check "qemu-img check of the overlay" qemu-img check -q "$o"

# --- raw, 64 GiB sparse -----------------------------------------------------------------
r="$M/disk.raw"
check "truncate -s 64G" truncate -s 64G "$r"
check "raw image is 64 GiB" test "$(stat -c %s "$r")" -eq $((64 << 30))
end1m=$(((64 << 30) - (1 << 20)))
qio "raw (writeback): scattered writes" -f raw \
	-c 'write -P 0x11 0 64k' -c 'write -P 0x22 17G 1M' -c 'write -P 0x33 40000M 512k' \
	-c "write -P 0x44 $end1m 1M" -c 'write -P 0x55 33333333248 4k' "$r"
qio "raw (cache=none): more writes" -t none -f raw -c 'write -P 0x66 50G 2M' -c 'write -P 0x77 7G 64k' "$r"
qio "raw: read back with pattern checks" -f raw \
	-c 'read -P 0x11 0 64k' -c 'read -P 0x22 17G 1M' -c 'read -P 0x33 40000M 512k' \
	-c "read -P 0x44 $end1m 1M" -c 'read -P 0x55 33333333248 4k' -c 'read -P 0x66 50G 2M' \
	-c 'read -P 0x77 7G 64k' -c 'read -P 0 30G 1M' -c 'read -P 0 64k 960k' "$r"
used_kib=$(du -k "$r" | cut -f1)
echo "# 64 GiB raw image occupies $used_kib KiB"
check "raw image stays sparse (< 64 MiB allocated)" test "$used_kib" -lt $((64 << 10))
check "dd read of a written spot" test "$(dd if="$r" bs=1M skip=$((17 << 10)) count=1 status=none | tr -d '\042' | wc -c)" -eq 0
c="$M/conv.qcow2"
t0=$SECONDS
check "qemu-img convert raw -> qcow2 (skips holes)" qemu-img convert -O qcow2 "$r" "$c"
check "convert was quick ($((SECONDS - t0)) s: holes were skipped)" test $((SECONDS - t0)) -lt 60
check "qemu-img compare: identical" qemu-img compare -q "$r" "$c"

# --- after a remount -------------------------------------------------------------------------
check "unmount" mnt_down "$M"
check "journal clean" journal_clean "$img"
check "remount" mnt_up "$img" "$M" -o host=qemu1
qio "qcow2 data after remount" -t none -f qcow2 -c 'read -P 0xab 0 1M' -c 'read -P 0xcd 1G 4M' "$q"
qio "raw data after remount" -f raw -c 'read -P 0x22 17G 1M' -c "read -P 0x44 $end1m 1M" -c 'read -P 0x66 50G 2M' "$r"
check "qemu-img check after remount" qemu-img check -q "$q"
check "unmount again" mnt_down "$M"
finish
