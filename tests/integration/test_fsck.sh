#!/bin/bash
# fsck.lunfs end to end: golden images (a pristine mkfs, a tree populated
# by the fs core, one named corruption each; tests/golden/), exit codes per
# fsck(8), and a hostile loop of random metadata damage.
. "$(dirname "$0")/lib.sh"

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
FSCK="$B/fsck.lunfs"
GEN="$B/tests/test_check"
if [[ ! -x "$GEN" ]]; then
	make -C "$ROOT" --no-print-directory BUILD="$B" "$B/tests/test_check" >/dev/null || true
fi
if [[ ! -x "$GEN" ]]; then
	fail "golden image generator $GEN is missing"
	finish
	exit 1
fi

PRISTINE="$T/pristine.img"
"$B/mkfs.lunfs" -q -s 1G -H 4 -J 4M "$PRISTINE" || { fail "mkfs"; finish; exit 1; }

expect_exit 0 "a fresh volume is clean" "$FSCK" -n -q "$PRISTINE"
fsck_quiet() { "$FSCK" "$@" 2>/dev/null; }
expect_exit 16 "usage error without a device" fsck_quiet
expect_exit 16 "usage error with -n and -y" fsck_quiet -n -y "$PRISTINE"
head -c 4M /dev/urandom >"$T/junk.img"
out=$("$FSCK" -n "$T/junk.img" 2>&1); rc=$?
if [[ $rc -eq 8 && "$out" == *"not a lunfs volume"* ]]; then pass "a non-lunfs file: exit 8 with a message"; else fail "non-lunfs file (exit $rc: $out)"; fi
expect_exit 8 "a missing file: exit 8" fsck_quiet -n "$T/nonexistent.img"

# The populated, uncorrupted tree is clean too, and --json says so.
cp --sparse=always "$PRISTINE" "$T/tree.img"
"$GEN" --golden "$T/tree.img" none >/dev/null
expect_exit 0 "a populated volume is clean" "$FSCK" -n -q "$T/tree.img"
json=$("$FSCK" -n --json "$T/tree.img")
if [[ "$json" == *'"exit_code":0'* || "$json" == *'"exit_code": 0'* ]]; then pass "--json reports exit_code 0"; else fail "--json: $json"; fi

golden() {
	local name="$1" text="$2" img="$T/$1.img" out rc
	cp --sparse=always "$PRISTINE" "$img"
	"$GEN" --golden "$img" "$3" >/dev/null || { fail "$name: generator"; return; }
	if [[ "$name" == superblock ]]; then
		# A raw flip with dd: the checksum no longer matches.
		printf '\xde\xad\xbe\xef' | dd of="$img" bs=1 seek=4400 conv=notrunc status=none
	fi
	out=$("$FSCK" -n "$img" 2>&1); rc=$?
	if [[ $rc -eq 4 && "$out" == *"$text"* ]]; then pass "$name: -n exits 4 and reports it"
	else fail "$name: -n (exit $rc, wanted 4 and '$text'): $out"; fi
	out=$("$FSCK" -y "$img" 2>&1); rc=$?
	if [[ $rc -eq 1 ]]; then pass "$name: -y exits 1"; else fail "$name: -y (exit $rc): $out"; fi
	out=$("$FSCK" -n "$img" 2>&1); rc=$?
	if [[ $rc -eq 0 ]]; then pass "$name: a second run is clean"; else fail "$name: second run (exit $rc): $out"; fi
	rm -f "$img"
}

while IFS='|' read -r name text; do
	[[ -z "$name" || "$name" == \#* ]] && continue
	golden "$name" "$text" "$name"
done <"$ROOT/tests/golden/expected.txt"
golden superblock "primary superblock at 4096" none

# Hostile loop: random byte damage in metadata (cluster table, cluster 0's
# header area and inodes, cluster 1 and 2's first blocks). fsck -y never
# crashes; when it says done (0 or 1), fsck -n finds it clean.
SEED=${FSCK_SEED:-20240601}
echo "# hostile loop seed $SEED"
H="$T/hostile.img"
cp --sparse=always "$T/tree.img" "$H"
python3 - "$H" "$SEED" >"$T/damage.txt" <<'PY'
import random, struct, sys
path, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
with open(path, 'rb') as f:
    f.seek(4096)
    sb = f.read(4096)
csize = struct.unpack_from('<Q', sb, 184)[0]
ctab = struct.unpack_from('<Q', sb, 264)[0]
data = struct.unpack_from('<Q', sb, 296)[0]
areas = [(ctab, 4096), (data, 64 * 1024), (data + csize, 64 * 1024), (data + 2 * csize, 16 * 1024)]
for it in range(100):
    line = []
    for k in range(rnd.randint(1, 8)):
        base, length = rnd.choice(areas)
        line.append('%d:%d' % (base + rnd.randrange(length), rnd.randrange(256)))
    print(' '.join(line))
PY
it=0; crashes=0; unclean=0
while read -r line; do
	it=$((it + 1))
	python3 - "$H" $line <<'PY'
import sys
with open(sys.argv[1], 'r+b') as f:
    for kv in sys.argv[2:]:
        off, val = (int(x) for x in kv.split(':'))
        f.seek(off); f.write(bytes([val]))
PY
	rc=0; timeout 120 "$FSCK" -y -q "$H" >/dev/null 2>&1 || rc=$?
	if [[ $rc -ge 128 ]]; then crashes=$((crashes + 1)); echo "# iteration $it: fsck -y died (exit $rc)"; continue; fi
	if [[ $rc -eq 0 || $rc -eq 1 ]]; then
		rc2=0; timeout 120 "$FSCK" -n -q "$H" >"$T/second.txt" 2>&1 || rc2=$?
		if [[ $rc2 -ne 0 ]]; then unclean=$((unclean + 1)); echo "# iteration $it: second run exit $rc2"; head -5 "$T/second.txt"; fi
	fi
done <"$T/damage.txt"
if [[ $crashes -eq 0 ]]; then pass "hostile loop: 100 iterations without a crash (seed $SEED)"; else fail "hostile loop: $crashes crashes (seed $SEED)"; fi
if [[ $unclean -eq 0 ]]; then pass "hostile loop: every completed repair left a clean volume"; else fail "hostile loop: $unclean repairs left problems (seed $SEED)"; fi

finish
