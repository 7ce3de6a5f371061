#!/bin/bash
# Snapshots and clones on one FUSE mount (docs/USER_GUIDE.md "Snapshots
# and clones"): the `lunfs snapshot|clone|du|df` workflow on a VM image
# (checksums before and after, reverts both ways, deletes, EBUSY while the
# image is open, --json output parsed), `cp --reflink=auto` and
# copy_file_range sharing blocks, qemu-img internal snapshots and an
# external backing chain (when qemu-img is installed), a 64 GiB sparse
# image with 4 GiB written (the snapshot's time is printed, never
# asserted), a remount, and fsck clean at the end.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
mnt_require_fuse

img="$T/vol.img"
M="$T/mnt"
L="$B/lunfs"

md5() { md5sum "$1" | cut -d' ' -f1; }
# now_ms: a wall clock for printed timings.
now_ms() { date +%s%3N; }
# jget JSON EXPR: a value out of a JSON document (python3 is in deps.sh).
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print($2)" <<<"$1"; }

check "mkfs 24 GiB" "$B/mkfs.lunfs" -q -L snap -s 24G "$img"
check "mount" mnt_up "$img" "$M" -o host=snap1

# --- the CLI workflow on a raw image ------------------------------------------------
vm="$M/vm1.img"
head -c $((64 << 20)) /dev/urandom >"$T/rand"
check "write a 64 MiB image" cp "$T/rand" "$vm"
sum0="$(md5 "$vm")"
check "snapshot create" "$L" snapshot create "$vm" before-upgrade
expect_exit 1 "the same name again is refused" "$L" snapshot create "$vm" before-upgrade
expect_exit 2 "a name with a slash is a usage error" "$L" snapshot create "$vm" a/b
dd if=/dev/zero of="$vm" bs=1M count=3 seek=10 conv=notrunc status=none
printf 'grown' >>"$vm"
sum1="$(md5 "$vm")"
check "the image changed" test "$sum1" != "$sum0"
snapdir="$M/$(jget "$("$L" snapshot list --json "$vm")" 'd["directory"].split("/mnt/",1)[1]')"
check "the snapshot reads as before, by path" test "$(md5 "$snapdir/before-upgrade")" = "$sum0"
check "snapshots are read-only" bash -c "! echo x 2>/dev/null >'$snapdir/before-upgrade'"
check "snapshot create after the writes" "$L" snapshot create "$vm" after
out="$("$L" snapshot list --json "$vm")"
check "list: two snapshots, ids 1 and 2" test "$(jget "$out" '[s["id"] for s in d["snapshots"]]')" = "[1, 2]"
check "list: the first owns the 3 MiB the image rewrote" \
	test "$(jget "$out" 'd["snapshots"][0]["owns_bytes"]')" = $((3 << 20))
"$L" snapshot list "$vm"
check "revert to the first" "$L" snapshot revert "$vm" before-upgrade
check "the image is the first snapshot again" test "$(md5 "$vm")" = "$sum0"
check "revert to the second" "$L" snapshot revert "$vm" after
check "the image is the second snapshot again" test "$(md5 "$vm")" = "$sum1"
exec 7<"$vm"
expect_exit 1 "revert refused while the image is open" "$L" snapshot revert "$vm" before-upgrade
exec 7<&-
owns="$(jget "$("$L" snapshot list --json "$vm")" '[s["owns_bytes"] for s in d["snapshots"] if s["name"] == "before-upgrade"][0]')"
used0="$(jget "$("$L" df --json "$M")" 'd["volumes"][0]["used"]')"
check "snapshot delete" "$L" snapshot delete "$vm" before-upgrade
used1="$(jget "$("$L" df --json "$M")" 'd["volumes"][0]["used"]')"
check "delete freed exactly what the snapshot owned ($owns bytes; it had been read by path)" \
	test $((used0 - used1)) -eq "$owns" -a "$owns" -gt 0
expect_exit 1 "a deleted snapshot cannot be reverted to" "$L" snapshot revert "$vm" before-upgrade
check "the other snapshot is intact" test "$(md5 "$snapdir/after")" = "$sum1"

# --- clones, du, df ------------------------------------------------------------------
used0="$(jget "$("$L" df --json "$M")" 'd["volumes"][0]["used"]')"
check "clone" "$L" clone "$vm" "$M/vm2.img"
expect_exit 1 "clone onto an existing file is refused" "$L" clone "$vm" "$M/vm2.img"
check "the clone reads as the image" test "$(md5 "$M/vm2.img")" = "$sum1"
used1="$(jget "$("$L" df --json "$M")" 'd["volumes"][0]["used"]')"
check "df: a clone takes no block (shared blocks count once)" test "$used1" = "$used0"
dd if=/dev/urandom of="$M/vm2.img" bs=1M count=2 seek=1 conv=notrunc status=none
check "writing the clone leaves the image alone" test "$(md5 "$vm")" = "$sum1"
out="$("$L" du --json "$vm" "$M/vm2.img")"
check "du: the clone owns the 2 MiB it wrote" test "$(jget "$out" 'd["files"][1]["owns_bytes"]')" = $((2 << 20))
check "du: the image shares the rest" test "$(jget "$out" 'd["files"][0]["owns_bytes"]')" = 0
"$L" du "$M"
"$L" df "$M"

# --- cp --reflink / copy_file_range ------------------------------------------------------
big="$M/big.img"
check "a 1 GiB image (O_DIRECT writes)" dd if=/dev/urandom of="$big" bs=4M count=256 oflag=direct status=none
used0="$(jget "$("$L" df --json "$M")" 'd["volumes"][0]["used"]')"
t0=$(now_ms)
check "cp --reflink=auto of 1 GiB" cp --reflink=auto "$big" "$M/big-copy.img"
echo "# cp --reflink=auto of a 1 GiB image: $(($(now_ms) - t0)) ms"
used1="$(jget "$("$L" df --json "$M")" 'd["volumes"][0]["used"]')"
check "cp shared the blocks (no space used)" test "$used1" = "$used0"
check "the copy reads the same" cmp -s "$big" "$M/big-copy.img"
python3 - "$big" "$M/part.img" <<'EOF'
import os, sys
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_RDWR | os.O_CREAT, 0o644)
# Aligned to blocks in the middle, unaligned at both ends.
n = os.copy_file_range(src, dst, (8 << 20) + 1000, 12345, (1 << 20) + 12345)
sys.exit(0 if n == (8 << 20) + 1000 else 1)
EOF
check "copy_file_range with unaligned ends" test $? -eq 0
check "the copied range matches" cmp -s <(tail -c +$((12345 + 1)) "$big" | head -c $(((8 << 20) + 1000))) \
	<(tail -c +$(((1 << 20) + 12345 + 1)) "$M/part.img")
rm -f "$M/big-copy.img" "$M/part.img"

# --- QEMU: internal snapshots, an external backing chain ------------------------------
if command -v qemu-img >/dev/null && command -v qemu-io >/dev/null; then
	base="$M/base.qcow2"
	check "qcow2 base" qemu-img create -q -f qcow2 "$base" 2G
	check "write the base" qemu-io -t none -f qcow2 -c 'write -P 0xab 0 4M' -c 'write -P 0xcd 1G 4M' "$base"
	check "qemu-img internal snapshot" qemu-img snapshot -c qs1 "$base"
	check "write after it" qemu-io -t none -f qcow2 -c 'write -P 0x11 0 4M' "$base"
	check "qemu-img revert" qemu-img snapshot -a qs1 "$base"
	check "the old data is back" qemu-io -f qcow2 -c 'read -P 0xab 0 4M' "$base"
	check "qemu-img check" qemu-img check -q "$base"
	vmq="$M/vm1.qcow2"
	check "external overlay (backing chain)" qemu-img create -q -f qcow2 -b "$base" -F qcow2 "$vmq"
	check "write the overlay" qemu-io -t none -f qcow2 -c 'write -P 0x66 1G 1M' "$vmq"
	check "the overlay reads its data and the base's" qemu-io -f qcow2 \
		-c 'read -P 0x66 1G 1M' -c 'read -P 0xcd 1025M 3M' -c 'read -P 0xab 0 4M' "$vmq"
	check "lunfs snapshot of the overlay" "$L" snapshot create "$vmq" qcow-snap
	check "write the overlay again" qemu-io -t none -f qcow2 -c 'write -P 0x77 1G 1M' "$vmq"
	check "lunfs revert of the overlay" "$L" snapshot revert "$vmq" qcow-snap
	check "the overlay has its old data" qemu-io -f qcow2 -c 'read -P 0x66 1G 1M' "$vmq"
	check "qemu-img check of the reverted overlay" qemu-img check -q "$vmq"
	check "lunfs clone of the base is a working qcow2" "$L" clone "$base" "$M/base2.qcow2"
	check "the clone reads the base's data" qemu-io -f qcow2 -c 'read -P 0xcd 1G 4M' "$M/base2.qcow2"
else
	echo "# qemu-img/qemu-io not installed: the QEMU part is skipped (scripts/deps.sh)"
fi

# --- a 64 GiB sparse image with 4 GiB written -----------------------------------------
sp="$M/sparse64.img"
check "64 GiB sparse image" truncate -s 64G "$sp"
head -c $((64 << 20)) /dev/urandom >"$T/chunk"
for o in 0 16 32 48; do
	for k in $(seq 0 15); do
		dd if="$T/chunk" of="$sp" bs=4M count=16 seek=$(((o * 1024 + k * 64) / 4)) conv=notrunc \
			oflag=direct status=none || fail "write at ${o} GiB + $((k * 64)) MiB"
	done
done
rm -f "$T/chunk"
check "4 GiB of it written" test "$(jget "$("$L" du --json "$sp")" 'd["files"][0]["owns_bytes"]')" = $((4 << 30))
t0=$(now_ms)
check "snapshot of the 64 GiB sparse image" "$L" snapshot create "$sp" s1
echo "# snapshot of a 64 GiB sparse image with 4 GiB written: $(($(now_ms) - t0)) ms (lunfs command included)"
t0=$(now_ms)
check "clone of it" "$L" clone "$sp" "$M/sparse64-clone.img"
echo "# clone of it: $(($(now_ms) - t0)) ms"
check "snapshot delete" "$L" snapshot delete "$sp" s1
check "clone removed" rm "$M/sparse64-clone.img"

# --- remount, fsck ------------------------------------------------------------------------
check "unmount" mnt_down "$M"
check "fsck clean (refcounts included)" "$B/fsck.lunfs" -n "$img"
check "mount again, with discard" mnt_up "$img" "$M" -o host=snap1,discard
check "the image after remount" test "$(md5 "$vm")" = "$sum1"
check "its snapshot after remount" test "$(md5 "$snapdir/after")" = "$sum1"
check "the clone after remount" test "$(md5 "$M/vm2.img")" != "$sum1"
# -o discard: what a delete frees goes back to the image file's own file
# system too (the device's discard is a hole punched in the image file).
alloc_kib() { du -k "$img" | cut -f1; }
dd if=/dev/urandom of="$M/scratch.img" bs=1M count=64 status=none && sync "$M/scratch.img"
k_full=$(alloc_kib)
rm "$M/scratch.img" && sync -f "$M"
gave_back() {
	local i
	for ((i = 0; i < 50; i++)); do
		(($(alloc_kib) <= k_full - 48 * 1024)) && return 0
		sleep 0.1
	done
	return 1
}
check "a deleted 64 MiB file is discarded: the image file shrinks by it" gave_back
echo "# image file allocation: $k_full KiB with the file, $(alloc_kib) KiB after rm (discard)"
check "unmount again" mnt_down "$M"
check "fsck still clean" "$B/fsck.lunfs" -n "$img"
finish
