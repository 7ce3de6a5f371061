#!/bin/bash
# cluster_torture.sh [SECONDS] [HOSTS]: randomized multi-host torture.
#
# HOSTS (default 3) real FUSE mounts of one image run a random workload for
# SECONDS (default 30): each creates, writes (fsyncing some writes), renames
# and unlinks its own files in four shared directories, and reads and lists
# the others' (tests/integration/cluster/cluster.py `work`; each host keeps a
# log outside the volume of what it fsynced). Meanwhile, every 2 to 5 s, a
# random host is killed (-9, with its workload: a VM dies with its host) and
# restarted, or frozen (SIGSTOP) for its dead timeout + 1.5 s and thawed;
# a thawed host that does not serve its mount again within a few seconds is
# restarted. At the end:
#   - every host lists the same shared tree, and unmounts cleanly;
#   - fsck is clean;
#   - on a fresh mount, every fsynced block of every file whose name is
#     known holds exactly the bytes fsynced last (0 lost fsynced bytes);
#   - no two hosts ever held one exclusive lock: the grant log that lunfs
#     appends to $LUNFS_LOCK_LOG ("grant|release LOCK MODE SLOT GEN MONO_NS",
#     "recover SLOT GEN MONO_NS"; default $T/locks.log) is checked; the check
#     is skipped, with a message, while lunfs writes no such log.
# TORTURE_SEED reproduces the schedule (the seed is printed). On failure the
# logs are kept in $TORTURE_ARTIFACTS (default /tmp/lunfs-torture.<time>);
# TORTURE_KEEP=1 keeps them after a pass too.
# The 30 s run is test_cluster_torture.sh (in the default test run); `make
# torture` runs 300 s, 4 hosts.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
. "$(dirname "$0")/cluster/farm_lib.sh"
mnt_require_fuse

SECS="${1:-30}"
NH="${2:-3}"
[[ $SECS =~ ^[0-9]+$ && $NH =~ ^[0-9]+$ ]] && ((NH >= 2 && NH <= 8)) ||
	{ echo "usage: $0 [SECONDS] [HOSTS 2..8]" >&2; exit 2; }
SEED="${TORTURE_SEED:-$(( $(date +%s) % 100000 ))}"
RANDOM=$SEED
export LUNFS_LOCK_LOG="${LUNFS_LOCK_LOG:-$T/locks.log}"
ART="${TORTURE_ARTIFACTS:-/tmp/lunfs-torture.$(date +%Y%m%d-%H%M%S)}"
CLPY="$(dirname "$0")/cluster/cluster.py"
echo "# torture: $SECS s, $NH hosts, seed $SEED (TORTURE_SEED=$SEED to repeat)"

# keep_logs: copy the workload, grant and host logs out of $T (which the
# cleanup removes). Registered first, so that after an early exit it runs
# once the farm is down; a run that reaches the end calls it itself.
keep_logs() {
	# shellcheck disable=SC2154 # _failed: lib.sh's count of failed checks
	[[ ($_failed -gt 0 || ${TORTURE_KEEP:-0} == 1) && -z ${_kept:-} ]] || return 0
	_kept=1
	mkdir -p "$ART" && cp -a "$T"/*.log "$T"/*.out "$F"/*.log "$ART"/ 2>/dev/null
	echo "# logs kept in $ART"
}
on_exit keep_logs

img="$T/vol.img"
check "mkfs with farm timing" farm_mkfs "$img" 32G
check "farm of $NH hosts starts" farm_up "$NH" "$img"
mkdir -p "$F/h1/shared/d0" "$F/h1/shared/d1" "$F/h1/shared/d2" "$F/h1/shared/d3"
check "the shared directories are seen by every host" bash -c '
	for ((k = 2; k <= $2; k++)); do [[ -d $1/h$k/shared/d3 ]] || exit 1; done' _ "$F" "$NH"

declare -A wpid inc
start_worker() {
	local h="$1" k="${1#h}"
	inc[$h]=$((${inc[$h]:-0} + 1))
	python3 "$CLPY" work --host "$h" --inc "${inc[$h]}" --mnt "$F/$h" --log "$T/work.$h.log" \
		--seed $((SEED * 1000 + k * 100 + inc[$h])) --stopfile "$T/stop" >>"$T/worker.$h.out" 2>&1 &
	wpid[$h]=$!
	on_exit "kill -9 $! 2>/dev/null"
}
stop_worker() {
	local h="$1"
	kill -9 "${wpid[$h]}" 2>/dev/null
	wait "${wpid[$h]}" 2>/dev/null
}
# serving HOST: its daemon runs, its mount answers, and it is live.
serving() {
	local h="$1"
	timeout 5 stat "$F/$h/shared" >/dev/null 2>&1 &&
		[[ $(host_recorded "$img" "$h") == live ]]
}

for ((k = 1; k <= NH; k++)); do
	start_worker "h$k"
done

kills=0 freezes=0 restarts=0 badrestart=0
t_start=$SECONDS
end=$((SECONDS + SECS))
freeze_s="$(awk -v d="$FARM_DEAD" 'BEGIN { printf "%.1f", d / 1000 + 1.5 }')"
while ((SECONDS < end)); do
	sleep $((2 + RANDOM % 4))
	((SECONDS < end)) || break
	h="h$((1 + RANDOM % NH))"
	if ((RANDOM % 10 < 6)); then
		echo "# +$((SECONDS - t_start))s kill -9 $h"
		stop_worker "$h"
		"$FARM" kill "$F" "$h" || fail "kill -9 $h"
		kills=$((kills + 1))
		sleep "0.$((RANDOM % 10))"
		if "$FARM" restart "$F" "$h" >/dev/null; then
			start_worker "$h"
		else
			badrestart=$((badrestart + 1))
			fail "restart of $h after kill -9"
		fi
	else
		echo "# +$((SECONDS - t_start))s freeze $h for ${freeze_s}s"
		"$FARM" freeze "$F" "$h" || fail "freeze $h"
		freezes=$((freezes + 1))
		sleep "$freeze_s"
		"$FARM" thaw "$F" "$h" || fail "thaw $h"
		sleep 2
		if ! serving "$h"; then
			# Fenced and not (yet) rejoined: restart it as a new host.
			echo "# +$((SECONDS - t_start))s $h does not serve after the thaw: restart"
			stop_worker "$h"
			restarts=$((restarts + 1))
			if "$FARM" restart "$F" "$h" >/dev/null; then
				start_worker "$h"
			else
				badrestart=$((badrestart + 1))
				fail "restart of $h after the freeze"
			fi
		fi
	fi
done
touch "$T/stop"
for ((k = 1; k <= NH; k++)); do
	h="h$k"
	for ((i = 0; i < 200; i++)); do
		kill -0 "${wpid[$h]}" 2>/dev/null || break
		sleep 0.1
	done
	stop_worker "$h"
done
echo "# chaos: $kills kills, $freezes freezes, $restarts restarts after a freeze"
cat "$T"/worker.h*.out 2>/dev/null | grep -v '^$' | sed 's/^/# /' | tail -n 40
check "every restart worked" test "$badrestart" -eq 0
"$FARM" status "$F" | sed 's/^/# /'

# --- the tree: the same on every host ------------------------------------------------
for ((k = 1; k <= NH; k++)); do
	timeout 60 python3 "$CLPY" tree "$F/h$k/shared" >"$T/tree.h$k" 2>&1
done
for ((k = 2; k <= NH; k++)); do
	check "h$k lists the same shared tree as h1 ($(wc -l <"$T/tree.h1") entries)" cmp -s "$T/tree.h1" "$T/tree.h$k"
	cmp -s "$T/tree.h1" "$T/tree.h$k" || diff "$T/tree.h1" "$T/tree.h$k" | head -n 6 | sed 's/^/#   /'
done
check "every host unmounts cleanly" farm_down
check "fsck is clean" fsck_clean "$img"

# --- no double grants -----------------------------------------------------------------
rc=0
python3 "$CLPY" grants "$LUNFS_LOCK_LOG" >"$T/grants.out" 2>&1 || rc=$?
sed 's/^/# /' "$T/grants.out"
if [[ $rc -eq 3 ]]; then
	echo "# SKIP the double-grant check: $(tail -n 1 "$T/grants.out")"
else
	check "no two hosts ever held one exclusive lock" test "$rc" -eq 0
fi

# --- fsynced data, on a fresh mount ---------------------------------------------------------
check "a fresh mount of the volume" mnt_up "$img" "$T/verify" -o host=verify
rc=0
python3 "$CLPY" verify "$T/verify" "$T"/work.h*.log >"$T/verify.out" 2>&1 || rc=$?
sed 's/^/# /' "$T/verify.out"
check "0 lost fsynced bytes, 0 lost files" test "$rc" -eq 0
check "the fresh mount unmounts" mnt_down "$T/verify"
check "fsck is clean after the verification" fsck_clean "$img"
keep_logs
finish
