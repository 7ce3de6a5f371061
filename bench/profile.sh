#!/usr/bin/env bash
# bench/profile.sh: where the lunfs daemon spends its time on the data
# path, beside the FUSE passthrough doing the same job (issue 6, the
# profile behind docs/PERFORMANCE.md).
#
# For each job (4 KiB random write, 4 KiB random read, 1 MiB sequential
# write; bench/fio/*.fio, O_DIRECT, BENCH_RUNTIME seconds, default 5) on a
# written 1 GiB image, on lunfs and on bench/passthrough_ll:
#   - the daemon's CPU time per I/O (utime+stime from /proc/PID/stat around
#     the job, divided by the I/Os fio completed): the cost that decides
#     throughput once the CPUs are busy;
#   - with perf (software cpu-clock event: hardware counters are often
#     missing in VMs), a call-graph profile of the daemon during the job,
#     the top symbols printed (perf report --no-children, self time).
# Needs root, fio, perf (scripts/deps.sh --bench), build/ made, and
# bench/run's helpers (it builds bench/passthrough_ll itself).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="${LUNFS_BUILD:-$ROOT/build}"
BASE="${BENCH_DIR:-/dev/shm}"
RUNTIME="${BENCH_RUNTIME:-5}"
ENGINE="${BENCH_ENGINE:-io_uring}"
TOP="${PROFILE_TOP:-25}"

die() {
	echo "bench/profile.sh: $*" >&2
	exit 1
}
for t in fio perf fusermount3 python3 cc pkg-config; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing (scripts/deps.sh --bench)"
done
[[ -x $B/lunfs && -x $B/mkfs.lunfs ]] || die "no lunfs build in $B"

W="$(mktemp -d "$BASE/lunfs-prof.XXXXXX")" || die "no work directory"
M="$(mktemp -d /tmp/lunfs-prof-mnt.XXXXXX)" || die "no mount directory"
PT_PID=""
LUNFS_PID=""
cleanup() {
	local d
	for d in "$M/pt" "$M/lunfs"; do
		mountpoint -q "$d" && fusermount3 -u "$d" 2>/dev/null
	done
	for p in $PT_PID $LUNFS_PID; do
		for ((i = 0; i < 100; i++)); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$W"
	[[ -n ${KEEP_LOGS:-} ]] || rm -rf "$M"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -std=c11 -O2 -g -D_GNU_SOURCE $(pkg-config --cflags fuse3) "$ROOT/bench/passthrough_ll.c" \
	-o "$M/passthrough_ll" $(pkg-config --libs fuse3) -lpthread || die "cannot build passthrough_ll"
cp "$B/lunfs" "$M/lunfs-bin" || die "cannot copy $B/lunfs"

# CPU time (µs) used so far by all threads of a process.
cpu_us() {
	python3 - "$1" <<'EOF'
import os, sys
f = open("/proc/%s/stat" % sys.argv[1]).read().rsplit(")", 1)[1].split()
print(int((int(f[11]) + int(f[12])) * 1e6 / os.sysconf("SC_CLK_TCK")))
EOF
}

echo "== setup: lunfs volume and passthrough on $(stat -f -c %T "$W") ($BASE)"
mkdir -p "$W/ptsrc" "$M/pt" "$M/lunfs"
"$B/mkfs.lunfs" -s 16G "$W/vol.img" >/dev/null || die "mkfs failed"
"$M/passthrough_ll" "$W/ptsrc" "$M/pt" &
PT_PID=$!
"$M/lunfs-bin" mount -f -o host=prof "$W/vol.img" "$M/lunfs" 2>"$M/lunfs.log" &
LUNFS_PID=$!
for ((i = 0; i < 200; i++)); do
	mountpoint -q "$M/pt" && mountpoint -q "$M/lunfs" && break
	sleep 0.05
done
mountpoint -q "$M/pt" && mountpoint -q "$M/lunfs" || die "mounts did not come up"
for fs in pt lunfs; do
	ENGINE="$ENGINE" FILE="$M/$fs/img" SIZE=1G RUNTIME=600 fio "$ROOT/bench/fio/first-write-1m.fio" >/dev/null ||
		die "layout on $fs failed"
done

# First without perf, for the CPU per I/O undisturbed by sampling; then
# the profiles.
echo "== CPU per I/O (no profiler attached)"
for job in rand-write rand-read seq-write; do
	for fs in pt lunfs; do
		pid=$PT_PID
		[[ $fs == lunfs ]] && pid=$LUNFS_PID
		c0="$(cpu_us "$pid")"
		ENGINE="$ENGINE" FILE="$M/$fs/img" SIZE=1G RUNTIME="$RUNTIME" \
			fio --output-format=json --output="$M/$fs-$job-np.json" "$ROOT/bench/fio/$job.fio" >/dev/null
		c1="$(cpu_us "$pid")"
		python3 - "$M/$fs-$job-np.json" "$fs" "$job" "$c0" "$c1" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
ios = sum(j["read"]["total_ios"] + j["write"]["total_ios"] for j in d["jobs"])
bw = sum(j["read"]["bw_bytes"] + j["write"]["bw_bytes"] for j in d["jobs"]) / 1048576.0
iops = sum(j["read"]["iops"] + j["write"]["iops"] for j in d["jobs"])
print("%-6s %-11s %9.0f IOPS %8.0f MiB/s  daemon CPU %7.1f us per I/O" %
      (sys.argv[2], sys.argv[3], iops, bw, (int(sys.argv[5]) - int(sys.argv[4])) / max(ios, 1)))
EOF
	done
done

echo "== perf profiles of the daemons (cpu-clock, self time, top $TOP symbols)"
for job in rand-write rand-read seq-write; do
	for fs in lunfs pt; do
		pid=$PT_PID
		[[ $fs == lunfs ]] && pid=$LUNFS_PID
		perf record -q -e cpu-clock -F 1999 -g -p "$pid" -o "$M/$fs-$job.perf" -- \
			env ENGINE="$ENGINE" FILE="$M/$fs/img" SIZE=1G RUNTIME="$RUNTIME" \
			fio --output-format=json --output="$M/$fs-$job.json" "$ROOT/bench/fio/$job.fio" \
			>/dev/null 2>"$M/$fs-$job.err"
		echo "--- $fs, $job"
		perf report -i "$M/$fs-$job.perf" --no-children --sort symbol --stdio -g none 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -n "$TOP"
	done
done
if [[ -n ${KEEP_LOGS:-} ]]; then
	echo "perf data kept in $M (perf report -i $M/lunfs-rand-write.perf --no-children)"
fi
