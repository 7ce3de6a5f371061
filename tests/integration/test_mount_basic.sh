#!/bin/bash
# lunfs mount end to end on a real FUSE mount: files, directories, rename,
# hard and symbolic links, xattrs, sizes, df, a 1 GiB O_DIRECT stream with
# a checksum, unmount and remount (everything persists, journal clean),
# mount -t lunfs through mount.lunfs, SIGTERM (exit 0, journal clean),
# read-only mounts, and clear failures (not a volume, bad option).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
mnt_require_fuse

img="$T/vol.img"
M="$T/mnt"
check "mkfs 4 GiB" "$B/mkfs.lunfs" -q -L basic -s 4G "$img"

# --- mount ------------------------------------------------------------------
check "lunfs mount returns with the mount in place" mnt_up "$img" "$M" -o host=basic1
check "mount type is fuse.lunfs" test "$(findmnt -n -o FSTYPE "$M")" = fuse.lunfs
check "source is the device" test "$(findmnt -n -o SOURCE "$M")" = "$(realpath "$img")"
opts="$(findmnt -n -o OPTIONS "$M")"
check "allow_other is on" grep -q allow_other <<<"$opts"
check "default_permissions is on" grep -q default_permissions <<<"$opts"
check "daemon found by its mount point" test -n "$(mnt_pid_of "$M")"

# --- files ------------------------------------------------------------------
echo hello >"$M/a"
check "write then read a small file" test "$(cat "$M/a")" = hello
echo world >>"$M/a"
check "append" test "$(cat "$M/a")" = "$(printf 'hello\nworld')"
check "stat size" test "$(stat -c %s "$M/a")" -eq 12
printf 'x%.0s' $(seq 1 5000) >"$M/b"
check "5000-byte file" test "$(stat -c %s "$M/b")" -eq 5000
truncate -s 100000 "$M/b"
check "truncate up: size" test "$(stat -c %s "$M/b")" -eq 100000
check "truncate up: tail reads as zeros" test "$(tail -c 95000 "$M/b" | tr -d '\0' | wc -c)" -eq 0
truncate -s 10 "$M/b"
check "truncate down" test "$(cat "$M/b")" = xxxxxxxxxx
dd if=/dev/urandom of="$T/rand" bs=1K count=777 status=none
cp "$T/rand" "$M/rand"
check "copy of 777 KiB is identical" cmp -s "$T/rand" "$M/rand"
check "overwrite in the middle" dd if=/dev/zero of="$M/rand" bs=1K seek=100 count=10 conv=notrunc status=none
dd if=/dev/zero of="$T/rand" bs=1K seek=100 count=10 conv=notrunc status=none
check "overwrite reads back" cmp -s "$T/rand" "$M/rand"

# --- directories and names ---------------------------------------------------
check "mkdir -p" mkdir -p "$M/d1/d2/d3"
for i in $(seq 1 200); do echo "$i" >"$M/d1/f$i"; done
check "200 files listed" test "$(ls "$M/d1" | wc -l)" -eq 201
check "directory nlink counts subdirs" test "$(stat -c %h "$M/d1")" -eq 3
check "rename a file" mv "$M/d1/f1" "$M/d1/g1"
check "renamed file has its content" test "$(cat "$M/d1/g1")" = 1
check "old name is gone" test ! -e "$M/d1/f1"
check "rename a directory across directories" mv "$M/d1/d2" "$M/d2moved"
check "its subtree moved along" test -d "$M/d2moved/d3"
check "rename over an existing file" mv -f "$M/d1/f2" "$M/d1/f3"
check "replaced content" test "$(cat "$M/d1/f3")" = 2
check "rmdir of a non-empty dir fails" test ! "$(rmdir "$M/d2moved" 2>/dev/null && echo removed)"
check "rm -r" rm -r "$M/d2moved"
check "gone after rm -r" test ! -e "$M/d2moved"

# --- links ---------------------------------------------------------------------
check "hard link" ln "$M/a" "$M/a.link"
check "link count 2" test "$(stat -c %h "$M/a")" -eq 2
check "same inode" test "$(stat -c %i "$M/a")" = "$(stat -c %i "$M/a.link")"
check "symlink" ln -s a "$M/a.sym"
check "readlink" test "$(readlink "$M/a.sym")" = a
check "read through the symlink" test "$(cat "$M/a.sym")" = "$(cat "$M/a")"
long="$(printf 'p%.0s' $(seq 1 1000))"
check "long symlink target" ln -s "$long" "$M/long.sym"
check "long readlink" test "$(readlink "$M/long.sym")" = "$long"
rm "$M/a.link"
check "unlink drops the count" test "$(stat -c %h "$M/a")" -eq 1

# --- xattrs ---------------------------------------------------------------------
check "setfattr user.k" setfattr -n user.k -v v1 "$M/a"
check "getfattr user.k" test "$(getfattr --only-values -n user.k "$M/a" 2>/dev/null)" = v1
check "setfattr trusted.t" setfattr -n trusted.t -v tv "$M/a"
check "list shows both" test "$(getfattr -m - -d "$M/a" 2>/dev/null | grep -c '^[a-z]')" -eq 2
check "removexattr" setfattr -x user.k "$M/a"
check "removed attr is gone" test ! "$(getfattr --only-values -n user.k "$M/a" 2>/dev/null)"
check "xattr on a directory" setfattr -n user.dir -v yes "$M/d1"

# --- df -------------------------------------------------------------------------
size_b=$(df -B1 --output=size "$M" | tail -1)
avail0=$(df -B1 --output=avail "$M" | tail -1)
echo "# df: size $size_b, avail $avail0"
check "df size is close to 4 GiB" test "$size_b" -gt $((3 << 30)) -a "$size_b" -le $((4 << 30))

# --- 1 GiB sequential O_DIRECT ---------------------------------------------------
# Incompressible data, fast: AES-CTR over zeros (urandom as a fallback).
stream() {
	if command -v openssl >/dev/null; then
		openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:lunfs </dev/zero 2>/dev/null
	else
		cat /dev/urandom
	fi
}
t0=$SECONDS
stream | dd bs=1M count=1024 status=none iflag=fullblock |
	tee >(sha256sum | cut -d' ' -f1 >"$T/big.sum") |
	dd of="$M/big" bs=1M oflag=direct iflag=fullblock status=none
rc=$?
echo "# 1 GiB written with oflag=direct in $((SECONDS - t0)) s"
sleep 0.2
check "1 GiB dd oflag=direct" test "$rc" -eq 0
check "1 GiB size" test "$(stat -c %s "$M/big")" -eq $((1 << 30))
sum_direct="$(dd if="$M/big" bs=1M iflag=direct status=none | sha256sum | cut -d' ' -f1)"
check "1 GiB reads back (iflag=direct) with the same checksum" test "$sum_direct" = "$(cat "$T/big.sum")"
sum_cached="$(sha256sum <"$M/big" | cut -d' ' -f1)"
check "1 GiB reads back (page cache) with the same checksum" test "$sum_cached" = "$(cat "$T/big.sum")"
avail1=$(df -B1 --output=avail "$M" | tail -1)
check "df: 1 GiB of space went" test $((avail0 - avail1)) -ge $((1000 << 20))
sync

# --- unmount, remount, persistence ----------------------------------------------
ino_a=$(stat -c %i "$M/a")
check "unmount with fusermount3 -u" mnt_down "$M"
check "journal clean after unmount" journal_clean "$img"
check "remount" mnt_up "$img" "$M" -o host=basic1
check "small file persists" test "$(cat "$M/a")" = "$(printf 'hello\nworld')"
check "inode number persists" test "$(stat -c %i "$M/a")" = "$ino_a"
check "777 KiB file persists" cmp -s "$T/rand" "$M/rand"
check "renames persist" test -f "$M/d1/g1" -a ! -e "$M/d1/f1" -a ! -e "$M/d2moved"
check "symlink persists" test "$(readlink "$M/a.sym")" = a
check "trusted xattr persists" test "$(getfattr --only-values -n trusted.t "$M/a" 2>/dev/null)" = tv
check "1 GiB checksum persists" test "$(sha256sum <"$M/big" | cut -d' ' -f1)" = "$(cat "$T/big.sum")"
check "rm of the 1 GiB file" rm "$M/big"
avail2=$(df -B1 --output=avail "$M" | tail -1)
check "df: its space came back" test $((avail2 - avail1)) -ge $((1000 << 20))
check "unmount again" mnt_down "$M"

# --- mount -t lunfs (mount.lunfs) --------------------------------------------------
helper=""
if [[ ! -e /sbin/mount.lunfs ]]; then
	install -m 0755 "$B/mount.lunfs" /sbin/mount.lunfs && helper=/sbin/mount.lunfs
	on_exit rm -f /sbin/mount.lunfs
fi
if [[ -n $helper ]]; then
	on_exit _mnt_cleanup "$M"
	check "mount -t lunfs" mount -t lunfs -o host=basic2,noatime "$img" "$M"
	check "mounted by mount(8)" mnt_wait "$M" up
	check "mount(8) passed noatime" grep -q noatime <<<"$(findmnt -n -o OPTIONS "$M")"
	check "content visible" test "$(cat "$M/a")" = "$(printf 'hello\nworld')"
	pid=$(mnt_pid_of "$M")
	check "umount" umount "$M"
	check "daemon exits after umount" mnt_pid_wait "${pid:-0}"
	check "journal clean after umount" journal_clean "$img"
else
	echo "# /sbin/mount.lunfs exists already: calling build/mount.lunfs directly"
fi
expect_exit 1 "mount.lunfs without a mount point" "$B/mount.lunfs" "$img" 2>/dev/null
expect_exit 0 "mount.lunfs -f (fake) checks options only" "$B/mount.lunfs" -f "$img" "$M" -o ro
check "fake mounted nothing" test ! "$(mountpoint -q "$M" && echo mounted)"
on_exit _mnt_cleanup "$M"
check "mount.lunfs called directly" "$B/mount.lunfs" "$img" "$M" -o host=basic3,rw
check "mounted by mount.lunfs" mnt_wait "$M" up
check "unmount it" mnt_down "$M"

# --- SIGTERM -------------------------------------------------------------------------
check "mount in the foreground" mnt_up_fg "$img" "$M" "$T/fg.log" -o host=basic4
echo during >"$M/sigterm"
check "journal dirty while mounted" test ! "$(journal_clean "$img" && echo clean)"
kill -TERM "$MNT_PID"
rc=0
wait "$MNT_PID" || rc=$?
check "SIGTERM: the daemon exits 0" test "$rc" -eq 0
check "SIGTERM: the mount is gone" mnt_wait "$M" down
check "SIGTERM: journal clean" journal_clean "$img"
check "SIGTERM: logged a clean unmount" grep -q "unmounted cleanly" "$T/fg.log"
check "remount after SIGTERM" mnt_up "$img" "$M" -o host=basic4
check "file written before SIGTERM persists" test "$(cat "$M/sigterm")" = during
check "unmount" mnt_down "$M"

# --- read-only -------------------------------------------------------------------------
check "mount -o ro" mnt_up "$img" "$M" -o ro,host=basic5
check "ro: read works" test "$(cat "$M/a")" = "$(printf 'hello\nworld')"
check "ro: create fails" test ! "$(touch "$M/new" 2>/dev/null && echo created)"
touch "$M/new" 2>"$T/ro.err"
check "ro: error says read-only" grep -qi "read-only" "$T/ro.err"
check "unmount ro" mnt_down "$M"

# --- failures ------------------------------------------------------------------------------
head -c 64M /dev/zero >"$T/zeros.img"
expect_exit 1 "not a lunfs volume: exit 1" "$B/lunfs" mount "$T/zeros.img" "$M" 2>"$T/err"
check "not a lunfs volume: says why" grep -qi "cannot mount" "$T/err"
check "not a lunfs volume: nothing mounted" test ! "$(mountpoint -q "$M" && echo mounted)"
expect_exit 1 "missing device: exit 1" "$B/lunfs" mount "$T/none.img" "$M" 2>/dev/null
expect_exit 1 "missing mount point: exit 1" "$B/lunfs" mount "$img" "$T/nodir" 2>/dev/null
expect_exit 2 "bad commit= value: exit 2" "$B/lunfs" mount -o commit=abc "$img" "$M" 2>/dev/null
expect_exit 2 "unknown FUSE option: exit 2" "$B/lunfs" mount -o frobnicate "$img" "$M" 2>/dev/null
check "bad options mounted nothing" test ! "$(mountpoint -q "$M" && echo mounted)"
expect_exit 2 "lunfs mount without arguments" "$B/lunfs" mount 2>/dev/null
check "volume still clean after the failures" journal_clean "$img"

finish
