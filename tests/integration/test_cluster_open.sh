#!/bin/bash
# VMFS open semantics across three hosts (real FUSE mounts of one image):
# a file open for write on h1 cannot be opened for write on h2 or h3
# (EBUSY, and `lunfs locks` and h2's log name h1); a second open on h1
# itself works; read-only opens share, and exclude writers; a cold
# migration (h1 writes an image and closes it, h2 opens it for write and
# reads exactly those bytes, h1 then sees h2's changes); and the same with
# qemu-io when QEMU is installed, plus linked clones: a base image open
# read-only on two hosts at once while each writes its own overlay. Everything is torn down by the cleanup,
# also when a check fails.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/cluster/farm_lib.sh"
mnt_require_fuse

img="$T/vol.img"
check "mkfs with farm timing" farm_mkfs "$img" 4G
check "farm of 3 hosts starts" farm_up 3 "$img"

sum_of() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
# sum_rw PATH: checksum read through an open for write (so the reader must
# own the file's exclusive lock); never creates PATH.
sum_rw() {
	python3 -c 'import hashlib, sys
with open(sys.argv[1], "r+b") as f:
    print(hashlib.sha256(f.read()).hexdigest())' "$1" 2>/dev/null
}
# log_names_h1 HOST FROMLINE: HOST's log, after line FROMLINE, names h1.
log_names_h1() { tail -n +"$(($2 + 1))" "$F/$1.log" | grep -Eq '(^|[^[:alnum:]])h1([^[:alnum:]]|$)'; }

# --- exclusive open ----------------------------------------------------------------------
dd if=/dev/urandom of="$F/h1/vm.img" bs=1M count=8 status=none
sync "$F/h1/vm.img"
sum="$(sum_of "$F/h1/vm.img")"
ino="$(stat -c %i "$F/h1/vm.img")"
check "h1 opens vm.img for write and holds it" hold rw "$F/h1/vm.img" H1
before="$(wc -l <"$F/h2.log")"
check "h2's open for write fails with EBUSY" test "$(cl tryopen "$F/h2/vm.img" rw)" = EBUSY
check "h3's open for write fails with EBUSY" test "$(cl tryopen "$F/h3/vm.img" rw)" = EBUSY
check "h2's log names h1 as the holder" log_names_h1 h2 "$before"
check "lunfs locks: vm.img exclusive, owner h1" test "$(cl lock "$img" "$ino" | cut -d' ' -f1,2)" = "exclusive h1"
"$B/lunfs" locks "$img" | grep -E "^inode +$ino " | sed 's/^/# /'
check "a second open for write on h1 itself works" test "$(cl tryopen "$F/h1/vm.img" rw)" = ok
echo "# (info) h2's read-only open while h1 writes: $(cl tryopen "$F/h2/vm.img" ro)"
bg_stop "$H1"

# --- read-only opens share; a writer is kept out ----------------------------------------------
check "h1 opens vm.img read-only" hold ro "$F/h1/vm.img" R1
check "h2 opens vm.img read-only at the same time" hold ro "$F/h2/vm.img" R2
check "h3 opens it read-only too" test "$(cl tryopen "$F/h3/vm.img" ro)" = ok
check "h3's open for write fails with EBUSY while others read" test "$(cl tryopen "$F/h3/vm.img" rw)" = EBUSY
check "lunfs locks: vm.img shared by h1 and h2" bash -c '
	read -r mode owner holders < <(python3 "$1" lock "$2" "$3")
	[[ $mode == shared && " $holders " == *" h1 "* && " $holders " == *" h2 "* ]]' _ \
	"$(dirname "$0")/cluster/cluster.py" "$img" "$ino"
check "readers see the bytes h1 wrote" same "$(sum_of "$F/h3/vm.img")" "$sum"
bg_stop "$R1"
bg_stop "$R2"

# --- cold migration ---------------------------------------------------------------------
# h1 wrote and closed vm.img above; h2 opens it for write and reads exactly those bytes.
check "cold migration: h2 opens h1's image for write and reads exactly its bytes" \
	same "$(sum_rw "$F/h2/vm.img")" "$sum"
check "h2 now holds vm.img for write" hold rw "$F/h2/vm.img" H2
check "...and h1 may not open it for write" test "$(cl tryopen "$F/h1/vm.img" rw)" = EBUSY
check "lunfs locks: vm.img exclusive, owner h2" test "$(cl lock "$img" "$ino" | cut -d' ' -f1,2)" = "exclusive h2"
dd if=/dev/urandom of="$F/h2/vm.img" bs=4K seek=333 count=17 conv=notrunc,nocreat status=none 2>/dev/null
sync "$F/h2/vm.img" 2>/dev/null
sum2="$(sum_of "$F/h2/vm.img")"
bg_stop "$H2"
check "h2 changed the image" test -n "$sum2" -a "$sum2" != "$sum"
check "migrating back: h1 reads h2's bytes (no stale page cache)" same "$(sum_rw "$F/h1/vm.img")" "$sum2"
check "h3 reads h2's bytes" same "$(sum_of "$F/h3/vm.img")" "$sum2"
# The last close lets go of the lock about an interval later (fs/cluster.c
# idle sweep): poll for up to 10 intervals.
check "after every close, nobody holds vm.img (within a few heartbeat intervals)" bash -c \
	'for ((i = 0; i < 20; i++)); do
		m="$(python3 "$1" lock "$2" "$3" | cut -d" " -f1)"
		[[ $m == none || $m == free ]] && exit 0
		sleep "$4"
	done; exit 1' _ \
	"$(dirname "$0")/cluster/cluster.py" "$img" "$ino" "$(echo "scale=3; $FARM_HB / 2000" | bc)"

# --- QEMU ---------------------------------------------------------------------------------
if command -v qemu-io >/dev/null && command -v qemu-img >/dev/null; then
	qemu-img create -q -f qcow2 "$F/h1/vm.qcow2" 64M
	mkfifo "$T/qemu.in"
	# qemu-io on h1 keeps the image open (read-write) while it reads commands.
	bg_start QIO bash -c 'exec qemu-io -f qcow2 "$1" <"$2" >"$3" 2>&1' _ "$F/h1/vm.qcow2" "$T/qemu.in" "$T/qemu.out"
	exec 7>"$T/qemu.in"
	echo "write -P 0xab 0 1M" >&7
	for ((i = 0; i < 100; i++)); do
		grep -q "wrote" "$T/qemu.out" 2>/dev/null && break
		sleep 0.1
	done
	check "qemu-io on h1 opens and writes the qcow2 image" grep -q "wrote 1048576" "$T/qemu.out"
	rc=0
	timeout 30 qemu-io -f qcow2 -c "read 0 4k" "$F/h2/vm.qcow2" >"$T/qemu2.out" 2>&1 || rc=$?
	check "qemu-io on h2 cannot open the image h1's qemu-io holds" test "$rc" -ne 0
	check "...and says why (busy)" grep -qi "busy" "$T/qemu2.out"
	sed 's/^/# h2 qemu-io: /' "$T/qemu2.out" | head -n 3
	echo "quit" >&7
	exec 7>&-
	wait "$QIO" 2>/dev/null
	check "after h1's qemu-io quits, qemu-io on h2 reads its data" \
		bash -c 'timeout 30 qemu-io -f qcow2 -c "read -P 0xab 0 1M" "$1" 2>&1 | grep -q "read 1048576"' _ "$F/h2/vm.qcow2"
	check "qemu-img check on h3 is clean" timeout 30 qemu-img check -q "$F/h3/vm.qcow2"

	# Linked clones: one base image, opened read-only by two hosts at
	# once, each writing its own overlay (qemu-img create -b).
	qemu-img create -q -f qcow2 "$F/h1/base.qcow2" 64M
	timeout 30 qemu-io -f qcow2 -c "write -P 0x5a 0 4M" "$F/h1/base.qcow2" >/dev/null
	base_sum="$(sum_of "$F/h1/base.qcow2")"
	check "overlay vm1 on h1 over base.qcow2" qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$F/h1/vm1.qcow2"
	check "overlay vm2 on h2 over base.qcow2" qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 "$F/h2/vm2.qcow2"
	# Both guests run at the same time: each writes its overlay, sleeps
	# with base and overlay open, then reads its own data over the base.
	guest() {
		timeout 60 qemu-io -f qcow2 -c "write -P $2 1M 1M" -c "sleep 1500" -c "read -P 0x5a 0 1M" \
			-c "read -P $2 1M 1M" -c "read -P 0x5a 2M 2M" "$1" >"$3" 2>&1
	}
	guest "$F/h1/vm1.qcow2" 0x11 "$T/vm1.out" &
	g1=$!
	guest "$F/h2/vm2.qcow2" 0x22 "$T/vm2.out" &
	g2=$!
	sleep 0.7
	ino_base="$(stat -c %i "$F/h3/base.qcow2")"
	holders="$(cl lock "$img" "$ino_base")"
	echo "# base.qcow2 while both guests run: $holders"
	rc1=0; rc2=0
	wait "$g1" || rc1=$?
	wait "$g2" || rc2=$?
	sed 's/^/# vm1 on h1: /' "$T/vm1.out" | grep -v "ops;" | head -n 4
	check "the guest on h1 ran with base.qcow2 open read-only on both hosts" test "$rc1" -eq 0 -a "$(grep -c '^read ' "$T/vm1.out")" -eq 3
	check "the guest on h2 ran with base.qcow2 open read-only on both hosts" test "$rc2" -eq 0 -a "$(grep -c '^read ' "$T/vm2.out")" -eq 3
	check "both hosts held base.qcow2 shared at once" bash -c '[[ $1 == shared* && $1 == *h1* && $1 == *h2* ]]' _ "$holders"
	check "the base is unchanged" same "$(sum_of "$F/h3/base.qcow2")" "$base_sum"
	check "h3 reads vm1's guest data over the base" \
		bash -c 'timeout 30 qemu-io -r -f qcow2 -c "read -P 0x11 1M 1M" -c "read -P 0x5a 0 1M" "$1" 2>&1 | grep -c "^read " | grep -qx 2' _ "$F/h3/vm1.qcow2"
	check "h3 reads vm2's guest data over the base" \
		bash -c 'timeout 30 qemu-io -r -f qcow2 -c "read -P 0x22 1M 1M" -c "read -P 0x5a 0 1M" "$1" 2>&1 | grep -c "^read " | grep -qx 2' _ "$F/h3/vm2.qcow2"
	check "qemu-img check of both overlays" bash -c 'qemu-img check -q "$1" && qemu-img check -q "$2"' _ "$F/h3/vm1.qcow2" "$F/h3/vm2.qcow2"
else
	echo "# SKIP the QEMU part: no qemu-io/qemu-img"
fi

# --- teardown -----------------------------------------------------------------------------
check "every host unmounts cleanly" farm_down
check "fsck is clean" fsck_clean "$img"
finish
