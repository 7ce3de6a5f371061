# Shared helpers for integration tests. Source it first thing:
#   . "$(dirname "$0")/lib.sh"
# Gives: $B (build dir with the programs), $T (a private scratch dir on
# /dev/shm, removed on exit, even on failure), check/expect helpers that
# count results, and `finish`, which prints "N passed, N failed" and exits
# non-zero if anything failed. Register extra cleanup with `on_exit CMD`.
set -u

B="${LUNFS_BUILD:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}"
T="$(mktemp -d /dev/shm/lunfs-test.XXXXXX)"
_passed=0
_failed=0
_cleanups=()

on_exit() { _cleanups+=("$*"); }

_run_cleanups() {
	local i
	for ((i = ${#_cleanups[@]} - 1; i >= 0; i--)); do
		eval "${_cleanups[i]}" >/dev/null 2>&1 || true
	done
	rm -rf "$T"
}
trap _run_cleanups EXIT
trap 'exit 130' INT TERM

pass() { _passed=$((_passed + 1)); echo "ok - $*"; }
fail() { _failed=$((_failed + 1)); echo "FAIL - $*"; }

# check "description" command...   : passes if the command exits 0
check() {
	local what="$1"; shift
	if "$@"; then pass "$what"; else fail "$what"; fi
}

# expect_exit CODE "description" command...  : passes if it exits with CODE
expect_exit() {
	local want="$1" what="$2"; shift 2
	local rc=0
	"$@" || rc=$?
	if [[ $rc -eq $want ]]; then pass "$what"; else fail "$what (exit $rc, wanted $want)"; fi
}

# A signal death (exit >= 128) is always a failure: the tools must never crash.
no_crash() {
	local what="$1"; shift
	local rc=0
	"$@" || rc=$?
	if [[ $rc -lt 128 ]]; then pass "$what"; else fail "$what (crashed: exit $rc)"; fi
}

finish() {
	echo "$(basename "$0"): $_passed passed, $_failed failed"
	[[ $_failed -eq 0 ]]
}
