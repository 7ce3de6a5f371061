#!/usr/bin/env bash
# The demo of the README: a farm of three hypervisor hosts (kvm1, kvm2, kvm3)
# on one shared volume. On the embedded default the "SAN LUN" is a thin
# image file in a temporary directory under /dev/shm and each "host" is one
# lunfs FUSE daemon with its own heartbeat slot and mount point
# (scripts/farm.sh). The demo formats the volume, mounts it on the three
# hosts, runs a VM image on kvm1, shows that kvm2 cannot open it while it
# runs, migrates it to kvm2 (close, then open: no copy), crashes kvm2
# (kill -9) while the VM runs there, waits for the survivors to recover
# kvm2, restarts the VM on kvm3 with its data intact, snapshots the running
# VM's image there, writes on, reverts it (showing `lunfs du`), and checks
# the volume with fsck. `lunfs hosts` and `lunfs locks` are shown along the
# way.
#
# The "VM" is qemu-io holding the qcow2 image open read-write and writing
# guest data on command (a raw image held by a shell and written with dd
# when QEMU's tools are missing, or with LUNFS_DEMO_RAW=1).
# Everything is torn down by the exit trap, also on a failure or Ctrl-C.
# LUNFS_DEMO_KEEP=1 keeps the directory (image and farm logs) afterwards.
#   scripts/demo.sh
# Needs root (FUSE with allow_other) and /dev/fuse.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
scripts/deps.sh
make -j"$(nproc)" all >/dev/null

export PATH="$repo/build:$repo/scripts:$PATH"
export FARM_HOST_PREFIX=kvm   # host names kvm1..kvm3 instead of h1..h3

base=/dev/shm
[[ -d $base && -w $base ]] || base=/tmp
dir="$(mktemp -d "$base/lunfs-demo.XXXXXX")"
vm_pid=""
vm_mode=qcow2
if [[ -n ${LUNFS_DEMO_RAW:-} ]] || ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
	vm_mode=raw
fi

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	cd /
	vm_stop >/dev/null 2>&1
	if [[ -d $dir/farm ]]; then
		if ((rc != 0)); then
			for log in "$dir"/farm/kvm*.log; do
				[[ -f $log ]] || continue
				echo "--- the last lines of $(basename "$log"):" >&2
				tail -n 15 "$log" >&2
			done
		fi
		farm.sh stop "$dir/farm" >/dev/null 2>&1
	fi
	# Never remove a directory that still has a mount under it.
	if grep -qF " $dir/" /proc/self/mounts; then
		echo "demo: $dir still has mounts; left in place" >&2
	elif [[ -n ${LUNFS_DEMO_KEEP:-} ]]; then
		echo "demo: kept $dir" >&2
	else
		rm -rf "$dir"
	fi
	((rc == 0)) || echo "demo: FAILED (exit $rc)" >&2
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The rest runs in the demo directory, so that the commands shown are short.
cd "$dir"

section() { printf '\n\033[1;34m=== %s\033[0m\n' "$1"; shift; printf '    %s\n' "$@"; }
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
# must_fail CMD...: show CMD, which must fail; the demo stops if it works.
must_fail() {
	printf '\n\033[1m$ %s\033[0m\n' "$*"
	local rc=0
	"$@" || rc=$?
	((rc != 0)) || { echo "demo: that should have failed" >&2; exit 1; }
	echo "(refused, exit $rc: as it should be)"
}
now() { date +%s.%N; }
since() { python3 -c 'import sys, time; print("%.1f" % (time.time() - float(sys.argv[1])))' "$1"; }

# --- the VM: a process that holds the image open for write, like QEMU -------------

disk=""   # the image, relative to a host's mount point

# vm_start HOST: start the VM on HOST (it opens the image read-write).
vm_start() {
	local host="$1"
	if [[ $vm_mode == qcow2 ]]; then
		rm -f vm.in vm.out
		mkfifo vm.in
		stdbuf -oL qemu-io -t none -f qcow2 "farm/$host/$disk" <vm.in >vm.out 2>&1 &
		vm_pid=$!
		exec {vm_fd}>vm.in
		vm_cmd '[0-9.]+ [KMGT]iB$' length
	else
		(exec 3<>"farm/$host/$disk" && exec sleep 3600) &
		vm_pid=$!
		sleep 0.3
		kill -0 "$vm_pid"
	fi
	vm_host="$host"
	echo "VM running on $host (pid $vm_pid holds farm/$host/$disk open for write)"
}

# vm_cmd REGEX COMMAND: send one qemu-io command and wait for the line of
# output (matching REGEX) that answers it. One command at a time: qemu-io
# reads its stdin in chunks and runs only the first command of a chunk until
# more input arrives. stdbuf makes it write each line as it goes.
vm_cmd() {
	local re="$1" cmd="$2" i n before
	before="$({ grep -Ec "$re" vm.out 2>/dev/null || true; })"
	echo "$cmd" >&"$vm_fd"
	for ((i = 0; i < 300; i++)); do
		n="$({ grep -Ec "$re" vm.out 2>/dev/null || true; })"
		((n > before)) && return 0
		kill -0 "$vm_pid" 2>/dev/null || { cat vm.out >&2; echo "demo: the VM (qemu-io) exited" >&2; return 1; }
		sleep 0.1
	done
	echo "demo: the VM (qemu-io) does not answer" >&2
	return 1
}

# vm_write PATTERN OFFSET LENGTH (qemu-io sizes: 1M, 10G): the guest writes
# PATTERN over the range with FUA (qemu-io write -f: done only once it is on
# stable storage, image metadata included): acknowledged data, which must
# survive a crash of the host. Every write is checked again by verify.
vm_write() {
	local pat="$1" off="$2" len="$3" lines
	writes+=("$pat $off $len")
	if [[ $vm_mode == qcow2 ]]; then
		printf '\033[1mguest on %s> write -f -P %s %s %s\033[0m\n' "$vm_host" "$pat" "$off" "$len"
		lines="$(wc -l <vm.out)"
		vm_cmd 'wrote [0-9]+/[0-9]+ bytes' "write -f -P $pat $off $len"
		tail -n +"$((lines + 1))" vm.out | sed 's/qemu-io> //g' | grep -Ev '^$|^[0-9.]+ [KMGT]iB$'
	else
		step dd if=/dev/urandom of="farm/$vm_host/$disk" bs=1M count="$(mib "$len")" \
			seek="$(mib "$off")" conv=notrunc,fsync status=none
		raw_sums["$off"]="$(raw_sum "farm/$vm_host/$disk" "$off" "$len")"
	fi
}

# vm_stop: shut the VM down: it closes the image.
vm_stop() {
	[[ -n $vm_pid ]] || return 0
	if [[ $vm_mode == qcow2 ]]; then
		{ echo quit >&"$vm_fd"; } 2>/dev/null
		exec {vm_fd}>&-
		for _ in $(seq 1 50); do
			kill -0 "$vm_pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	kill -9 "$vm_pid" 2>/dev/null || true
	wait "$vm_pid" 2>/dev/null || true
	vm_pid=""
}

writes=()   # "PATTERN OFFSET LENGTH" of every guest write
# Raw images: guest data is random; a checksum of each written range stands
# in for qemu-io's read -P.
declare -A raw_sums=()
mib() { echo $(($(numfmt --from=iec "$1") >> 20)); }
raw_sum() {
	dd if="$1" bs=1M skip="$(mib "$2")" count="$(mib "$3")" status=none | sha256sum | cut -c1-16
}

# verify HOST: read every range the guest wrote, through HOST, and compare.
verify() {
	local host="$1" w pat off len args=()
	for w in "${writes[@]}"; do
		read -r pat off len <<<"$w"
		args+=(-c "read -P $pat $off $len")
	done
	if [[ $vm_mode == qcow2 ]]; then
		step qemu-io -t none -f qcow2 "${args[@]}" "farm/$host/$disk"
	else
		for w in "${writes[@]}"; do
			read -r pat off len <<<"$w"
			printf '\033[1m$ read %s at %s through %s: checksum %s?\033[0m\n' "$len" "$off" "$host" "${raw_sums[$off]}"
			[[ $(raw_sum "farm/$host/$disk" "$off" "$len") == "${raw_sums[$off]}" ]] ||
				{ echo "demo: the data differs" >&2; exit 1; }
			echo "same"
		done
	fi
}

# open_rw PATH: open PATH for write and close it, as a hypervisor would.
open_rw() {
	python3 -c 'import os, sys
try:
    os.close(os.open(sys.argv[1], os.O_RDWR))
    print("open(%s, O_RDWR): ok" % sys.argv[1])
except OSError as e:
    print("open(%s, O_RDWR): %s" % (sys.argv[1], e.strerror))
    sys.exit(1)' "$1"
}

# vm_try HOST: start the VM on HOST too, briefly; it must be refused.
vm_try() {
	if [[ $vm_mode == qcow2 ]]; then
		must_fail qemu-io -f qcow2 -c 'read 0 512' "farm/$1/$disk"
	else
		must_fail open_rw "farm/$1/$disk"
	fi
}

# log_since HOST LINE: show HOST's log after line LINE.
log_since() {
	printf '\n\033[1m$ tail farm/%s.log\033[0m\n' "$1"
	tail -n +"$(($2 + 1))" "farm/$1.log"
}

# ================================================================================

section "1. Format the shared volume" \
	"A 4 TiB thin image file stands in for a SAN LUN; mkfs.lunfs runs once, from any host." \
	"Default options: 64 host slots, heartbeat every second, a silent host is dead after 8 s."
step mkfs.lunfs -L demo -s 4T vol.img
step lunfs inspect vol.img
step ls -lsh vol.img
dead_ms="$(lunfs inspect --json vol.img | python3 -c 'import json, sys
print(json.load(sys.stdin)["superblock"]["dead_timeout_ms"])')"

section "2. Three hosts mount it" \
	"Each host claims a heartbeat slot and renews it every second: the disk is their only channel."
step farm.sh start 3 vol.img farm
step lunfs hosts vol.img

section "3. A VM runs on kvm1" \
	"Opening an image for write takes its exclusive lock on the disk for the host (VMFS semantics)."
if [[ $vm_mode == qcow2 ]]; then
	disk=vm1.qcow2
	step qemu-img create -f qcow2 "farm/kvm1/$disk" 20G
else
	disk=vm1.raw
	step truncate -s 20G "farm/kvm1/$disk"
fi
vm_start kvm1
# The guest writes its boot sector, some data 10 GiB in, and more near the end.
vm_write 0xab 0 1M
vm_write 0xcd 10G 64M
vm_write 0xef 19G 1M
ino="$(stat -c %i "farm/kvm1/$disk")"
step lunfs locks vol.img
echo "(inode $ino is $disk)"

section "4. kvm2 tries to start the same VM" \
	"Running one VM twice would corrupt its disk: kvm2's open for write fails with EBUSY," \
	"and kvm2's log names the holder."
n2="$(wc -l <farm/kvm2.log)"
vm_try kvm2
log_since kvm2 "$n2"

section "5. Migrate the VM to kvm2 (cold: close on kvm1, open on kvm2)" \
	"No data is copied: only the right to write the file moves from kvm1 to kvm2."
echo "VM on kvm1 shuts down"
vm_stop
t0="$(now)"
verify kvm2
echo "(kvm2 read the guest's data $(since "$t0") s after kvm1 closed the image)"
vm_start kvm2
step lunfs locks vol.img

section "6. kvm2 crashes while the VM runs on it" \
	"The guest writes (FUA: on stable storage when acknowledged); then kvm2's lunfs daemon gets" \
	"kill -9 (a power loss, as far as the volume can tell). Its lock stays on the disk."
vm_write 0x77 20M 4M
gen2="$(lunfs hosts --json --no-wait vol.img | python3 -c 'import json, sys
print([h for h in json.load(sys.stdin)["hosts"] if h["name"] == "kvm2"][0]["generation"])')"
t_crash="$(now)"
step farm.sh kill farm kvm2
vm_stop   # the VM died with its host
step lunfs hosts vol.img
step lunfs locks vol.img
echo "(kvm2 still holds $disk, inode $ino: until kvm2 is declared dead and recovered, an open"
echo " for write elsewhere waits a few seconds and then gets EBUSY)"

section "7. The survivors recover kvm2" \
	"kvm1 and kvm3 wait until kvm2's heartbeat has not moved for its dead timeout" \
	"($((dead_ms / 1000)) s, measured on their own clocks); then exactly one of them replays kvm2's" \
	"journal and frees its slot, and kvm2's locks are free to take."
python3 - "$t_crash" "$gen2" "$dead_ms" <<'EOF'
import json, subprocess, sys, time
t_crash, gen, dead_ms = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
last = None
while True:
    hosts = json.loads(subprocess.run(["lunfs", "hosts", "--json", "--no-wait", "vol.img"],
                                      check=True, capture_output=True, text=True).stdout)["hosts"]
    names = {h["slot"]: h["name"] for h in hosts}
    mine = [h for h in hosts if h["name"] == "kvm2" and h["generation"] == gen
            and h["recorded"] in ("live", "recovering", "joining", "leaving")]
    now = time.time() - t_crash
    if mine:
        h = mine[0]
        state = h["recorded"]
        if h.get("recoverer"):
            state += " (by %s)" % names.get(h["recoverer"]["slot"], "slot %d" % h["recoverer"]["slot"])
    else:
        state = "free: recovered"
    if state != last:
        print("  +%5.1f s  kvm2 (generation %d): %s" % (now, gen, state), flush=True)
        last = state
    if not mine:
        print("kvm2 was recovered %.1f s after the crash (dead timeout %.1f s)" % (now, dead_ms / 1000))
        break
    if now > dead_ms / 1000 + 30:
        sys.exit("demo: kvm2 was not recovered within the dead timeout + 30 s")
    time.sleep(0.2)
EOF
step grep kvm2 farm/kvm1.log farm/kvm3.log
step lunfs hosts vol.img

section "8. The VM restarts on kvm3 from the same image" \
	"Every write the guest flushed on kvm2 before the crash is there."
verify kvm3
vm_start kvm3
echo "failover: kvm3 has the VM image open for write $(since "$t_crash") s after kvm2 crashed"
vm_write 0x11 30M 1M
step lunfs locks vol.img
step lunfs hosts vol.img

section "9. Snapshot the running VM, write on, revert" \
	"kvm3 runs the VM, so kvm3 may snapshot its image: instant, blocks shared copy-on-write." \
	"The guest writes on; then the VM is stopped and its disk reverted to the snapshot."
step lunfs snapshot create "farm/kvm3/$disk" before-update
nw=${#writes[@]}
vm_write 0x99 40M 8M
step lunfs du "farm/kvm3/$disk"
step lunfs snapshot list "farm/kvm3/$disk"
vm_stop
step lunfs snapshot revert "farm/kvm3/$disk" before-update
writes=("${writes[@]:0:nw}")   # the guest's later write is gone
verify kvm3
if [[ $vm_mode == qcow2 ]]; then
	step qemu-io -f qcow2 -c 'read -P 0 40M 8M' "farm/kvm3/$disk"
fi
step lunfs du "farm/kvm3/$disk"
vm_start kvm3

section "10. Shut down and check" \
	"The survivors unmount cleanly; fsck (read-only) checks the whole volume."
vm_stop
step farm.sh stop farm
step fsck.lunfs -n vol.img
echo
echo "demo: 3 hosts shared one volume; a VM image moved from kvm1 to kvm2 without a copy;"
echo "demo: kvm2 crashed, the survivors recovered it, and the VM went on on kvm3 with its data;"
echo "demo: a snapshot of the running VM's disk was taken, written past, and reverted to."
