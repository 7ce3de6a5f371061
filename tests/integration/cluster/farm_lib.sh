# Helpers for the multi-host tests. Source after lib.sh and mount_lib.sh:
#   . "$(dirname "$0")/lib.sh"
#   . "$(dirname "$0")/mount_lib.sh"
#   . "$(dirname "$0")/cluster/farm_lib.sh"
# Gives: $FARM (scripts/farm.sh), $F (the farm directory, $T/farm),
# cl (tests/integration/cluster/cluster.py), farm_mkfs, farm_up (registers
# `farm.sh stop` with lib.sh's exit cleanup, so every host is unmounted and
# every daemon ended even when a check fails), bg_start/bg_stop for helper
# processes (killed by PID in the cleanup), and small JSON queries.

_farm_here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FARM="$(cd "$_farm_here/../../.." && pwd)/scripts/farm.sh"
F="$T/farm"
export LUNFS_BUILD="$B"

cl() { python3 "$_farm_here/cluster.py" "$@"; }

# Timing of every farm volume (ms); T >= 3*I + 2*D: 2000 >= 600 + 1000.
FARM_HB=200
FARM_DEAD=2000
FARM_IO=500
export FARM_HB FARM_DEAD FARM_IO

# farm_mkfs IMG [SIZE [mkfs options]]
farm_mkfs() { "$FARM" mkfs "$@"; }

# farm_up N IMG: start the farm in $F; its teardown is registered first.
farm_up() {
	on_exit "'$FARM' stop '$F'"
	"$FARM" start "$1" "$2" "$F"
}

# farm_down: stop the farm now; fails if a host had to be forced down.
farm_down() { "$FARM" stop "$F"; }

# host_gen IMG NAME: the generation of NAME's slot (empty if absent).
host_gen() { cl hosts "$1" "$2" | awk '$1 != "absent" { print $5; exit }'; }

# host_recorded IMG NAME: the recorded state of NAME's newest slot, or "absent".
host_recorded() { cl hosts "$1" "$2" | awk '{ s = ($1 == "absent") ? "absent" : $3 } END { print s }'; }

# bg_start VAR command...: run a helper process in the background, store its
# PID in VAR and kill it (by PID) in the cleanup.
bg_start() {
	local var="$1"
	shift
	"$@" &
	printf -v "$var" '%s' "$!"
	on_exit "kill -9 $! 2>/dev/null"
}

# bg_stop PID: end a helper process and reap it.
bg_stop() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# wait_file FILE [SECONDS]: until FILE has content (a holder's READYFILE).
wait_file() {
	local f="$1" n=$((${2:-10} * 20)) i
	for ((i = 0; i < n; i++)); do
		[[ -s $f ]] && return 0
		sleep 0.05
	done
	return 1
}

# hold MODE PATH VAR: start a holder of PATH (rw|ro); VAR gets its PID; its
# outcome ("ok" or an errno name) is in $T/hold.$VAR.
hold() {
	local mode="$1" path="$2" var="$3"
	rm -f "$T/hold.$var"
	bg_start "$var" python3 "$_farm_here/cluster.py" hold "$path" "$mode" "$T/hold.$var"
	wait_file "$T/hold.$var" 10
	[[ $(cat "$T/hold.$var" 2>/dev/null) == ok ]]
}

# fsck_clean IMG: a read-only fsck finds nothing (exit 0).
fsck_clean() {
	local rc=0
	"$B/fsck.lunfs" -n -q "$1" >"$T/fsck.out" 2>&1 || rc=$?
	if [[ $rc -ne 0 ]]; then
		echo "# fsck exit $rc:"
		sed 's/^/#   /' "$T/fsck.out" | head -n 30
	fi
	return $rc
}

# same A B: both non-empty and equal (an unreadable file's empty checksum
# must not match another's).
same() { [[ -n $1 && $1 == "$2" ]]; }
