#!/usr/bin/env python3
"""Helpers for the multi-host tests (tests/integration/cluster_*.sh,
cluster_torture.sh, bench/failover.sh).

Subcommands:
  hold PATH rw|ro READYFILE   open PATH and keep it open until SIGTERM; writes
                              "ok" or the errno name (EBUSY...) to READYFILE
  tryopen PATH rw|ro          try one open; prints "ok" or the errno name;
                              exit 0 on success, 1 on failure
  waitopen PATH rw|ro T0 [--interval S] [--timeout S]
                              retry the open every S (0.05) until it works;
                              prints the seconds since T0 (a time.time() value)
  writer PATH LOG             hold PATH for write and keep writing (and
                              fsyncing) until SIGTERM; logs every result
  tree ROOT                   sorted listing "path type size" of a tree
  hosts IMAGE [NAME]          one line per claimed slot (of NAME):
                              "name slot recorded observed generation", from
                              `lunfs hosts --json --no-wait`; "absent" if none
  waitgone IMAGE NAME GEN TIMEOUT
                              wait until no slot records NAME at generation GEN
                              as live/recovering/joining/leaving; prints secs
  lock IMAGE INO              the inode lock of INO: "mode owner holders..."
  work ...                    the torture workload of one host (see work_main)
  verify ROOT LOG...          the torture checker: fsynced data present
  grants LOCKLOG              no two hosts ever held one lock in conflicting
                              modes ($LUNFS_LOCK_LOG, lockd/grantlog.c)

The torture log (one per host, appended across incarnations; one write(2)
per line so that a kill -9 leaves whole lines):
  I inc pid             an incarnation of the host starts: writes of earlier
                        incarnations that were not fsynced become unknown
  C fid path            before creating; CS fid once file and dir are fsynced
  W fid blk nblk tok    before a pwrite of nblk 4 KiB blocks at block blk;
                        block b holds pattern(tok, b)
  F fid                 fsync(fd) returned 0: every earlier W of fid is durable
  R fid path            before a rename; RS fid once both dirs are fsynced
  U fid                 before an unlink: the file is no longer checked
  E op fid errno        an operation failed; its blocks become unknown
"""
import errno
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time

BLK = 4096
BUILD = os.environ.get("LUNFS_BUILD") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../build")


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if isinstance(e, OSError) and e.errno else type(e).__name__


def open_flags(mode):
    if mode == "rw":
        return os.O_RDWR
    if mode == "ro":
        return os.O_RDONLY
    raise SystemExit("mode must be rw or ro, not %r" % mode)


# --- open helpers ------------------------------------------------------------------

def cmd_hold(path, mode, ready):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    try:
        fd = os.open(path, open_flags(mode))
    except OSError as e:
        with open(ready, "w") as f:
            f.write(ename(e) + "\n")
        return 1
    with open(ready, "w") as f:
        f.write("ok\n")
    while True:
        signal.pause()
    os.close(fd)


def cmd_tryopen(path, mode):
    try:
        fd = os.open(path, open_flags(mode))
    except OSError as e:
        print(ename(e))
        return 1
    os.close(fd)
    print("ok")
    return 0


def cmd_waitopen(path, mode, t0, interval=0.05, timeout=60.0):
    t0 = float(t0)
    deadline = time.time() + timeout
    tries, last = 0, "-"
    while True:
        tries += 1
        try:
            fd = os.open(path, open_flags(mode))
            os.close(fd)
            print("%.3f %d %s" % (time.time() - t0, tries, last))
            return 0
        except OSError as e:
            last = ename(e)
        if time.time() > deadline:
            print("timeout %d %s" % (tries, last))
            return 1
        time.sleep(interval)


def cmd_writer(path, log):
    """Hold PATH open for write and keep writing 4 KiB of 0x11 at rotating
    offsets, fsyncing every 8th write, until SIGTERM. Each result goes to LOG
    as "TIME write|fsync N ok|ERRNO" (TIME from time.time())."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    out = open(log, "a", buffering=1)
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        out.write("%.3f open 0 %s\n" % (time.time(), ename(e)))
        return 1
    out.write("%.3f open 0 ok\n" % time.time())
    data = b"\x11" * BLK
    i = 0
    while not stop:
        for what in ("write", "fsync") if i % 8 == 7 else ("write",):
            try:
                if what == "write":
                    os.pwrite(fd, data, (i % 1024) * BLK)
                else:
                    os.fsync(fd)
                res = "ok"
            except OSError as e:
                res = ename(e)
            out.write("%.3f %s %d %s\n" % (time.time(), what, i, res))
        i += 1
        time.sleep(0.01)
    try:
        os.close(fd)
    except OSError:
        pass
    return 0


def cmd_tree(root):
    out = []
    for d, dirs, files in os.walk(root, onerror=lambda e: out.append("ERR %s %s" % (e.filename, ename(e)))):
        for n in dirs + files:
            p = os.path.join(d, n)
            rel = os.path.relpath(p, root)
            try:
                st = os.lstat(p)
            except OSError as e:
                out.append("ERR %s %s" % (rel, ename(e)))
                continue
            if os.path.isdir(p) and not os.path.islink(p):
                out.append("%s d -" % rel)
            else:
                out.append("%s f %d" % (rel, st.st_size))
    for line in sorted(out):
        print(line)
    return 0


# --- lunfs hosts / locks -------------------------------------------------------------

def hosts_json(image, wait=False):
    args = [os.path.join(BUILD, "lunfs"), "hosts", "--json"] + ([] if wait else ["--no-wait"]) + [image]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(errno.EIO, "lunfs hosts failed: " + r.stderr.strip())
    return json.loads(r.stdout)


def cmd_hosts(image, name=None):
    found = False
    for h in hosts_json(image)["hosts"]:
        if name is None or h["name"] == name:
            print(h["name"], h["slot"], h["recorded"], h["observed"], h["generation"])
            found = True
    if not found:
        print("absent")
    return 0


def cmd_waitgone(image, name, gen, timeout):
    gen, timeout = int(gen), float(timeout)
    t0 = time.monotonic()
    last = ""
    while True:
        held = [h for h in hosts_json(image)["hosts"] if h["name"] == name and h["generation"] == gen
                and h["recorded"] in ("live", "recovering", "joining", "leaving")]
        if not held:
            print("%.1f" % (time.monotonic() - t0))
            return 0
        last = " ".join("%s/%s" % (h["recorded"], h["observed"]) for h in held)
        if time.monotonic() - t0 > timeout:
            print("timeout: %s gen %d still %s" % (name, gen, last))
            return 1
        time.sleep(0.1)


def cmd_lock(image, ino):
    r = subprocess.run([os.path.join(BUILD, "lunfs"), "locks", "--json", image], capture_output=True, text=True)
    if r.returncode != 0:
        print("error", r.stderr.strip())
        return 1
    for lk in json.loads(r.stdout)["locks"]:
        if lk["kind"] == "inode" and lk["id"] == int(ino):
            owner = lk["owner"]["host"] if lk.get("owner") else "-"
            holders = " ".join(h["host"] for h in lk.get("holders", []))
            print(lk["mode"], owner, holders)
            return 0
    print("none")
    return 0


# --- torture: log replay (shared by the worker and the checker) ----------------------------

def pattern(tok, blk):
    return hashlib.sha256(("%s:%d" % (tok, blk)).encode()).digest() * (BLK // 32)


class FileState:
    def __init__(self, fid, path):
        self.fid = fid
        self.paths = [path]        # candidate names: more than one while a rename is unconfirmed
        self.created = False       # CS seen: the file and its name are durable
        self.unlinked = False
        self.blocks = {}           # blk -> [tok, "pending"|"synced"|"unknown"]


def replay(lines):
    files = {}
    for line in lines:
        p = line.split()
        if not p or (len(line) > 0 and not line.endswith("\n")):
            continue                                   # a torn last line
        op = p[0]
        try:
            if op == "I":
                for f in files.values():
                    for b in f.blocks.values():
                        if b[1] == "pending":
                            b[1] = "unknown"
            elif op == "C":
                files[p[1]] = FileState(p[1], p[2])
            elif op == "CS":
                files[p[1]].created = True
            elif op == "W":
                f = files[p[1]]
                blk, n, tok = int(p[2]), int(p[3]), p[4]
                for b in range(blk, blk + n):
                    f.blocks[b] = [tok, "pending"]
            elif op == "F":
                for b in files[p[1]].blocks.values():
                    if b[1] == "pending":
                        b[1] = "synced"
            elif op == "R":
                f = files[p[1]]
                f.paths = [f.paths[-1], p[2]] if len(f.paths) == 1 else f.paths + [p[2]]
            elif op == "RS":
                f = files[p[1]]
                f.paths = [f.paths[-1]]
            elif op == "U":
                files[p[1]].unlinked = True
            elif op == "E":
                f = files.get(p[2])
                if f is not None:
                    for b in f.blocks.values():
                        if b[1] == "pending":
                            b[1] = "unknown"
        except (KeyError, IndexError, ValueError):
            continue
    return files


# --- torture: the worker -----------------------------------------------------------------

class Worker:
    def __init__(self, host, inc, mnt, log, seed, ndirs, stopfile):
        self.host, self.inc, self.mnt, self.ndirs, self.stopfile = host, inc, mnt, ndirs, stopfile
        self.rng = random.Random(seed)
        self.stop = False
        self.seq = 0
        self.nfile = 0
        self.cur = "-"             # the file of the operation under way, for E lines
        self.stats = {}
        prior = []
        if os.path.exists(log):
            with open(log) as f:
                prior = f.readlines()
        self.logfd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.log("I %d %d" % (inc, os.getpid()))
        # Adopt the files of earlier incarnations whose name is certain, so that
        # their locks move from a dead generation to this one.
        self.files = {fid: f.paths[0] for fid, f in replay(prior).items()
                      if f.created and not f.unlinked and len(f.paths) == 1}

    def log(self, s):
        os.write(self.logfd, (s + "\n").encode())

    def count(self, what):
        self.stats[what] = self.stats.get(what, 0) + 1

    def rel(self, p):
        return os.path.join(self.mnt, p)

    def fsync_dir(self, d):
        fd = os.open(self.rel(d), os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def op_create(self):
        self.nfile += 1
        fid = "%s.i%d.f%d" % (self.host, self.inc, self.nfile)
        path = "shared/d%d/%s" % (self.rng.randrange(self.ndirs), fid)
        self.cur = fid
        self.log("C %s %s" % (fid, path))
        fd = os.open(self.rel(path), os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.fsync_dir(os.path.dirname(path))
        self.log("CS %s" % fid)
        self.files[fid] = path
        self.op_write(fid)

    def op_write(self, fid=None):
        if fid is None:
            fid = self.rng.choice(sorted(self.files))
        self.cur = fid
        fd = os.open(self.rel(self.files[fid]), os.O_RDWR)
        try:
            for _ in range(self.rng.randint(1, 3)):
                blk, n = self.rng.randrange(256), self.rng.randint(1, 4)
                self.seq += 1
                tok = "%s.%d.%d" % (self.host, self.inc, self.seq)
                self.log("W %s %d %d %s" % (fid, blk, n, tok))
                data = b"".join(pattern(tok, b) for b in range(blk, blk + n))
                if os.pwrite(fd, data, blk * BLK) != len(data):
                    raise OSError(errno.EIO, "short write")
            if self.rng.random() < 0.6:
                os.fsync(fd)
                self.log("F %s" % fid)
                self.count("fsync")
        finally:
            os.close(fd)

    def op_rename(self):
        fid = self.rng.choice(sorted(self.files))
        old = self.files[fid]
        self.cur = fid
        self.seq += 1
        new = "shared/d%d/%s.r%d" % (self.rng.randrange(self.ndirs), fid, self.seq)
        self.log("R %s %s" % (fid, new))
        self.files.pop(fid)                # unknown name until confirmed
        os.rename(self.rel(old), self.rel(new))
        self.fsync_dir(os.path.dirname(old))
        self.fsync_dir(os.path.dirname(new))
        self.log("RS %s" % fid)
        self.files[fid] = new

    def op_unlink(self):
        fid = self.rng.choice(sorted(self.files))
        path = self.files.pop(fid)
        self.log("U %s" % fid)
        os.unlink(self.rel(path))

    def op_peek(self):
        # Read another host's file: shared opens and coherence under churn.
        # Its owner may hold it for write (EBUSY) or remove it (ENOENT).
        d = "shared/d%d" % self.rng.randrange(self.ndirs)
        names = [n for n in os.listdir(self.rel(d)) if not n.startswith(self.host + ".")]
        if not names:
            return
        try:
            with open(self.rel(os.path.join(d, self.rng.choice(names))), "rb") as f:
                f.read(64 * 1024)
        except OSError as e:
            if e.errno not in (errno.EBUSY, errno.ENOENT):
                raise

    def op_list(self):
        for i in range(self.ndirs):
            d = self.rel("shared/d%d" % i)
            for n in os.listdir(d):
                try:
                    os.lstat(os.path.join(d, n))
                except FileNotFoundError:
                    pass

    def run(self, deadline):
        signal.signal(signal.SIGTERM, self.on_term)
        while not self.stop and time.time() < deadline and not os.path.exists(self.stopfile):
            r = self.rng.random()
            self.cur = "-"
            if r < 0.15 or len(self.files) < 2:
                op, name = self.op_create, "create"
            elif len(self.files) > 12 and r < 0.25:
                op, name = self.op_unlink, "unlink"
            elif r < 0.65:
                op, name = self.op_write, "write"
            elif r < 0.75:
                op, name = self.op_rename, "rename"
            elif r < 0.80:
                op, name = self.op_unlink, "unlink"
            elif r < 0.92:
                op, name = self.op_peek, "peek"
            else:
                op, name = self.op_list, "list"
            try:
                op()
                self.count(name)
            except OSError as e:
                # The host may be dead, frozen or fenced: note it and go on.
                # A write or fsync that failed leaves its blocks unknown.
                self.count("err_" + ename(e))
                self.log("E %s %s %s" % (name, self.cur, ename(e)))
                time.sleep(0.1)
        print("%s inc %d: %s" % (self.host, self.inc, " ".join("%s=%d" % kv for kv in sorted(self.stats.items()))))

    def on_term(self, *_):
        self.stop = True


def work_main(argv):
    import argparse
    a = argparse.ArgumentParser(prog="cluster.py work")
    a.add_argument("--host", required=True)
    a.add_argument("--inc", type=int, required=True)
    a.add_argument("--mnt", required=True)
    a.add_argument("--log", required=True)
    a.add_argument("--seed", type=int, default=1)
    a.add_argument("--dirs", type=int, default=4)
    a.add_argument("--seconds", type=float, default=3600)
    a.add_argument("--stopfile", default="/nonexistent")
    o = a.parse_args(argv)
    w = Worker(o.host, o.inc, o.mnt, o.log, o.seed, o.dirs, o.stopfile)
    w.run(time.time() + o.seconds)
    return 0


# --- torture: the checker -----------------------------------------------------------------

def cmd_verify(root, logs):
    nfiles = nblocks = lost = missing = dup = 0
    problems = []
    for log in logs:
        with open(log) as f:
            files = replay(f.readlines())
        for fid, st in sorted(files.items()):
            if st.unlinked or not st.created:
                continue
            present = [p for p in st.paths if os.path.exists(os.path.join(root, p))]
            if not present:
                missing += 1
                problems.append("%s: file lost (expected at %s)" % (fid, " or ".join(st.paths)))
                continue
            if len(present) > 1:
                dup += 1
                problems.append("%s: present under %s (a rename half done)" % (fid, " and ".join(present)))
            nfiles += 1
            with open(os.path.join(root, present[-1]), "rb") as fh:
                for blk, (tok, state) in sorted(st.blocks.items()):
                    if state != "synced":
                        continue
                    nblocks += 1
                    fh.seek(blk * BLK)
                    got = fh.read(BLK)
                    want = pattern(tok, blk)
                    if got != want:
                        bad = sum(1 for i in range(BLK) if i >= len(got) or got[i] != want[i])
                        lost += bad
                        problems.append("%s block %d: %d of %d fsynced bytes differ (token %s)"
                                        % (fid, blk, bad, BLK, tok))
    for p in problems[:20]:
        print("  " + p)
    if len(problems) > 20:
        print("  ... %d more" % (len(problems) - 20))
    print("verify: %d files, %d fsynced blocks checked, %d lost fsynced bytes, %d lost files, %d doubled names"
          % (nfiles, nblocks, lost, missing, dup))
    return 0 if not problems else 1


def mode_class(m):
    m = m.lower()
    if m.startswith("ex") or m == "x":
        return "X"
    if m.startswith("mu") or m == "mw" or m == "m":
        return "M"
    return "S"


# The grant log that lockd appends to $LUNFS_LOCK_LOG (lockd/grantlog.c has
# the contract). Fields per record, after the keyword:
GRANT_FIELDS = {"grant": 5, "release": 5, "takeover": 7, "recover": (3, 5), "join": 3, "leave": 3}
_GRANT_KEY = None


def grant_log_records(data):
    """The whole records of a grant log, and how many torn ones were dropped.
    Every record is one write(2) ending in a newline. A kill -9 in the middle
    of a write can leave a torn record (no newline), which the next record
    then continues on the same physical line; the newline belongs to that
    last record. So only the last record that starts on a line is whole."""
    global _GRANT_KEY
    import re
    if _GRANT_KEY is None:
        _GRANT_KEY = re.compile(r"(%s) " % "|".join(GRANT_FIELDS))
    recs, torn = [], 0
    lines = data.split("\n")
    for i, line in enumerate(lines):
        if i == len(lines) - 1:
            torn += 1 if line else 0            # no newline: a torn tail
            continue
        starts = [m.start() for m in _GRANT_KEY.finditer(line)]
        if not starts:
            torn += 1 if line.strip() else 0
            continue
        torn += len(starts) - 1 + (1 if starts[0] != 0 else 0)
        recs.append(line[starts[-1]:])
    return recs, torn


def cmd_grants(path):
    """Check a grant log: no two incarnations (slot, generation) ever held one
    lock in conflicting modes (X with anything, S with M).

    A grant is logged after the CAW that took the lock succeeded; a release,
    and every end of an incarnation (recover: before the recoverer frees the
    dead slot; join: before a new generation of the slot is claimed; leave:
    before a clean unmount frees it), before the write that ends the hold is
    submitted. So every logged hold lies inside the real one, and two logged
    holds that overlap are a real double grant (no false positives).

    - The end of an incarnation ends all its holds: a host killed -9 logs no
      release (its recoverer's recover line, or its own next generation's
      join, ends them), and a frozen host that was recovered still believes it
      holds its locks, but they are over in the log from its recovery on.
    - Lines of an incarnation after its end are ignored (reported as zombie
      grants): a host frozen between its grant CAW and the log line writes it
      after it was recovered, and the grant did happen, but its real start is
      unknown, and it was fenced from its recovery on.
    - takeover lines are checked, not believed: lockd takes over a record only
      when the incarnation that held it is over, which an earlier end line
      must say. A takeover of a hold that is still open is a double grant too.
    - Events are ordered by their CLOCK_MONOTONIC time (one machine); at equal
      times ends come before starts, the order the protocol implies."""
    if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
        print("grants: SKIP: no lock grant log (set LUNFS_LOCK_LOG; lunfs writes it then)")
        return 3
    with open(path, "rb") as f:
        recs, torn = grant_log_records(f.read().decode("ascii", "replace"))
    # (ts, phase, line number, kind, fields): ends (0) before takeovers (1)
    # before grants (2) at one time.
    phase = {"release": 0, "recover": 0, "join": 0, "leave": 0, "takeover": 1, "grant": 2}
    ev, bad = [], []
    for n, rec in enumerate(recs):
        p = rec.split()
        want = GRANT_FIELDS.get(p[0])
        want = want if isinstance(want, tuple) else (want,)
        try:
            if len(p) - 1 not in want:
                raise ValueError("field count")
            if p[0] in ("grant", "release", "takeover"):
                f = {"lock": p[1], "mode": mode_class(p[2]), "slot": int(p[3]), "gen": int(p[4]),
                     "ts": int(p[5])}
                if p[0] == "takeover":
                    f["oslot"], f["ogen"] = int(p[6]), int(p[7])
            else:
                f = {"slot": int(p[1]), "gen": int(p[2]), "ts": int(p[3])}
        except ValueError:
            bad.append(rec)
            continue
        ev.append((f["ts"], phase[p[0]], n, p[0], f))
    ev.sort(key=lambda e: e[:3])

    held = {}          # lock -> {(slot, gen): mode}: logged holds still open
    inc_locks = {}     # (slot, gen) -> set of locks it holds
    ended = set()      # (slot, gen) recovered or left
    newest = {}        # slot -> newest generation seen (joins, any event)
    count = {k: 0 for k in phase}
    zombies = doubles = badtakes = 0
    out = []

    def over(slot, gen):
        return (slot, gen) in ended or gen < newest.get(slot, 0)

    def end_inc(slot, gen):
        for lock in inc_locks.pop((slot, gen), ()):
            held.get(lock, {}).pop((slot, gen), None)

    def conflict(a, b):
        return a == "X" or b == "X" or a != b

    def who(k, m):
        return "slot %d gen %d (%s)" % (k[0], k[1], m)

    for ts, _, _, kind, f in ev:
        count[kind] += 1
        slot, gen = f["slot"], f["gen"]
        if kind in ("recover", "leave"):
            ended.add((slot, gen))
            end_inc(slot, gen)
            continue
        if kind == "join":
            if gen > newest.get(slot, 0):
                newest[slot] = gen
            for k in [k for k in inc_locks if k[0] == slot and k[1] < gen]:
                end_inc(*k)
            continue
        if over(slot, gen):
            zombies += 1 if kind == "grant" else 0
            continue
        # Any line of a newer generation also means the older ones are gone.
        if gen > newest.get(slot, 0):
            newest[slot] = gen
            for k in [k for k in inc_locks if k[0] == slot and k[1] < gen]:
                end_inc(*k)
        lock = f["lock"]
        h = held.setdefault(lock, {})
        if kind == "release":
            h.pop((slot, gen), None)
            inc_locks.get((slot, gen), set()).discard(lock)
            continue
        if kind == "takeover":
            os_, og = f["oslot"], f["ogen"]
            live = {k: m for k, m in h.items() if k[0] == os_ and
                    (k[1] == og if og != 0 else (os_ != slot or k[1] < gen))}
            if live:
                badtakes += 1
                out.append("lock %s: taken over by slot %d gen %d at %d from %s, whose hold is not over"
                           % (lock, slot, gen, ts, ", ".join(who(k, m) for k, m in live.items())))
            continue
        others = {k: m for k, m in h.items() if k != (slot, gen) and conflict(m, f["mode"])}
        if others:
            doubles += 1
            out.append("lock %s: %s to slot %d gen %d at %d while held by %s" % (
                lock, f["mode"], slot, gen, ts, ", ".join(who(k, m) for k, m in others.items())))
        h[(slot, gen)] = f["mode"]
        inc_locks.setdefault((slot, gen), set()).add(lock)
    for line in out[:20]:
        print("  " + line)
    if len(out) > 20:
        print("  ... %d more" % (len(out) - 20))
    for rec in bad[:5]:
        print("  malformed record: %r" % rec)
    nlocks = len({f["lock"] for _, _, _, k, f in ev if k == "grant"})
    print("grants: %d grants of %d locks, %d releases, %d takeovers, %d recoveries, %d joins, %d leaves; "
          "%d zombie grants ignored, %d torn records, %d malformed; %d takeovers of open holds, "
          "%d double grants"
          % (count["grant"], nlocks, count["release"], count["takeover"], count["recover"], count["join"],
             count["leave"], zombies, torn, len(bad), badtakes, doubles))
    if count["grant"] == 0:
        print("grants: FAIL: the log holds no grant at all (is lunfs logging?)")
        return 1
    return 1 if doubles or badtakes or bad else 0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    table = {
        "hold": cmd_hold, "tryopen": cmd_tryopen, "tree": cmd_tree, "hosts": cmd_hosts,
        "waitgone": cmd_waitgone, "lock": cmd_lock, "grants": cmd_grants, "writer": cmd_writer,
    }
    if cmd == "work":
        return work_main(args)
    if cmd == "verify":
        return cmd_verify(args[0], args[1:])
    if cmd == "waitopen":
        kw = {}
        rest = []
        i = 0
        while i < len(args):
            if args[i] == "--interval":
                kw["interval"] = float(args[i + 1]); i += 2
            elif args[i] == "--timeout":
                kw["timeout"] = float(args[i + 1]); i += 2
            else:
                rest.append(args[i]); i += 1
        return cmd_waitopen(*rest, **kw)
    if cmd not in table:
        print(__doc__)
        return 2
    return table[cmd](*args)


if __name__ == "__main__":
    sys.exit(main())
