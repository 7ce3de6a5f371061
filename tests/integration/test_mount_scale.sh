#!/bin/bash
# Scale of a FUSE-mounted lunfs volume and the daemon's memory: 100,000
# files in one directory (created, listed each exactly once, looked up at
# random), 1,000 of them held open at once, and the acceptance criterion
# that the mount daemon's resident memory stays under 256 MiB meanwhile.
# Prints the figures (creation rate, listing time, VmRSS).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/mount_lib.sh"
mnt_require_fuse

N=${LUNFS_SCALE_FILES:-100000}
HOLD=1000
img="$T/vol.img"
M="$T/mnt"
check "mkfs 8 GiB" "$B/mkfs.lunfs" -q -L scale -s 8G "$img"
check "mount (foreground daemon)" mnt_up_fg "$img" "$M" "$T/daemon.log" -o host=scale1
pid=$MNT_PID

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
echo "# daemon VmRSS after mount: $(rss_kib "$pid") KiB"

cat >"$T/scale.py" <<'PY'
import os, random, resource, sys, time
d, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
what = sys.argv[4]
if what == "create":
    os.mkdir(d)
    t = time.monotonic()
    for i in range(n):
        os.close(os.open("%s/f%06d" % (d, i), os.O_CREAT | os.O_WRONLY, 0o644))
    dt = time.monotonic() - t
    print("# created %d files in %.1f s (%.0f/s)" % (n, dt, n / dt))
elif what == "list":
    t = time.monotonic()
    names = [e.name for e in os.scandir(d)]
    dt = time.monotonic() - t
    s = set(names)
    want = set("f%06d" % i for i in range(n))
    print("# listed %d entries in %.2f s" % (len(names), dt))
    sys.exit(0 if len(names) == len(s) == n and s == want else 1)
elif what == "stat":
    rnd = random.Random(1)
    t = time.monotonic()
    for _ in range(5000):
        os.stat("%s/f%06d" % (d, rnd.randrange(n)))
    print("# 5000 random lookups in %.2f s" % (time.monotonic() - t))
elif what == "hold":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, hold + 100)), hard))
    fds = [os.open("%s/f%06d" % (d, i * (n // hold)), os.O_RDWR) for i in range(hold)]
    for fd in fds[:100]:
        os.write(fd, b"x" * 4096)
    print("held", len(fds), flush=True)
    sys.stdin.read()   # until the test closes our stdin
PY

t0=$SECONDS
check "create $N files in one directory" python3 "$T/scale.py" "$M/d" "$N" "$HOLD" create
check "list: each of $N entries exactly once" python3 "$T/scale.py" "$M/d" "$N" "$HOLD" list
check "ls | wc -l agrees" test "$(ls -f "$M/d" | wc -l)" -eq $((N + 2))
check "random lookups" python3 "$T/scale.py" "$M/d" "$N" "$HOLD" stat

# Hold $HOLD files open (a coprocess whose stdin we keep), then measure.
coproc HOLDER { python3 "$T/scale.py" "$M/d" "$N" "$HOLD" hold; }
holder_pid=$HOLDER_PID
on_exit "kill $holder_pid"
read -r -t 60 line <&"${HOLDER[0]}"
check "$HOLD files held open" test "$line" = "held $HOLD"
rss=$(rss_kib "$pid")
echo "# daemon VmRSS with $N files and $HOLD open: $rss KiB ($((rss / 1024)) MiB)"
check "daemon VmRSS < 256 MiB (have $((rss / 1024)) MiB)" test "$rss" -lt $((256 * 1024))
exec {HOLDER[1]}>&-
wait "$holder_pid" 2>/dev/null
echo "# scale test body took $((SECONDS - t0)) s"

check "unmount" mnt_down "$M"
rc=0
wait "$pid" || rc=$?
check "daemon exited 0" test "$rc" -eq 0
((rc == 0)) || sed 's/^/# daemon: /' "$T/daemon.log" | tail -n 20
check "journal clean" journal_clean "$img"
finish
