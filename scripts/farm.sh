#!/usr/bin/env bash
# farm.sh: a test farm of lunfs hosts on one machine, over one image file.
#
# A "host" is one `lunfs mount -f -o host=hK IMAGE DIR/hK` process with its own
# heartbeat slot and mount point; several of them over one image simulate a
# farm exactly (each opens the image with O_DIRECT and shares no memory with
# the others). The farm's state lives in DIR:
#   DIR/farm.image   the image path
#   DIR/farm.pids    one line per host: NAME PID MOUNTPOINT
#   DIR/hK/          the mount point of host hK
#   DIR/hK.log       its log (the daemon runs with -f and logs to stderr)
#
# Usage:
#   farm.sh mkfs IMAGE [SIZE [mkfs options...]]  format with short farm timing
#   farm.sh start N IMAGE [DIR]   start N hosts h1..hN (2..8), wait until all
#                                 are mounted and seen live, print the table
#   farm.sh stop DIR              unmount every host and end every daemon,
#                                 whatever state they are in (always tears
#                                 down; exit 1 if something had to be forced)
#   farm.sh status DIR            one line per host: process, mount, slot state
#   farm.sh kill DIR hK           kill -9 one host (a crash) and detach its
#                                 dead mount point
#   farm.sh freeze DIR hK         SIGSTOP one host
#   farm.sh thaw DIR hK           SIGCONT one host
#   farm.sh restart DIR hK        start hK again (kill -9 first if it runs)
#   farm.sh pid DIR hK            print the daemon's PID
#
# Environment: LUNFS_BUILD (the build dir, default <repo>/build);
# FARM_HOST_PREFIX (host names are PREFIX1..PREFIXN, default h);
# FARM_MOUNT_OPTS (extra -o options for every host); FARM_MOUNT_TIMEOUT
# (seconds to wait for one mount, default 30); FARM_STOP_TIMEOUT (seconds
# for clean unmounts, default 20); FARM_HB, FARM_DEAD, FARM_IO (timing for
# `mkfs`, ms). Everything else in the environment (LUNFS_LOCK_LOG, say)
# reaches the daemons unchanged.
#
# Processes are ended by PID only, and only after checking that the PID is
# still a lunfs daemon serving this farm's mount point (PIDs get reused).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
B="${LUNFS_BUILD:-$ROOT/build}"
MOUNT_TIMEOUT="${FARM_MOUNT_TIMEOUT:-30}"
STOP_TIMEOUT="${FARM_STOP_TIMEOUT:-20}"
PREFIX="${FARM_HOST_PREFIX:-h}"

die() { echo "farm.sh: $*" >&2; exit 1; }
usage() { sed -n '/^# Usage:/,/^# Environment/p' "$0" | sed 's/^# \{0,1\}//' | sed '$d' >&2; exit 2; }

# --- helpers ---------------------------------------------------------------------

# is_ours PID MOUNTPOINT: PID is alive and is the lunfs daemon of MOUNTPOINT.
is_ours() {
	local pid="$1" mnt="$2" cmd
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
	cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
	[[ $cmd == *lunfs*" $mnt "* || $cmd == *lunfs*" $mnt" ]]
}

# proc_state PID: R/S/D/T/Z... or "-" when gone.
proc_state() {
	local st
	st="$(sed -E 's/^[0-9]+ \(.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null)" || { echo -; return; }
	echo "${st:--}"
}

# wait_gone PID SECONDS: wait for a process (not our child) to exit.
wait_gone() {
	local pid="$1" n=$(($2 * 20)) i
	for ((i = 0; i < n; i++)); do
		[[ -d /proc/$pid ]] || return 0
		[[ $(proc_state "$pid") == Z ]] && return 0
		sleep 0.05
	done
	return 1
}

# mnt_is_up DIR: DIR is mounted (also a dead FUSE mount: ENOTCONN). Read
# from /proc/self/mounts, never by touching DIR: stat(2) on the mount of a
# frozen (SIGSTOPped) daemon blocks until it is thawed.
mnt_is_up() {
	grep -qF " $1 " /proc/self/mounts 2>/dev/null
}

mnt_detach() {
	local d="$1"
	mnt_is_up "$d" || return 0
	timeout 10 fusermount3 -u -z "$d" 2>/dev/null || umount -l "$d" 2>/dev/null
	! mnt_is_up "$d"
}

farm_dir_check() {
	[[ -n ${1:-} ]] || usage
	[[ -d $1 ]] || die "$1: no such farm directory"
}

# host_line DIR NAME: prints "PID MOUNTPOINT" of host NAME.
host_line() {
	awk -v h="$2" '$1 == h { print $2, $3; found = 1 } END { exit !found }' "$1/farm.pids" 2>/dev/null
}

set_host_line() {
	local dir="$1" name="$2" pid="$3" mnt="$4"
	{
		awk -v h="$name" '$1 != h' "$dir/farm.pids" 2>/dev/null
		echo "$name $pid $mnt"
	} | sort -V >"$dir/farm.pids.tmp" && mv "$dir/farm.pids.tmp" "$dir/farm.pids"
}

# start_host DIR IMAGE NAME: launch one daemon in the background.
start_host() {
	local dir="$1" img="$2" name="$3" mnt="$1/$3" pid
	mkdir -p "$mnt"
	mnt_detach "$mnt" || true
	echo "=== $(date '+%F %T.%N') start $name" >>"$dir/$name.log"
	# shellcheck disable=SC2086
	"$B/lunfs" mount -f -o "host=$name" ${FARM_MOUNT_OPTS:+-o "$FARM_MOUNT_OPTS"} \
		"$img" "$mnt" </dev/null >>"$dir/$name.log" 2>&1 &
	pid=$!
	set_host_line "$dir" "$name" "$pid" "$mnt"
}

# wait_mounted DIR NAME: until NAME's mount is up; fails if its daemon died.
wait_mounted() {
	local dir="$1" name="$2" pid mnt i
	read -r pid mnt < <(host_line "$dir" "$name") || return 1
	for ((i = 0; i < MOUNT_TIMEOUT * 20; i++)); do
		if mnt_is_up "$mnt"; then
			return 0
		fi
		if ! is_ours "$pid" "$mnt"; then
			echo "farm.sh: $name (pid $pid) exited before mounting; its log:" >&2
			tail -n 15 "$dir/$name.log" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "farm.sh: $name not mounted after ${MOUNT_TIMEOUT}s" >&2
	return 1
}

# hosts_json IMAGE [options]: `lunfs hosts --json`.
hosts_json() {
	local img="$1"
	shift
	"$B/lunfs" hosts --json "$@" "$img" 2>/dev/null
}

# wait_live IMAGE NAME...: until every NAME is recorded and observed live.
wait_live() {
	local img="$1" i
	shift
	for ((i = 0; i < 25; i++)); do
		if hosts_json "$img" | python3 -c '
import json, sys
j = json.load(sys.stdin)
live = {h["name"] for h in j["hosts"] if h["recorded"] == "live" and h["observed"] == "live"}
sys.exit(0 if set(sys.argv[1:]) <= live else 1)' "$@"; then
			return 0
		fi
		sleep 0.2
	done
	echo "farm.sh: not all of $* are live in $img" >&2
	return 1
}

# --- commands --------------------------------------------------------------------

cmd_mkfs() {
	local img="${1:-}" size="${2:-4G}" hb="${FARM_HB:-200}" dead="${FARM_DEAD:-2000}" io="${FARM_IO:-500}"
	[[ -n $img ]] || usage
	shift $(($# >= 2 ? 2 : 1))
	# The volume refuses timing that breaks T >= 3*I + 2*D (docs/DESIGN.md 3);
	# say so here with the numbers rather than through mkfs's error.
	((dead >= 3 * hb + 2 * io)) ||
		die "dead timeout $dead ms < 3*$hb + 2*$io ms: adjust FARM_DEAD/FARM_HB/FARM_IO"
	"$B/mkfs.lunfs" -q -f -s "$size" --heartbeat-interval "$hb" --dead-timeout "$dead" \
		--io-deadline "$io" "$@" "$img"
}

cmd_start() {
	local n="${1:-}" img="${2:-}" dir="${3:-}" i name pid mnt
	[[ $n =~ ^[0-9]+$ && -n $img ]] || usage
	((n >= 2 && n <= 8)) || die "a farm has 2 to 8 hosts, not $n"
	[[ -e $img ]] || die "$img: no such image"
	img="$(realpath "$img")"
	dir="${dir:-$(dirname "$img")/farm}"
	mkdir -p "$dir" || die "cannot create $dir"
	dir="$(realpath "$dir")"
	if [[ -s $dir/farm.pids ]]; then
		while read -r name pid mnt; do
			is_ours "$pid" "$mnt" && die "a farm already runs in $dir ($name, pid $pid): stop it first"
		done <"$dir/farm.pids"
		rm -f "$dir/farm.pids"
	fi
	echo "$img" >"$dir/farm.image"
	for ((i = 1; i <= n; i++)); do
		start_host "$dir" "$img" "$PREFIX$i"
	done
	for ((i = 1; i <= n; i++)); do
		if ! wait_mounted "$dir" "$PREFIX$i"; then
			cmd_stop "$dir" >/dev/null 2>&1
			die "farm start failed; torn down"
		fi
	done
	names=()
	for ((i = 1; i <= n; i++)); do
		names+=("$PREFIX$i")
	done
	if ! wait_live "$img" "${names[@]}"; then
		cmd_status "$dir" >&2
		cmd_stop "$dir" >/dev/null 2>&1
		die "farm start failed (hosts not live); torn down"
	fi
	cmd_status "$dir"
}

cmd_restart() {
	local dir="${1:-}" name="${2:-}" img pid mnt
	farm_dir_check "$dir"
	[[ -n $name ]] || usage
	img="$(cat "$dir/farm.image")" || die "$dir: not a farm"
	if read -r pid mnt < <(host_line "$dir" "$name"); then
		if is_ours "$pid" "$mnt"; then
			cmd_kill "$dir" "$name"
		fi
	fi
	start_host "$dir" "$img" "$name"
	wait_mounted "$dir" "$name" || die "restart of $name failed"
	wait_live "$img" "$name" || die "$name mounted but not live"
}

cmd_kill() {
	local dir="${1:-}" name="${2:-}" pid mnt
	farm_dir_check "$dir"
	read -r pid mnt < <(host_line "$dir" "$name") || die "no host $name in $dir"
	if is_ours "$pid" "$mnt"; then
		kill -9 "$pid" 2>/dev/null
		wait_gone "$pid" 10 || die "$name (pid $pid) survived kill -9"
	fi
	# The machine is gone: so is its mount. Detach the dead FUSE mount so
	# the mount point does not linger as "transport endpoint not connected".
	mnt_detach "$mnt" || die "cannot detach $mnt"
	echo "=== $(date '+%F %T.%N') kill -9 $name (pid $pid)" >>"$dir/$name.log"
}

cmd_signal() {
	local sig="$1" dir="${2:-}" name="${3:-}" pid mnt
	farm_dir_check "$dir"
	read -r pid mnt < <(host_line "$dir" "$name") || die "no host $name in $dir"
	is_ours "$pid" "$mnt" || die "$name is not running"
	kill "-$sig" "$pid" || die "kill -$sig $pid failed"
	echo "=== $(date '+%F %T.%N') SIG$sig $name (pid $pid)" >>"$dir/$name.log"
}

cmd_pid() {
	local dir="${1:-}" name="${2:-}" pid mnt
	farm_dir_check "$dir"
	read -r pid mnt < <(host_line "$dir" "$name") || die "no host $name in $dir"
	echo "$pid"
}

cmd_status() {
	local dir="${1:-}" img name pid mnt st mounted
	farm_dir_check "$dir"
	img="$(cat "$dir/farm.image" 2>/dev/null)" || die "$dir: not a farm"
	[[ -s $dir/farm.pids ]] || { echo "farm $dir: no hosts"; return 0; }
	hosts_json "$img" >"$dir/.hosts.json" || echo '{"hosts":[]}' >"$dir/.hosts.json"
	while read -r name pid mnt; do
		if is_ours "$pid" "$mnt"; then
			case "$(proc_state "$pid")" in
			T | t) st=stopped ;;
			*) st=running ;;
			esac
		else
			st=gone
		fi
		if ! mnt_is_up "$mnt"; then
			mounted=no
		elif [[ $st == gone ]]; then
			mounted=broken
		else
			mounted=yes
		fi
		echo "$name $pid $st $mounted $mnt"
	done <"$dir/farm.pids" | python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
slots = {}
for h in j.get("hosts", []):
    slots.setdefault(h["name"], []).append(h)
print("%-5s %-8s %-8s %-7s %-5s %-11s %-9s %-4s %-7s %s" % ("HOST", "PID", "PROCESS", "MOUNTED", "SLOT",
      "RECORDED", "OBSERVED", "GEN", "AGE", "MOUNTPOINT"))
for line in sys.stdin:
    name, pid, st, mounted, mnt = line.split(None, 4)
    hs = slots.pop(name, [None])
    for h in hs:
        if h is None:
            print("%-5s %-8s %-8s %-7s %-5s %-11s %-9s %-4s %-7s %s" % (name, pid, st, mounted, "-", "-", "-", "-", "-", mnt.strip()))
        else:
            print("%-5s %-8s %-8s %-7s %-5d %-11s %-9s %-4d %-7s %s" % (name, pid, st, mounted, h["slot"], h["recorded"],
                  h["observed"], h["generation"], "%.1fs" % (h["age_ms"] / 1000.0), mnt.strip()))
for name, hs in slots.items():
    for h in hs:
        print("%-5s %-8s %-8s %-7s %-5d %-11s %-9s %-4d %-7s %s" % (name, "-", "-", "-", h["slot"], h["recorded"],
              h["observed"], h["generation"], "%.1fs" % (h["age_ms"] / 1000.0), "(not in this farm)"))
' "$dir/.hosts.json"
	rm -f "$dir/.hosts.json"
}

# Tear everything down, whatever state it is in: thaw frozen hosts so that
# they can unmount cleanly, unmount, wait, then kill -9 and detach what is
# left. Exit 0 only if every host unmounted and exited by itself.
cmd_stop() {
	local dir="${1:-}" name pid mnt forced=0 d i
	[[ -n $dir ]] || usage
	[[ -d $dir ]] || return 0
	local names=() pids=() mnts=()
	if [[ -s $dir/farm.pids ]]; then
		while read -r name pid mnt; do
			names+=("$name")
			pids+=("$pid")
			mnts+=("$mnt")
		done <"$dir/farm.pids"
	fi
	for ((i = 0; i < ${#names[@]}; i++)); do
		if is_ours "${pids[i]}" "${mnts[i]}"; then
			case "$(proc_state "${pids[i]}")" in
			T | t) kill -CONT "${pids[i]}" 2>/dev/null ;;
			esac
		fi
	done
	for ((i = 0; i < ${#names[@]}; i++)); do
		mnt="${mnts[i]}"
		if mnt_is_up "$mnt" && is_ours "${pids[i]}" "$mnt"; then
			if ! timeout 10 fusermount3 -u "$mnt" 2>/dev/null; then
				echo "farm.sh: ${names[i]}: clean unmount failed; detaching" >&2
				forced=1
				mnt_detach "$mnt"
			fi
		elif mnt_is_up "$mnt"; then
			mnt_detach "$mnt"   # a crashed host's dead mount: not a failure of stop
		fi
	done
	for ((i = 0; i < ${#names[@]}; i++)); do
		pid="${pids[i]}"
		is_ours "$pid" "${mnts[i]}" || continue
		if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
			echo "farm.sh: ${names[i]} (pid $pid) did not exit; kill -9" >&2
			forced=1
			kill -9 "$pid" 2>/dev/null
			wait_gone "$pid" 10
		fi
	done
	# Mount points of this farm that are still mounted, listed or not.
	for d in "$dir"/"$PREFIX"*; do
		[[ -d $d ]] || continue
		if mnt_is_up "$d"; then
			echo "farm.sh: $d still mounted; detaching" >&2
			forced=1
			mnt_detach "$d"
		fi
	done
	[[ -f $dir/farm.pids ]] && mv -f "$dir/farm.pids" "$dir/farm.pids.stopped"
	return $forced
}

cmd="${1:-}"
shift || true
case "$cmd" in
mkfs) cmd_mkfs "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
kill) cmd_kill "$@" ;;
freeze) cmd_signal STOP "$@" ;;
thaw) cmd_signal CONT "$@" ;;
restart) cmd_restart "$@" ;;
pid) cmd_pid "$@" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
