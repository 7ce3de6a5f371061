#!/bin/bash
# Dead and frozen hosts, on a farm of three real FUSE mounts of one image.
#
# 1. kill -9 of h1 while it creates files (fsyncing every 25th) and holds a
#    VM image open for write: nobody gets h1's image or h1's directories
#    before h1 is declared dead (an open on h2 fails with EBUSY, or waits
#    for the recovery: h1 also held the root directory's lock, which a
#    lookup needs); within the dead timeout + 5 s a survivor has recovered
#    h1 (its slot is no longer live at its generation); the image opens for
#    write on h2 with h1's bytes; every file h1 created before its last
#    fsync is there, whole, on h2 and h3, which agree on the directory and
#    can go on using it; fsck clean. (Creates after the last fsync may be
#    lost: they were never committed, as on any journaling filesystem.)
# 2. SIGSTOP of h1 while it writes a file, past the dead timeout: a survivor
#    recovers it, h2 takes the file over and rewrites it; then SIGCONT: h1
#    must fence itself (not live at its old generation; no fsync of its old
#    handle succeeds) and nothing it does after waking changes h2's bytes;
#    it rejoins by itself as a new generation, reads h2's bytes and works
#    again; every host unmounts and fsck is clean.
# The farm is torn down by the cleanup, also when a check fails.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/cluster/farm_lib.sh"
mnt_require_fuse

dead_s=$((FARM_DEAD / 1000))
sum_of() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
sum_rw() {
	python3 -c 'import hashlib, sys
with open(sys.argv[1], "r+b") as f:
    print(hashlib.sha256(f.read()).hexdigest())' "$1" 2>/dev/null
}

# ================= 1. kill -9 in the middle of metadata work ===========================
img="$T/vol.img"
check "mkfs with farm timing" farm_mkfs "$img" 16G
check "farm of 3 hosts starts" farm_up 3 "$img"

dd if=/dev/urandom of="$F/h1/vm1.img" bs=1M count=4 status=none
sync "$F/h1/vm1.img"
sum1="$(sum_of "$F/h1/vm1.img")"
mkdir "$F/h1/work"
sync "$F/h1/work"
check "h1 holds vm1.img open for write" hold rw "$F/h1/vm1.img" HV
# h1's metadata work: create files until it dies (a file's content is its
# name), about 200 a second so that the volume does not fill up; after
# every 25th it fsyncs the file and the directory and notes the number
# outside the volume: everything up to that number is durable.
bg_start CREATOR python3 -c 'import os, sys, time
d, log = sys.argv[1], open(sys.argv[2], "a", buffering=1)
i = 0
try:
    while True:
        fd = os.open("%s/f-%d" % (d, i), os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, b"f-%d\n" % i)
        if i % 25 == 24:
            os.fsync(fd)
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)
            log.write("%d\n" % i)
        os.close(fd)
        i += 1
        time.sleep(0.005)
except OSError:
    pass' "$F/h1/work" "$T/durable"
sleep 1.5
gen1="$(host_gen "$img" h1)"
check "h1 is live (generation ${gen1:-?}) and has fsynced files" test -n "$gen1" -a -s "$T/durable"
check "kill -9 h1 in the middle of its creates" "$FARM" kill "$F" h1
bg_stop "$CREATOR"   # h1's processes die with it
bg_stop "$HV"
last="$(tail -n 1 "$T/durable")"
t0="$(date +%s.%N)"
early="$(timeout $((dead_s + 10)) python3 "$(dirname "$0")/cluster/cluster.py" tryopen "$F/h2/vm1.img" rw)"
early_s="$(echo "$(date +%s.%N) - $t0" | bc)"
# Either EBUSY at once, or the open waited for h1's recovery: then h1 was
# already declared dead (a survivor logged it) when the open returned.
check "right after the crash, h2 gets no write access to vm1.img before h1 is declared dead ($early after ${early_s} s)" \
	bash -c '[[ $1 == EBUSY ]] || { [[ $1 == ok ]] && grep -q "is dead: recovering it" "$2"/h2.log "$2"/h3.log; }' _ "$early" "$F"
secs="$(cl waitgone "$img" h1 "${gen1:-0}" $((dead_s + 5)))"
check "a survivor recovers h1 within its dead timeout + 5 s of the crash (${secs} s after the first open)" \
	test "$(echo "${secs:-99} + $early_s <= $dead_s + 5" | bc)" = 1
"$FARM" status "$F" | sed 's/^/# /'
check "h2 opens the dead host's vm1.img for write and reads h1's bytes" same "$(sum_rw "$F/h2/vm1.img")" "$sum1"
cl tree "$F/h2/work" | sed "s|$F/h2/||" >"$T/work.h2" 2>&1
cl tree "$F/h3/work" | sed "s|$F/h3/||" >"$T/work.h3" 2>&1
check "h2 and h3 agree on what h1 created ($(wc -l <"$T/work.h2") files)" cmp -s "$T/work.h2" "$T/work.h3"
check "every file h1 created up to its last fsync (f-$last) reads back whole on h2 and h3" bash -c '
	for ((i = 0; i <= $1; i++)); do
		for h in h2 h3; do [[ $(cat "$2/$h/work/f-$i" 2>/dev/null) == "f-$i" ]] || { echo "f-$i on $h"; exit 1; }; done
	done' _ "$last" "$F"
check "h2 creates in h1's directory after the recovery" bash -c 'echo after >"$1/after-h2"' _ "$F/h2/work"
check "h3 sees it" test -e "$F/h3/work/after-h2"
check "the survivors unmount cleanly" farm_down
check "fsck is clean after the crash and recovery" fsck_clean "$img"

# ================= 2. SIGSTOP past the timeout, then SIGCONT ===========================
img="$T/vol2.img"
check "mkfs (second volume)" farm_mkfs "$img" 16G
check "farm of 3 hosts starts again" farm_up 3 "$img"
dd if=/dev/urandom of="$F/h1/frozen.img" bs=1M count=4 status=none
sync "$F/h1/frozen.img"
bg_start WRITER python3 "$(dirname "$0")/cluster/cluster.py" writer "$F/h1/frozen.img" "$T/writer.log"
sleep 1
check "h1's writer writes and fsyncs" grep -q ' fsync [0-9]* ok' "$T/writer.log"
gen1="$(host_gen "$img" h1)"
check "freeze h1 (SIGSTOP) while it writes" "$FARM" freeze "$F" h1
secs="$(cl waitgone "$img" h1 "${gen1:-0}" $((dead_s + 5)))"
check "a survivor recovers the frozen h1 within its dead timeout + 5 s (${secs})" \
	test "${secs%%.*}" -le $((dead_s + 5)) 2>/dev/null
check "h2 takes frozen.img over for write" hold rw "$F/h2/frozen.img" H2
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b"\x22" * (4 << 20), 0)
os.fsync(fd)
os.close(fd)' "$F/h2/frozen.img" 2>/dev/null
sumB="$(sum_of "$F/h2/frozen.img")"
check "h2 rewrote it" same "$sumB" "$(head -c $((4 << 20)) /dev/zero | tr '\0' '\042' | sha256sum | cut -d' ' -f1)"
thaw_t="$(date +%s.%N)"
check "thaw h1 (SIGCONT)" "$FARM" thaw "$F" h1
sleep 3   # h1 wakes, finds its slot taken, fences; its writer keeps trying
bg_stop "$WRITER"
cl hosts "$img" h1 | sed 's/^/# hosts after the thaw: /'
check "h1 is no longer live at its old generation $gen1" bash -c '
	! python3 "$1" hosts "$2" h1 | awk -v g="$3" '\''$5 == g && ($3 == "live" || $3 == "recovering")'\'' | grep -q .' _ \
	"$(dirname "$0")/cluster/cluster.py" "$img" "$gen1"
awk -v t="$thaw_t" '$1 > t' "$T/writer.log" >"$T/writer.after"
echo "# h1's writer after waking: $(awk '{ n[$2 " " $4]++ } END { for (k in n) printf "%s=%d ", k, n[k] }' "$T/writer.after")"
check "h1's old handle: no fsync succeeds after it wakes" bash -c '! grep -q " fsync [0-9]* ok" "$1"' _ "$T/writer.after"
check "h1's old handle: its writes fail after it wakes (EIO or another error)" \
	bash -c 'grep -q " write [0-9]* E" "$1"' _ "$T/writer.after"
bg_stop "$H2"
check "h2's bytes are intact after h1 woke (read on h2)" same "$(sum_of "$F/h2/frozen.img")" "$sumB"
check "h2's bytes are intact after h1 woke (read on h3)" same "$(sum_of "$F/h3/frozen.img")" "$sumB"
# h1 rejoins by itself: a new generation (DESIGN 5.5), serving its mount
# point again, with what the others wrote since, and usable.
rejoined() {
	local i
	for ((i = 0; i < 100; i++)); do
		python3 "$(dirname "$0")/cluster/cluster.py" hosts "$img" h1 |
			awk -v g="$gen1" '$3 == "live" && $5 > g { ok = 1 } END { exit !ok }' && return 0
		sleep 0.1
	done
	return 1
}
check "h1 rejoins as a new generation after fencing ($(cl hosts "$img" h1 | tr '\n' ' '))" rejoined
check "h1 serves its mount point again" timeout 10 ls "$F/h1"
check "h1 reads h2's bytes, not its own stale ones" same "$(timeout 20 sha256sum "$F/h1/frozen.img" | cut -d' ' -f1)" "$sumB"
check "h1 creates a file after rejoining" bash -c 'echo rejoined >"$1/after-rejoin" && sync "$1/after-rejoin"' _ "$F/h1"
check "h2 sees it" bash -c '[[ $(cat "$1/after-rejoin") == rejoined ]]' _ "$F/h2"
check "every host (h1 fenced) unmounts cleanly" farm_down
check "fsck is clean after the freeze" fsck_clean "$img"
check "a fresh mount of the volume works" mnt_up "$img" "$T/verify" -o host=verify
check "the image still holds h2's bytes after a fresh mount" same "$(sum_of "$T/verify/frozen.img")" "$sumB"
check "the fresh mount unmounts" mnt_down "$T/verify"
finish
