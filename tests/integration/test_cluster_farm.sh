#!/bin/bash
# Three hosts (real FUSE mounts of one image file) create, rename and unlink
# in shared directories at the same time. Afterwards every host lists the
# same tree (names, types and sizes), which is also exactly the tree the
# workloads say they left; a file written on one host reads back with the
# same checksum on the others; every host unmounts cleanly and fsck is clean.
# scripts/farm.sh starts and stops the farm; the cleanup stops it also when
# a check fails.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/cluster/farm_lib.sh"
mnt_require_fuse

N=3
OPS=200
img="$T/vol.img"
check "mkfs with farm timing" farm_mkfs "$img" 4G
check "farm of $N hosts starts" farm_up $N "$img"

"$B/lunfs" hosts --json "$img" >"$T/h.json"
check "hosts: $N live slots, distinct, named h1..h$N" python3 -c '
import json, sys
j = json.load(open(sys.argv[1])); n = int(sys.argv[2])
live = [h for h in j["hosts"] if h["recorded"] == "live" and h["observed"] == "live"]
sys.exit(0 if sorted(h["name"] for h in live) == ["h%d" % i for i in range(1, n + 1)]
         and len({h["slot"] for h in live}) == n else 1)' "$T/h.json" $N
check "farm status runs" "$FARM" status "$F"

# --- shared directories, made on h1, seen everywhere ----------------------------------
mkdir -p "$F/h1/shared/a" "$F/h1/shared/b" "$F/h1/shared/c" "$F/h1/shared/d"
for h in h2 h3; do
	check "$h sees the shared directories made on h1" test -d "$F/$h/shared/d"
done

# workload HOST: OPS creates (distinct names, all four dirs), every 4th file
# renamed into another dir, every 5th unlinked. Writes the names it leaves
# (with sizes) to $T/expect.HOST and its errors to $T/err.HOST.
workload() {
	local h="$1" m="$F/$1/shared" i d d2 f dirs=(a b c d) err=0
	: >"$T/expect.$h"
	for ((i = 0; i < OPS; i++)); do
		d=${dirs[i % 4]}
		f="$h-$i"
		if ! printf '%s %d\n' "$f" "$i" >"$m/$d/$f"; then
			echo "create $d/$f" >>"$T/err.$h"; err=1; continue
		fi
		if ((i % 4 == 1)); then
			d2=${dirs[(i + 1) % 4]}
			if mv "$m/$d/$f" "$m/$d2/$f.mv"; then
				d=$d2 f="$f.mv"
			else
				echo "rename $d/$f" >>"$T/err.$h"; err=1
			fi
		fi
		if ((i % 5 == 2)); then
			if rm "$m/$d/$f"; then
				continue
			fi
			echo "unlink $d/$f" >>"$T/err.$h"; err=1
		fi
		echo "shared/$d/$f f $(stat -c %s "$m/$d/$f" 2>/dev/null)" >>"$T/expect.$h"
	done
	return $err
}

pids=()
for ((k = 1; k <= N; k++)); do
	workload "h$k" 2>>"$T/err.h$k" &
	pids+=($!)
	on_exit "kill -9 $! 2>/dev/null"
done
for ((k = 1; k <= N; k++)); do
	check "h$k: $OPS creates/renames/unlinks without an error" wait "${pids[k - 1]}"
	[[ -s $T/err.h$k ]] && sed 's/^/#   failed: /' "$T/err.h$k" | head -n 5
done

# --- every host agrees, and agrees with the workloads -------------------------------
{
	echo "shared d -"
	for d in a b c d; do echo "shared/$d d -"; done
	cat "$T"/expect.h*
} | sort >"$T/expect"
for ((k = 1; k <= N; k++)); do
	cl tree "$F/h$k" | grep -v '^lost+found' >"$T/tree.h$k"
done
for ((k = 2; k <= N; k++)); do
	check "h$k lists the same tree as h1 (names, types, sizes)" cmp -s "$T/tree.h1" "$T/tree.h$k"
	cmp -s "$T/tree.h1" "$T/tree.h$k" || diff "$T/tree.h1" "$T/tree.h$k" | head -n 10 | sed 's/^/#   /'
done
check "the tree is what the workloads left ($(($(wc -l <"$T/expect") - 5)) files)" cmp -s "$T/expect" "$T/tree.h1"
cmp -s "$T/expect" "$T/tree.h1" || diff "$T/expect" "$T/tree.h1" | head -n 10 | sed 's/^/#   /'

# Every host reads every file's content as written (not only its size).
check "h3 reads the content written by h1 and h2" bash -c '
	for f in "$1"/shared/*/h[12]-*; do
		n=${f##*/}; n=${n%.mv}; i=${n#h?-}
		[[ $(cat "$f" 2>&1) == "${n} ${i}" ]] || { echo "# $f: $(cat "$f" 2>&1)"; exit 1; }
	done' _ "$F/h3"

# --- data written on h1 reads the same on h2 and h3 ----------------------------------
dd if=/dev/urandom of="$F/h1/blob" bs=1M count=24 status=none
sync "$F/h1/blob"
sum1="$(sha256sum <"$F/h1/blob" | cut -d' ' -f1)"
for h in h2 h3; do
	check "$h reads h1's 24 MiB file with the same checksum" \
		same "$(sha256sum "$F/$h/blob" 2>/dev/null | cut -d' ' -f1)" "$sum1"
done
# ...and after h2 rewrites a piece of it, h1 and h3 see the new bytes.
dd if=/dev/urandom of="$F/h2/blob" bs=64K seek=100 count=3 conv=notrunc,nocreat status=none 2>/dev/null
sync "$F/h2/blob" 2>/dev/null
sum2="$(sha256sum "$F/h2/blob" 2>/dev/null | cut -d' ' -f1)"
sum2="${sum2:-h2-could-not-read-it}"
for h in h1 h3; do
	check "$h sees h2's rewrite (no stale cached data)" \
		same "$(sha256sum "$F/$h/blob" 2>/dev/null | cut -d' ' -f1)" "$sum2"
done

# --- teardown ------------------------------------------------------------------------
check "every host unmounts cleanly" farm_down
check "no mount of the farm is left" bash -c "! grep -qF ' $F/' /proc/self/mounts"
check "journals clean after the unmounts" journal_clean "$img"
check "fsck is clean" fsck_clean "$img"
finish
