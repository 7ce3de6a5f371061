#!/bin/bash
# POSIX conformance of a FUSE-mounted lunfs volume: builds
# tests/integration/posix/posix_check.c with cc and runs it in a directory
# of the mount (error numbers, rename edge cases, link counts, permissions
# as uid 65534, xattrs, fallocate, seek, O_DIRECT, 10k-entry readdir...).
# Its checks are counted like the rest; the volume must still unmount
# cleanly and remount with the tree intact afterwards.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
mnt_require_fuse

here="$(cd "$(dirname "$0")" && pwd)"
check "build posix_check" cc -O1 -g -Wall -o "$T/posix_check" "$here/posix/posix_check.c"

img="$T/vol.img"
M="$T/mnt"
# The unprivileged checks need to reach the mount point.
chmod 0755 "$T"
check "mkfs 2 GiB" "$B/mkfs.lunfs" -q -L posix -s 2G "$img"
check "mount" mnt_up "$img" "$M" -o host=posix1
mkdir -p "$M/work"
"$T/posix_check" "$M/work" >"$T/posix.out" 2>&1
rc=$?
grep -E '^(ok|FAIL) - ' "$T/posix.out"
summary="$(tail -1 "$T/posix.out")"
echo "# posix_check: $summary"
np=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$summary")
nf=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$summary")
if [[ -z $np ]]; then
	fail "posix_check did not finish (exit $rc)"
	tail -5 "$T/posix.out"
else
	_passed=$((_passed + np))
	_failed=$((_failed + nf))
fi
check "daemon still serving" mountpoint -q "$M"
check "unmount" mnt_down "$M"
check "journal clean" journal_clean "$img"
check "remount" mnt_up "$img" "$M" -o host=posix1
check "half of the big directory survives" test "$(ls "$M/work/big" | wc -l)" -eq 5000
check "the fifo survives" test -p "$M/work/fifo"
check "unmount again" mnt_down "$M"
finish
