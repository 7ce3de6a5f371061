#!/bin/bash
# mkfs.lunfs end to end: a 64 TiB sparse image formats in seconds and stays
# sparse, dry runs write nothing, existing signatures (ext4, lunfs) are
# refused without -f and wiped with it, bad options are usage errors (2),
# too small a device is a clear error (1). (Refusing a volume with live
# hosts is tests/unit/test_mkfs_inuse.c: it needs a beating heartbeat.)
. "$(dirname "$0")/lib.sh"

MKFS="$B/mkfs.lunfs"
OUT="$T/out"

# has_text FILE TEXT: passes if FILE contains TEXT (shows FILE if not)
has_text() {
	if grep -qF -- "$2" "$1"; then return 0; fi
	echo "--- expected '$2' in:"; cat "$1"; return 1
}

# --- 64 TiB sparse file: the acceptance criterion is < 10 s -----------------
big="$T/big.img"
t0=$(date +%s.%N)
"$MKFS" -q -s 64T -L big "$big" >"$OUT" 2>&1
rc=$?
t1=$(date +%s.%N)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
echo "# mkfs.lunfs of a 64 TiB sparse file took $secs s"
check "64 TiB: mkfs exits 0" test "$rc" -eq 0
check "64 TiB: file is 64 TiB" test "$(stat -c %s "$big")" -eq $((64 << 40))
check "64 TiB: formatted in under 10 s ($secs s)" awk -v s="$secs" 'BEGIN { exit !(s < 10) }'
alloc_kib=$(du -k "$big" | cut -f1)
echo "# allocated: $alloc_kib KiB"
check "64 TiB: stays sparse (< 256 MiB allocated, have $alloc_kib KiB)" test "$alloc_kib" -lt $((256 * 1024))
check "64 TiB: -q printed nothing" test ! -s "$OUT"

# The volume is there: a second mkfs without -f refuses and names it.
expect_exit 1 "existing lunfs volume refused without -f" "$MKFS" "$big" 2>"$OUT"
check "refusal names lunfs and the label" has_text "$OUT" "lunfs volume 'big'"
check "refusal says how to override" has_text "$OUT" "use -f to overwrite"

# --- plain 1 GiB file -------------------------------------------------------
img="$T/plain.img"
truncate -s 1G "$img"
expect_exit 0 "1 GiB file formats" "$MKFS" -L plain "$img" >"$OUT" 2>&1
check "summary shows the label" has_text "$OUT" "plain"
check "summary shows the size" has_text "$OUT" "1.0 GiB"
check "blkid sees no foreign signature on it" test -z "$(blkid -p -o value -s TYPE "$img" 2>/dev/null)"

# -f over our own volume, with options
expect_exit 0 "-f reformats with -H 8 -b 256K -J 1M" \
	"$MKFS" -f -q -H 8 -b 256K -J 1M -C 64M --heartbeat-interval 500 "$img"
expect_exit 0 "-n shows the new geometry" "$MKFS" -n "$img" >"$OUT" 2>&1
check "-n reports the existing volume as a note" has_text "$OUT" "note:"

# --- dry run writes nothing -------------------------------------------------
dry="$T/dry.img"
truncate -s 1G "$dry"
sum0=$(md5sum <"$dry")
expect_exit 0 "-n on a fresh file" "$MKFS" -n -L dry "$dry" >"$OUT" 2>&1
check "-n prints the layout" has_text "$OUT" "journals"
check "-n wrote nothing" test "$(md5sum <"$dry")" = "$sum0"
check "-n left no allocation" test "$(du -k "$dry" | cut -f1)" -eq 0
expect_exit 0 "-n -s on a missing file" "$MKFS" -n -s 1T "$T/nothere.img" >"$OUT" 2>&1
check "-n -s did not create the file" test ! -e "$T/nothere.img"

# --- foreign signature: ext4 ------------------------------------------------
if command -v mkfs.ext4 >/dev/null; then
	ext="$T/ext4.img"
	truncate -s 256M "$ext"
	mkfs.ext4 -q -F -L extlabel "$ext"
	expect_exit 1 "ext4 refused without -f" "$MKFS" "$ext" 2>"$OUT"
	check "refusal names ext4" has_text "$OUT" "ext4"
	check "refusal names its label" has_text "$OUT" "extlabel"
	check "ext4 still there after the refusal" test "$(blkid -p -o value -s TYPE "$ext")" = ext4
	expect_exit 0 "ext4 overwritten with -f" "$MKFS" -f -L fromext4 "$ext" >"$OUT" 2>&1
	check "blkid no longer sees ext4" test -z "$(blkid -p -o value -s TYPE "$ext" 2>/dev/null)"
	expect_exit 1 "the new volume is detected" "$MKFS" "$ext" 2>"$OUT"
	check "... as lunfs 'fromext4'" has_text "$OUT" "lunfs volume 'fromext4'"
else
	fail "mkfs.ext4 not installed (e2fsprogs)"
fi

# --- usage errors exit 2 ----------------------------------------------------
u="$T/usage.img"
truncate -s 1G "$u"
expect_exit 2 "no device" "$MKFS"
expect_exit 2 "-b not a power of two" "$MKFS" -b 100K "$u"
expect_exit 2 "-b too small" "$MKFS" -b 4K "$u"
expect_exit 2 "-b garbage" "$MKFS" -b lots "$u"
expect_exit 2 "-H 0" "$MKFS" -H 0 "$u"
expect_exit 2 "-H 5000" "$MKFS" -H 5000 "$u"
expect_exit 2 "-J not a power of two" "$MKFS" -J 3M "$u"
expect_exit 2 "label longer than 64 bytes" "$MKFS" -L "$(printf 'x%.0s' {1..65})" "$u"
expect_exit 2 "bad UUID" "$MKFS" -U not-a-uuid "$u"
expect_exit 2 "unknown option" "$MKFS" --frobnicate "$u"
expect_exit 2 "timing violates dead >= 3*hb + 2*io" \
	"$MKFS" --heartbeat-interval 1000 --io-deadline 2000 --dead-timeout 6999 "$u" 2>"$OUT"
check "timing message states the inequality" has_text "$OUT" "3 * heartbeat interval + 2 * I/O deadline"
expect_exit 2 "-s 0" "$MKFS" -s 0 "$u"
check "usage errors wrote nothing" test "$(du -k "$u" | cut -f1)" -eq 0
expect_exit 0 "--help" "$MKFS" --help >"$OUT"
check "--help documents --dead-timeout" has_text "$OUT" "--dead-timeout"
expect_exit 0 "-V" "$MKFS" -V >"$OUT"
check "-V names the format version" has_text "$OUT" "format 1.0"

# --- too small ----------------------------------------------------------------
small="$T/small.img"
truncate -s 4M "$small"
expect_exit 1 "4 MiB file is too small" "$MKFS" "$small" 2>"$OUT"
check "too-small message is clear" has_text "$OUT" "too small"
expect_exit 1 "-s 4M creates but cannot format" "$MKFS" -s 4M "$T/small2.img" 2>"$OUT"
check "a file mkfs created is removed when formatting fails" test ! -e "$T/small2.img"

# --- -s on an existing, larger file is refused ------------------------------
expect_exit 1 "-s smaller than the file" "$MKFS" -s 512M "$img" 2>"$OUT"
check "... says it is larger" has_text "$OUT" "already larger"

# --- missing file without -s --------------------------------------------------
expect_exit 1 "missing file without -s" "$MKFS" "$T/missing.img" 2>"$OUT"
check "... says so" has_text "$OUT" "No such file"

# --- the same UUID as the volume it replaces is refused -------------------------
uuid=$("$MKFS" -f "$img" | awk '/UUID/ { print $2 }')
expect_exit 1 "-U with the old volume's UUID" "$MKFS" -f -U "$uuid" "$img" 2>"$OUT"
check "... explains why" has_text "$OUT" "UUID of the volume being replaced"
expect_exit 0 "-U with a fresh UUID" "$MKFS" -f -q -U 1b4e28ba-2fa1-11d2-883f-0016d3cca427 "$img"
expect_exit 1 "... and it is the volume's UUID" "$MKFS" "$img" 2>"$OUT"
check "... shown in the refusal" has_text "$OUT" "1b4e28ba-2fa1-11d2-883f-0016d3cca427"

finish
