# Helpers for the tests that mount volumes with FUSE (test_mount_*.sh).
# Source it after lib.sh:
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/mount_lib.sh"
# Every mount made through these helpers is unmounted, and every daemon
# they started is killed, by lib.sh's exit cleanup, also when a test fails.
# Daemons are found by PID only (ours, or the one whose command line names
# our private mount point under $T), never by a broad name.

# Skip the whole test (exit 0 with a message) when FUSE cannot work here.
mnt_require_fuse() {
	if [[ ! -c /dev/fuse ]] || ! command -v fusermount3 >/dev/null 2>&1; then
		echo "# SKIP $(basename "$0"): no /dev/fuse or fusermount3"
		exit 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "# SKIP $(basename "$0"): needs root (allow_other, mount.lunfs)"
		exit 0
	fi
}

# mnt_wait DIR [up|down]: wait (at most 10 s) until DIR is / is not a mount point.
mnt_wait() {
	local dir="$1" want="${2:-up}" i
	for ((i = 0; i < 200; i++)); do
		if mountpoint -q "$dir"; then
			[[ $want == up ]] && return 0
		else
			[[ $want == down ]] && return 0
		fi
		sleep 0.05
	done
	return 1
}

# mnt_pid_of DIR: the PID of the lunfs daemon serving DIR (by its command line).
mnt_pid_of() {
	local dir="$1" p cmd
	for p in /proc/[0-9]*; do
		cmd="$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null)" || continue
		case "$cmd" in
		*lunfs*" $dir "* | *lunfs*" $dir") echo "${p#/proc/}"; return 0 ;;
		esac
	done
	return 1
}

# mnt_pid_wait PID: wait (at most 30 s) for a process to exit. A zombie
# has exited: the daemon is PID 1's child, and PID 1 may take a second to
# reap it (1.3 s measured in CI's sandbox, per unmount).
mnt_pid_wait() {
	local pid="$1" i st
	for ((i = 0; i < 1500; i++)); do
		st="$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 0
		[[ -z $st || $st == Z ]] && return 0
		sleep 0.02
	done
	return 1
}

# Registered once per mount point: lazy unmount, then kill the daemon if
# it is still there (it normally exits by itself after the unmount).
_mnt_cleanup() {
	local dir="$1" pid
	pid="$(mnt_pid_of "$dir")"
	fusermount3 -u -z "$dir" 2>/dev/null || umount -l "$dir" 2>/dev/null
	if [[ -n $pid ]]; then
		mnt_pid_wait "$pid" || kill -9 "$pid" 2>/dev/null
	fi
}

# mnt_up IMG DIR [lunfs mount options...]: mount in the background (the
# command returns once the mount is up) and register the cleanup.
mnt_up() {
	local img="$1" dir="$2"
	shift 2
	mkdir -p "$dir"
	on_exit _mnt_cleanup "$dir"
	"$B/lunfs" mount "$@" "$img" "$dir" || return 1
	mnt_wait "$dir" up
}

# mnt_up_fg IMG DIR LOG [options...]: mount with -f in the background of
# this shell; sets MNT_PID. Waits for the mount to appear.
mnt_up_fg() {
	local img="$1" dir="$2" log="$3"
	shift 3
	mkdir -p "$dir"
	on_exit _mnt_cleanup "$dir"
	"$B/lunfs" mount -f "$@" "$img" "$dir" >"$log" 2>&1 &
	MNT_PID=$!
	on_exit "kill -9 $MNT_PID"
	mnt_wait "$dir" up
}

# mnt_down DIR: unmount and wait for the daemon to exit.
mnt_down() {
	local dir="$1" pid
	pid="$(mnt_pid_of "$dir")"
	fusermount3 -u "$dir" || return 1
	mnt_wait "$dir" down || return 1
	if [[ -n $pid ]]; then
		mnt_pid_wait "$pid" || return 1
	fi
	return 0
}

# journal_clean IMG: every journal of the volume is clean (lunfs inspect).
journal_clean() {
	"$B/lunfs" inspect --json "$1" 2>/dev/null |
		python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["journals"]["dirty"] == 0 else 1)'
}
