#!/usr/bin/env bash
# `lunfs inspect`: what it shows on fresh volumes (1 GiB and 64 TiB), its
# JSON, its errors on things that are not (usable) lunfs volumes, the
# backup superblock fallback, and a hostile-image loop on a small volume:
# each iteration either overwrites random bytes of its metadata (half of
# the time fixing up the checksums) or plants a well-formed, checksummed
# record or block with wild field values (heartbeat slot, lock record,
# cluster header, root inode, journal superblock), so that the decoders'
# and inspect's own range checks are reached, not just the crc. inspect
# must never crash, and must print valid JSON whenever it succeeds.
#
# The loop is deterministic: LUNFS_FUZZ_SEED (default 1) and
# LUNFS_FUZZ_ITERS (default 300) choose it; a failure names the iteration,
# so it can be replayed with the same seed.
. "$(dirname "$0")/lib.sh"

SEED="${LUNFS_FUZZ_SEED:-1}"
ITERS="${LUNFS_FUZZ_ITERS:-300}"
# Under the sanitizers, make a report a crash (exit >= 128), not exit 1.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:abort_on_error=1:print_stacktrace=1"

# A helper for the image surgery: crc32c, JSON queries, mutations.
cat >"$T/tool.py" <<'EOF'
import json, random, struct, sys

POLY = 0x82F63B78
TAB = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TAB.append(c)

def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = TAB[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF

assert crc32c(b"123456789") == 0xE3069283

REC_MAGICS = {b"HBSL", b"LKRC", b"PXBK", b"INOD"}
BLK_MAGICS = {b"CLHD", b"CLBM", b"CLRC", b"JNSB", b"JNOR", b"JNDS", b"JNCM",
              b"MPLF", b"MPIN", b"DRTB", b"DRLF", b"XATR", b"SYML"}

def reseal(f, off, size, crc_at):
    f.seek(off)
    b = bytearray(f.read(size))
    struct.pack_into("<I", b, crc_at, crc32c(bytes(b[:crc_at])))
    f.seek(off)
    f.write(b)

def fix_frame(f, o, sb_offsets):
    """Recompute the checksum of the record or block that holds byte o."""
    for s in sb_offsets:
        if s <= o < s + 4096:
            reseal(f, s, 4096, 4092)
            return
    r = o & ~511
    f.seek(r)
    if f.read(4) in REC_MAGICS:
        reseal(f, r, 512, 508)
        return
    b = o & ~4095
    f.seek(b)
    if f.read(4) in BLK_MAGICS:
        reseal(f, b, 4096, 4092)

def targets(layout):
    sb = layout["superblock"]
    reg = {r["name"]: r for r in layout["regions"]}
    sec = sb["sector_size"]
    backup = (sb["volume_size"] // 4096) * 4096 - 4096
    t = [
        (3, 4096, 4096),                                    # primary superblock
        (1, backup, 4096),                                  # backup superblock
        (3, reg["heartbeat"]["offset"], sb["max_hosts"] * sec),
        (2, reg["syslock"]["offset"], 64 * sec),
        (3, reg["cluster"]["offset"], sb["cluster_count"] * sec),
        (3, reg["data"]["offset"], 64 * 1024),              # cluster 0: header, bitmap, inodes
        (2, reg["data"]["offset"] + sb["root_ino"] * sb["inode_slot_size"], sb["inode_slot_size"]),
    ]
    for k in range(min(sb["max_hosts"], 8)):
        t.append((1, reg["journal"]["offset"] + k * sb["journal_size"], 4096))
    return t, [4096, backup]

INTERESTING = [0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 0x7FFFFFFF,
               0x80000000, 0xFFFFFFFF, 1 << 32, 1 << 52, 1 << 63, (1 << 64) - 1]

def num(rng, plausible):
    """A field value: usually plausible, sometimes extreme."""
    return rng.choice(plausible) if rng.random() < 0.9 else rng.choice(INTERESTING)

def frame(rng, uuid, magic, addr, size, body):
    """A well-formed record (512) or block (4096) around `body`, a dict of
    offset -> bytes: right magic, version, address, UUID and checksum, so
    that the decoder's own range checks are what stands in the way."""
    b = bytearray(size)
    for off, v in body.items():
        b[off:off + len(v)] = v
    struct.pack_into("<IHHQ", b, 0, struct.unpack("<I", magic)[0], 1, 0, addr)
    b[16:32] = uuid
    crc_at = 508 if size == 512 else 4092
    struct.pack_into("<I", b, crc_at, crc32c(bytes(b[:crc_at])))
    return bytes(b)

def u8(v): return struct.pack("<B", v & 0xFF)
def u16(v): return struct.pack("<H", v & 0xFFFF)
def u32(v): return struct.pack("<I", v & 0xFFFFFFFF)
def u64(v): return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)

def forge(rng, layout):
    """Return (address, bytes) of a checksummed record or block with wild
    contents, placed where inspect will read it."""
    sb = layout["superblock"]
    reg = {r["name"]: r for r in layout["regions"]}
    sec, hosts, cc = sb["sector_size"], sb["max_hosts"], sb["cluster_count"]
    uuid = bytes.fromhex(sb["uuid"].replace("-", ""))
    kind = rng.choice(["hb", "syslock", "clock", "clock", "clhdr", "root", "rootlock", "jsb"])
    if kind == "hb":
        i = rng.randrange(hosts)
        addr = reg["heartbeat"]["offset"] + i * sec
        name = bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        if rng.random() < 0.5:
            name = name.replace(b"\0", b"x")
        body = {32: u16(num(rng, [i, i + 1, hosts])), 34: u8(rng.randrange(6)),
                40: u64(num(rng, [1, 7])), 48: u64(num(rng, [5, 123456])),
                56: bytes(rng.randrange(256) for _ in range(16)), 72: name[:64],
                136: u32(num(rng, [100, 1000])), 140: u32(num(rng, [8000, 600000])),
                144: u32(num(rng, [2000, 100])),
                152: u64(num(rng, [reg["journal"]["offset"] + i * sb["journal_size"], 0])),
                160: u64(num(rng, [sb["journal_size"]])),
                168: u16(num(rng, [0, 1, hosts, hosts + 1])), 176: u64(num(rng, [3])),
                328: u32(num(rng, [4242]))}
        for r in range(8):
            if rng.random() < 0.3:
                body[200 + 16 * r] = u64(num(rng, [reg["syslock"]["offset"]]))
                body[208 + 16 * r] = u16(num(rng, [1, hosts, hosts + 1]))
                body[210 + 16 * r] = u8(rng.randrange(5))
        return addr, frame(rng, uuid, b"HBSL", addr, 512, body)
    if kind in ("syslock", "clock", "rootlock"):
        if kind == "syslock":
            ident = rng.randrange(64)
            addr, lk = reg["syslock"]["offset"] + ident * sec, 1
        elif kind == "clock":
            ident = rng.randrange(cc)
            addr, lk = reg["cluster"]["offset"] + ident * sec, 2
        else:
            ident = sb["root_ino"]
            addr, lk = reg["data"]["offset"] + ident * sb["inode_slot_size"], 3
        # Mostly a consistent lock (the decoder rejects the rest early):
        # FREE, EXCLUSIVE with an owner, SHARED/MULTIWRITER with holders.
        mode = rng.randrange(4) if rng.random() < 0.9 else rng.randrange(256)
        holders = bytearray(256)
        owner = 0
        if mode == 1:
            owner = rng.choice([1, 2, hosts, hosts + 1, 2048])
        elif mode in (2, 3) or rng.random() < 0.1:
            for _ in range(rng.randint(0, 4)):
                bit = rng.choice([0, 1, hosts - 1, hosts, rng.randrange(2048)])
                holders[bit // 8] |= 1 << (bit % 8)
        n = sum(bin(x).count("1") for x in holders)
        body = {32: u8(lk if rng.random() < 0.9 else rng.randrange(6)),
                33: u8(mode), 34: u16(n if rng.random() < 0.9 else rng.randrange(9)),
                40: u64(ident if rng.random() < 0.9 else rng.choice(INTERESTING)),
                48: u64(num(rng, [1, 99])), 56: u16(owner),
                64: u64(num(rng, [1, 9])), 72: u64(num(rng, [1700000000000000000])),
                80: u16(num(rng, [0, 2, hosts + 1])), 82: u8(rng.randrange(4)),
                88: u64(num(rng, [4])),
                96: u8(rng.randrange(5)), 104: u64(num(rng, [16, 256, 1024, 4096])),
                112: u64(num(rng, [0, 10, 255, 4095])), 120: u64(num(rng, [1])),
                160: bytes(holders)}
        return addr, frame(rng, uuid, b"LKRC", addr, 512, body)
    if kind == "root":
        addr = reg["data"]["offset"] + sb["root_ino"] * sb["inode_slot_size"] + sec
        body = {32: u64(sb["root_ino"] if rng.random() < 0.8 else rng.choice(INTERESTING)),
                44: u32(num(rng, [0o40755, 0o100644, 0o120777, 0o170000, 0])),
                56: u32(num(rng, [2, 0])), 64: u64(num(rng, [0, 4096])),
                88: u64(num(rng, [1700000000000000000])),
                120: u64(num(rng, [0, reg["data"]["offset"]])), 128: u8(rng.choice([0, 0, 1, 6, 7])),
                129: u8(rng.randrange(3)), 224: u32(num(rng, [0, 21, 22])),
                232: u64(num(rng, [0, 5]))}
        return addr, frame(rng, uuid, b"INOD", addr, 512, body)
    if kind == "clhdr":
        c = rng.randrange(min(cc, 8))
        addr = reg["data"]["offset"] + c * sb["cluster_size"]
        body = {32: u64(c), 64: u8(rng.randrange(5)),
                68: u32(num(rng, [sb["file_block_size"], 4096, sb["inode_slot_size"]])),
                72: u64(c), 80: u64(addr), 88: u64(num(rng, [16, 256, 1024])),
                96: u64(num(rng, [0, 10, 1000])), 104: u32(num(rng, [1, 2, 4])),
                108: u32(num(rng, [1])), 112: u32(num(rng, [0, 1]))}
        return addr, frame(rng, uuid, b"CLHD", addr, 4096, body)
    k = rng.randrange(hosts)
    addr = reg["journal"]["offset"] + k * sb["journal_size"]
    body = {32: u64(k), 64: u32(rng.randrange(3) if rng.random() < 0.9 else rng.randrange(9)), 68: u16(k if rng.random() < 0.8 else rng.randrange(65536)),
            72: u64(num(rng, [1])), 80: u64(num(rng, [1, 99])), 88: u64(num(rng, [9, 255])),
            96: u64(num(rng, [9])), 104: u64(num(rng, [247])), 112: u64(num(rng, [0, 3]))}
    return addr, frame(rng, uuid, b"JNSB", addr, 4096, body)

def mutate(img, layout_file, seed, it):
    layout = json.load(open(layout_file, encoding="utf-8"))
    t, sbs = targets(layout)
    rng = random.Random(seed * 1000003 + it)
    if rng.random() < 0.5:
        addr, data = forge(rng, layout)
        with open(img, "r+b") as f:
            f.seek(addr)
            f.write(data)
        return
    weight, base, length = rng.choices(t, weights=[w for w, _, _ in t])[0]
    start = base + rng.randrange(0, max(1, length - 512)) // 8 * 8
    touched = set()
    with open(img, "r+b") as f:
        for _ in range(rng.randint(1, 16)):
            o = start + rng.randrange(0, 512)
            if rng.random() < 0.3:
                o &= ~7
                v = rng.choice(INTERESTING)
                f.seek(o)
                f.write(struct.pack("<Q", v) if rng.random() < 0.5 else struct.pack("<I", v & 0xFFFFFFFF))
            else:
                f.seek(o)
                f.write(bytes([rng.choice([0, 0xFF, 0x80, 0x7F, rng.randrange(256)])]))
            touched.add(o)
        if rng.random() < 0.5:
            for o in sorted(touched):
                fix_frame(f, o, sbs)

def patch_version(img, major):
    with open(img, "r+b") as f:
        f.seek(4096 + 8)
        f.write(struct.pack("<H", major))
        reseal(f, 4096, 4096, 4092)

def check_json(files):
    bad = 0
    for p in files:
        try:
            json.load(open(p, encoding="utf-8"))
        except Exception as e:
            print("invalid JSON in %s: %s" % (p, e))
            bad += 1
    return bad

if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "mutate":
        mutate(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif cmd == "version":
        patch_version(sys.argv[2], int(sys.argv[3]))
    elif cmd == "checkjson":
        sys.exit(1 if check_json(sys.argv[2:]) else 0)
    elif cmd == "get":
        # get FILE EXPR: print a value of the JSON in FILE ("d" is the object)
        d = json.load(open(sys.argv[2], encoding="utf-8"))
        print(eval(sys.argv[3], {"d": d}))
EOF

# The interpreter itself, not a version manager's shim, and without site
# packages: startup time is most of the loop's time.
PY="$(python3 -c 'import sys; print(sys.executable)')"
py() { "$PY" -S "$T/tool.py" "$@"; }
# jq-like: jget FILE 'python expression over d'
jget() { py get "$@"; }

# Run a command with its output thrown away (exit status kept).
quiet() { "$@" >/dev/null 2>&1; }

# json_run OUT CMD...: run CMD with stdout to OUT, kept only if CMD succeeds.
json_run() {
	local out="$1" rc=0
	shift
	"$@" >"$out" 2>/dev/null || rc=$?
	[[ $rc -eq 0 ]] || rm -f "$out"
	return $rc
}

# contains FILE TEXT: passes if FILE has TEXT (fixed string).
contains() { grep -qF -- "$2" "$1"; }

# --- command line ---------------------------------------------------------
expect_exit 2 "no command is a usage error" quiet "$B/lunfs"
expect_exit 0 "lunfs help" quiet "$B/lunfs" help
expect_exit 0 "lunfs help inspect" quiet "$B/lunfs" help inspect
expect_exit 0 "lunfs inspect --help" quiet "$B/lunfs" inspect --help
expect_exit 0 "lunfs --version" quiet "$B/lunfs" --version
expect_exit 2 "unknown command" quiet "$B/lunfs" frobnicate
expect_exit 2 "help for an unknown command" quiet "$B/lunfs" help frobnicate
expect_exit 2 "inspect without a device" quiet "$B/lunfs" inspect
expect_exit 2 "inspect with an unknown option" quiet "$B/lunfs" inspect --bogus "$T/x"
expect_exit 2 "inspect with two devices" quiet "$B/lunfs" inspect "$T/x" "$T/y"
expect_exit 1 "inspect of a missing file" quiet "$B/lunfs" inspect "$T/does-not-exist"
expect_exit 1 "inspect of a directory" quiet "$B/lunfs" inspect "$T"

# --- a fresh 1 GiB volume -------------------------------------------------
img="$T/g1.img"
check "mkfs 1 GiB" "$B/mkfs.lunfs" -q -L inspect-1g -b 256K -H 16 -s 1G "$img"
expect_exit 0 "inspect 1 GiB" quiet "$B/lunfs" inspect "$img"
"$B/lunfs" inspect "$img" >"$T/g1.txt" 2>&1
check "human output names the label" contains "$T/g1.txt" "inspect-1g"
check "human output has the regions" contains "$T/g1.txt" "journal"
check "human output finds no problem" contains "$T/g1.txt" "No problems found"
expect_exit 0 "inspect --json 1 GiB" quiet "$B/lunfs" inspect --json "$img"
"$B/lunfs" inspect --json "$img" >"$T/g1.json"
check "1 GiB: JSON parses" py checkjson "$T/g1.json"
check "1 GiB: JSON has every section" test "$(jget "$T/g1.json" \
	'all(k in d for k in ("superblock","regions","heartbeat","syslocks","journals","space","root"))')" = True
check "1 GiB: label" test "$(jget "$T/g1.json" 'd["superblock"]["label"]')" = inspect-1g
check "1 GiB: primary superblock used" test "$(jget "$T/g1.json" 'd["superblock"]["copy"]')" = primary
check "1 GiB: file block size" test "$(jget "$T/g1.json" 'd["superblock"]["file_block_size"]')" = 262144
check "1 GiB: max hosts" test "$(jget "$T/g1.json" 'd["superblock"]["max_hosts"]')" = 16
check "1 GiB: volume size" test "$(jget "$T/g1.json" 'd["superblock"]["volume_size"]')" = 1073741824
check "1 GiB: 6 regions" test "$(jget "$T/g1.json" 'len(d["regions"])')" = 6
check "1 GiB: regions ordered, inside the volume" test "$(jget "$T/g1.json" \
	'all(a["offset"]+a["length"] <= b["offset"] for a, b in zip(d["regions"], d["regions"][1:])) and d["regions"][-1]["offset"]+d["regions"][-1]["length"] <= d["superblock"]["volume_size"]')" = True
check "1 GiB: heartbeat lists max_hosts" test "$(jget "$T/g1.json" 'd["heartbeat"]["max_hosts"]')" = 16
check "1 GiB: no slot claimed" test "$(jget "$T/g1.json" 'len(d["heartbeat"]["slots"])')" = 0
check "1 GiB: journals counted" test "$(jget "$T/g1.json" \
	'd["journals"]["clean"]+d["journals"]["dirty"]+d["journals"]["empty"]+d["journals"]["unwritten"]')" = 16
check "1 GiB: free space > 0" test "$(jget "$T/g1.json" 'd["space"]["free_bytes"] > 0')" = True
check "1 GiB: free + used == total" test "$(jget "$T/g1.json" \
	'(lambda s: s["free_bytes"] + s["used_bytes"] == s["total_bytes"] == s["clusters_total"] * d["superblock"]["cluster_size"])(d["space"])')" = True
check "1 GiB: root is a directory" test "$(jget "$T/g1.json" 'd["root"]["type"]')" = directory
check "1 GiB: no problems" test "$(jget "$T/g1.json" 'd["problems_count"]')" = 0
"$B/lunfs" inspect --json --all-slots --clusters "$img" >"$T/g1all.json"
check "--all-slots --clusters: JSON parses" py checkjson "$T/g1all.json"
check "--all-slots lists every slot" test "$(jget "$T/g1all.json" 'len(d["heartbeat"]["slots"])')" = 16
check "--clusters: headers agree with summaries" test "$(jget "$T/g1all.json" \
	'len(d["space"]["clusters"]) >= 1 and d["space"]["header_mismatches"] == 0')" = True
expect_exit 0 "human --all-slots --clusters" quiet "$B/lunfs" inspect --all-slots --clusters "$img"

# --- a fresh 64 TiB sparse volume ------------------------------------------
big="$T/t64.img"
check "mkfs 64 TiB" "$B/mkfs.lunfs" -q -L inspect-64t -s 64T "$big"
"$B/lunfs" inspect "$big" >"$T/t64.txt" 2>&1
expect_exit 0 "inspect 64 TiB" quiet "$B/lunfs" inspect "$big"
check "64 TiB: human output names the label" contains "$T/t64.txt" "inspect-64t"
"$B/lunfs" inspect --json "$big" >"$T/t64.json"
check "64 TiB: JSON parses" py checkjson "$T/t64.json"
check "64 TiB: default file block size" test "$(jget "$T/t64.json" 'd["superblock"]["file_block_size"]')" = 1048576
check "64 TiB: default max hosts" test "$(jget "$T/t64.json" 'd["superblock"]["max_hosts"]')" = 64
check "64 TiB: 6 regions" test "$(jget "$T/t64.json" 'len(d["regions"])')" = 6
check "64 TiB: data is close to 64 TiB" test "$(jget "$T/t64.json" \
	'0.99 * 2**46 < d["space"]["total_bytes"] <= 2**46')" = True
check "64 TiB: free + used == total, free > 0" test "$(jget "$T/t64.json" \
	'(lambda s: s["free_bytes"] > 0 and s["free_bytes"] + s["used_bytes"] == s["total_bytes"])(d["space"])')" = True
rm -f "$big"

# --- not lunfs ---------------------------------------------------------------
head -c 16M /dev/zero >"$T/zeros.img"
expect_exit 1 "zeros: exit 1" quiet "$B/lunfs" inspect "$T/zeros.img"
"$B/lunfs" inspect "$T/zeros.img" 2>"$T/zeros.err" >/dev/null
check "zeros: says not a lunfs volume" contains "$T/zeros.err" "not a lunfs volume"
expect_exit 1 "zeros: --json exit 1" quiet "$B/lunfs" inspect --json "$T/zeros.img"
head -c 16M /dev/urandom >"$T/random.img"
expect_exit 1 "random bytes: exit 1" quiet "$B/lunfs" inspect "$T/random.img"
"$B/lunfs" inspect "$T/random.img" 2>"$T/random.err" >/dev/null
check "random bytes: says not a lunfs volume" contains "$T/random.err" "not a lunfs volume"
: >"$T/empty.img"
no_crash "empty file" quiet "$B/lunfs" inspect "$T/empty.img"
head -c 5000 /dev/zero >"$T/tiny.img"
no_crash "tiny file" quiet "$B/lunfs" inspect "$T/tiny.img"

# --- superblock copies -------------------------------------------------------
cp --sparse=always "$img" "$T/p.img"
printf '\x5a' | dd of="$T/p.img" bs=1 seek=$((4096 + 100)) conv=notrunc status=none
"$B/lunfs" inspect "$T/p.img" >"$T/p.txt" 2>"$T/p.err"
check "bad primary: inspect still works" test $? -eq 0
check "bad primary: warns on stderr" contains "$T/p.err" "WARNING"
check "bad primary: says so in the report" contains "$T/p.txt" "BACKUP"
check "bad primary: still names the label" contains "$T/p.txt" "inspect-1g"
"$B/lunfs" inspect --json "$T/p.img" >"$T/p.json" 2>/dev/null
check "bad primary: JSON says backup" test "$(jget "$T/p.json" 'd["superblock"]["copy"]')" = backup
printf '\x5a' | dd of="$T/p.img" bs=1 seek=$((1073741824 - 4096 + 100)) conv=notrunc status=none
expect_exit 1 "both copies bad: exit 1" quiet "$B/lunfs" inspect "$T/p.img"
"$B/lunfs" inspect "$T/p.img" 2>"$T/p2.err" >/dev/null
check "both copies bad: says corrupt superblock" contains "$T/p2.err" "corrupt superblock"
check "both copies bad: says backup unusable" contains "$T/p2.err" "backup also unusable"

cp --sparse=always "$img" "$T/v.img"
py version "$T/v.img" 2
expect_exit 1 "newer format: exit 1" quiet "$B/lunfs" inspect "$T/v.img"
"$B/lunfs" inspect "$T/v.img" 2>"$T/v.err" >/dev/null
check "newer format: names the version" contains "$T/v.err" "format version 2.0 is newer"

cp --sparse=always "$img" "$T/v.img"
truncate -s 512M "$T/v.img"
expect_exit 1 "truncated image: exit 1" quiet "$B/lunfs" inspect "$T/v.img"
"$B/lunfs" inspect "$T/v.img" 2>"$T/t.err" >/dev/null
check "truncated image: says so" contains "$T/t.err" "truncated"
rm -f "$T/p.img" "$T/v.img"

# --- hostile images ------------------------------------------------------------
pristine="$T/small.img"
# 64 KiB file blocks make 1 MiB clusters: about fifty of them.
check "mkfs 64 MiB for the hostile loop" "$B/mkfs.lunfs" -q -L "hostile-ø" -H 8 -b 64K -s 64M "$pristine"
"$B/lunfs" inspect --json "$pristine" >"$T/small.json"
check "pristine small image: JSON parses" py checkjson "$T/small.json"
check "a UTF-8 label comes through intact" test "$(jget "$T/small.json" 'd["superblock"]["label"] == "hostile-\u00f8"')" = True

echo "# hostile loop: seed $SEED, $ITERS iterations (LUNFS_FUZZ_SEED/LUNFS_FUZZ_ITERS to replay)"
mkdir -p "$T/fz"
fz_log="$T/fz.log"
fails_before=$_failed
start=$SECONDS
for ((i = 0; i < ITERS; i++)); do
	f="$T/fz/img"
	cp --sparse=always "$pristine" "$f"
	py mutate "$f" "$T/small.json" "$SEED" "$i" || fail "hostile $i: the mutation itself failed"
	no_crash "hostile $i: inspect" quiet "$B/lunfs" inspect --all-slots --clusters "$f" >>"$fz_log"
	no_crash "hostile $i: inspect --json" json_run "$T/fz/$i.json" \
		"$B/lunfs" inspect --json --clusters "$f" >>"$fz_log"
done
# Only failures are worth a line each; passes are summarised.
grep '^FAIL' "$fz_log" || true
njson=$(find "$T/fz" -name '*.json' | wc -l)
check "hostile loop: all $njson JSON outputs parse" py checkjson "$T"/fz/*.json
echo "# hostile loop: $((SECONDS - start)) s, $((_failed - fails_before)) failures, $njson runs printed JSON"

finish
