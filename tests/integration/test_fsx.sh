#!/bin/bash
# File-operation exerciser on a FUSE-mounted lunfs volume, in the spirit of
# xfstests' fsx: tests/integration/fsx/lunfs_fsx.c drives one file at a
# time with seeded random pwrite/pread/mmap/truncate/fallocate (every
# mode)/punch/zero-range/copy_file_range/fsync/reopen against an in-memory
# model and checks every read. Runs (seeds fixed and printed, so a failure
# replays with the same command line):
#   3 seeds x 20000 ops buffered; 1 x 10000 ops O_DIRECT (-Z);
#   1 x 10000 ops with a buffered and an O_DIRECT descriptor on the same
#   file (page cache / direct I/O coherence); 1 x 3000 ops on a sparse file
#   with offsets up to 64 GiB, 1 x 2000 ops up to 64 TiB.
# Each run saves its final expected content (-W, holes as holes) on
# /dev/shm; after an unmount, fsck.lunfs must find the volume clean, and
# after a remount every file must still match its saved model: cmp for the
# 16 MiB files, lunfs_fsx -V (model pages plus sampled holes, through a
# buffered and an O_DIRECT descriptor) for all of them.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
mnt_require_fuse

here="$(cd "$(dirname "$0")" && pwd)"
fsx="$T/lunfs_fsx"
check "build lunfs_fsx" cc -O2 -std=c11 -D_GNU_SOURCE -o "$fsx" "$here/fsx/lunfs_fsx.c"
[[ -x $fsx ]] || { finish; exit 1; }

img="$T/vol.img"
M="$T/mnt"
check "mkfs 8 GiB sparse, 8 hosts" "$B/mkfs.lunfs" -q -H 8 -s 8G "$img"
check "mount" mnt_up "$img" "$M" -o host=fsx1
mountpoint -q "$M" || { finish; exit 1; }

saved=()	# "name" of each file whose model was saved as $T/NAME.model

# fsx_start NAME ARGS...: start one lunfs_fsx run on $M/NAME in the
# background, output in $T/NAME.out, at most 300 s (a hang in the daemon
# must fail the test, not stall it). fsx_wait NAME: its result; on failure
# the tail of its output (the first bad offset and the op log).
declare -A fsx_pid fsx_args fsx_running
_fsx_cleanup() {
	local name
	for name in "${!fsx_running[@]}"; do
		kill "${fsx_pid[$name]}"
	done
}
on_exit _fsx_cleanup

fsx_start() {
	local name="$1"
	shift
	echo "# lunfs_fsx $* $name"
	timeout -k 10 300 "$fsx" "$@" "$M/$name" >"$T/$name.out" 2>&1 &
	fsx_pid[$name]=$!
	fsx_args[$name]="$*"
	fsx_running[$name]=1
}

fsx_wait() {
	local name="$1" rc=0
	wait "${fsx_pid[$name]}" || rc=$?
	unset "fsx_running[$name]"
	grep -E '^(# |lunfs_fsx: seed .*passed)' "$T/$name.out"
	if [[ $rc -eq 0 ]]; then
		pass "fsx $name (${fsx_args[$name]})"
		[[ ${fsx_args[$name]} == *-W* ]] && saved+=("$name")
	elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
		fail "fsx $name (${fsx_args[$name]}): timed out after 300 s"
		tail -n 5 "$T/$name.out"
	else
		fail "fsx $name (${fsx_args[$name]}): exit $rc"
		tail -n 130 "$T/$name.out"
	fi
	return $rc
}

# run_fsx NAME ARGS...: one run in the foreground.
run_fsx() {
	fsx_start "$@"
	fsx_wait "$1"
}

# The three buffered runs go at once, each on its own file: allocation,
# the journal and the block maps of one volume are shared between them.
# Each file's op sequence is still fixed by its seed; the interleaving is not.
for seed in 1001 1002 1003; do
	fsx_start "buf$seed" -S "$seed" -N 20000 -W "$T/buf$seed.model"
done
for seed in 1001 1002 1003; do
	fsx_wait "buf$seed"
done
run_fsx direct2001 -S 2001 -N 10000 -Z -W "$T/direct2001.model"
run_fsx twofd3001 -S 3001 -N 10000 -2 -W "$T/twofd3001.model"
# A 64 GiB sparse file: each op allocates at most a few 1 MiB blocks, so
# 3000 ops stay far inside the 8 GiB volume. Not cmp'd after the remount
# (that would read up to 64 GiB through FUSE); lunfs_fsx -V checks it.
# Seed 4005 ends with a ~60 GiB file of 113 scattered pages (the sequence
# depends on which ops the probe enables: this is with all of them).
run_fsx sparse4005 -S 4005 -N 3000 -l 64G -W "$T/sparse4005.model"
# Offsets up to 64 TiB: block maps of height 3 and 4 (docs/FORMAT.md 12.1)
# grow and shrink with the truncates. Seed 502 ends near 62 TiB.
run_fsx sparse502 -S 502 -N 2000 -l 64T -W "$T/sparse502.model"

check "daemon still serving" mountpoint -q "$M"
check "unmount" mnt_down "$M"
check "journal clean" journal_clean "$img"
"$B/fsck.lunfs" "$img" >"$T/fsck.out" 2>&1
rc=$?
if [[ $rc -eq 0 ]]; then
	pass "fsck.lunfs clean after the fsx runs"
else
	fail "fsck.lunfs clean after the fsx runs (exit $rc)"
	tail -n 40 "$T/fsck.out"
fi

check "remount" mnt_up "$img" "$M" -o host=fsx1
for name in "${saved[@]}"; do
	if [[ $name != sparse* ]]; then
		check "$name: cmp with its saved model after remount" cmp "$T/$name.model" "$M/$name"
	fi
	check "$name: lunfs_fsx -V after remount" "$fsx" -2 -V "$T/$name.model" "$M/$name"
done
check "unmount again" mnt_down "$M"
finish
