#!/bin/bash
# `lunfs hosts` and `lunfs locks`, human and --json, on a fresh image, on a
# mounted image (found by device and by mount point), and after kill -9 of
# the mount daemon: the slot is still recorded live, is observed "silent"
# within a short watch, and "dead" once watched for its own dead timeout.
# The mount is unmounted and its daemon killed by the cleanup, also when a
# check fails.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"

img="$T/vol.img"
M="$T/mnt"
check "mkfs with short timing" "$B/mkfs.lunfs" -q -s 1G --heartbeat-interval 200 \
	--dead-timeout 2000 --io-deadline 500 "$img"

jq_ok() { python3 -c 'import json,sys; json.load(sys.stdin)'; }
# jget JSONFILE PYEXPR: evaluate PYEXPR with j = the parsed object.
jget() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

# --- fresh image ----------------------------------------------------------------
check "hosts on a fresh image" "$B/lunfs" hosts "$img"
check "hosts says nobody is mounted" grep -q "no host" <<<"$("$B/lunfs" hosts "$img")"
"$B/lunfs" hosts --json "$img" >"$T/h.json"
check "hosts --json parses" jq_ok <"$T/h.json"
check "hosts --json: no hosts" test "$(jget "$T/h.json" 'len(j["hosts"])')" -eq 0
check "hosts --all lists every slot" test "$("$B/lunfs" hosts --all --no-wait --json "$img" |
	python3 -c 'import json,sys; print(len(json.load(sys.stdin)["hosts"]))')" -eq 64
check "locks on a fresh image" "$B/lunfs" locks "$img"
"$B/lunfs" locks --json "$img" >"$T/l.json"
check "locks --json parses" jq_ok <"$T/l.json"
check "locks --json: nothing held" test "$(jget "$T/l.json" 'len(j["locks"])')" -eq 0
check "locks --json: cluster counts add up" test "$(jget "$T/l.json" \
	'j["clusters"]["free"]+j["clusters"]["file"]+j["clusters"]["meta"]+j["clusters"]["inode"]==j["clusters"]["total"]')" = True
expect_exit 2 "hosts without a device is a usage error" "$B/lunfs" hosts
expect_exit 2 "locks with a bad option is a usage error" "$B/lunfs" locks --bogus "$img"
expect_exit 1 "hosts on a non-volume fails" "$B/lunfs" hosts /dev/null
mkdir -p "$T/plain"
expect_exit 1 "a directory with nothing mounted fails" "$B/lunfs" hosts "$T/plain"
check "help lists hosts and locks" bash -c "'$B/lunfs' help | grep -q hosts && '$B/lunfs' help | grep -q locks"

# --- mounted ----------------------------------------------------------------------
if [[ ! -c /dev/fuse ]] || ! command -v fusermount3 >/dev/null 2>&1 || [[ $(id -u) -ne 0 ]]; then
	echo "# SKIP the mounted part: no FUSE here"
	finish
	exit $?
fi
check "mount as host a" mnt_up "$img" "$M" -o host=a
echo data >"$M/file"
"$B/lunfs" hosts --json "$img" >"$T/h.json"
check "hosts --json parses (mounted)" jq_ok <"$T/h.json"
check "one host" test "$(jget "$T/h.json" 'len(j["hosts"])')" -eq 1
check "its name is a" test "$(jget "$T/h.json" 'j["hosts"][0]["name"]')" = a
check "recorded live" test "$(jget "$T/h.json" 'j["hosts"][0]["recorded"]')" = live
check "observed live" test "$(jget "$T/h.json" 'j["hosts"][0]["observed"]')" = live
check "its timing is the volume's" test "$(jget "$T/h.json" \
	'(j["hosts"][0]["hb_interval_ms"],j["hosts"][0]["dead_timeout_ms"])')" = "(200, 2000)"
pid="$(mnt_pid_of "$M")"
check "pid is the daemon's" test "$(jget "$T/h.json" 'j["hosts"][0]["pid"]')" = "$pid"
check "hosts by mount point" bash -c "'$B/lunfs' hosts '$M' | grep -E '^0 +a ' | grep -q ' live '"
"$B/lunfs" locks --json "$M" >"$T/l.json"
check "locks --json by mount point parses" jq_ok <"$T/l.json"
check "locks (mounted) runs" "$B/lunfs" locks "$M"
check "locks --all (mounted) runs" "$B/lunfs" locks --all "$img"

# --- kill -9 ------------------------------------------------------------------------
check "daemon found" test -n "$pid"
kill -9 "$pid"
mnt_pid_wait "$pid"
fusermount3 -u -z "$M" 2>/dev/null || umount -l "$M" 2>/dev/null
"$B/lunfs" hosts --json "$img" >"$T/h.json"
check "after kill -9: still recorded live" test "$(jget "$T/h.json" 'j["hosts"][0]["recorded"]')" = live
check "after kill -9: observed silent (not yet dead)" \
	test "$(jget "$T/h.json" 'j["hosts"][0]["observed"]')" = silent
"$B/lunfs" hosts --confirm-dead --json "$img" >"$T/h.json"
check "after its timeout: observed dead" test "$(jget "$T/h.json" 'j["hosts"][0]["observed"]')" = dead
check "age at least its dead timeout" test "$(jget "$T/h.json" 'j["hosts"][0]["age_ms"]')" -ge 2000
check "human output says dead" bash -c "'$B/lunfs' hosts --confirm-dead '$img' | grep -q ' dead '"
check "locks after the crash runs" "$B/lunfs" locks "$img"
finish
