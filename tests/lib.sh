# Helpers for the shell-driven tests. Source it:  . "$top_srcdir/tests/lib.sh"
# Provides: $WORK (a temporary directory removed on exit), fail, expect_status.
set -u
: "${top_builddir:=$(pwd)}"
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PYTHON3:=/usr/bin/python3}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/moeplace-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILURES=0
CHECKS=0

fail() {
  echo "FAIL: $*" >&2
  FAILURES=$((FAILURES + 1))
}

# expect_status WANT DESCRIPTION -- COMMAND...: runs COMMAND, keeps its
# stdout/stderr in $WORK/out and $WORK/err, and checks the exit status.
expect_status() {
  want=$1
  what=$2
  shift 3
  CHECKS=$((CHECKS + 1))
  "$@" >"$WORK/out" 2>"$WORK/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "$what: exit status $got, expected $want ($*)"
    sed 's/^/  stderr: /' "$WORK/err" >&2
    return 1
  fi
  return 0
}

# expect_grep PATTERN FILE DESCRIPTION
expect_grep() {
  CHECKS=$((CHECKS + 1))
  if ! grep -q -- "$1" "$2"; then
    fail "$3: '$1' not found in $(basename "$2")"
    sed 's/^/  | /' "$2" | head -20 >&2
  fi
}

# Prints the summary line and exits non-zero on any failure.
finish() {
  echo "$((CHECKS - FAILURES)) passed, $FAILURES failed"
  [ "$FAILURES" -eq 0 ]
  exit $?
}
