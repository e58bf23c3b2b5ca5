#!/bin/sh
# The public header must compile cleanly as C++ (extern "C", no C-only
# constructs) and as strict C11, since trainers include it from both.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
MPI_CFLAGS=$(pkg-config --cflags ompi-c 2>/dev/null)
printf '#include <moeplace.h>\nint main(void) { return moeplace_version() == 0; }\n' >"$WORK/use.c"
cp "$WORK/use.c" "$WORK/use.cpp"
if command -v g++ >/dev/null 2>&1; then
  expect_status 0 "header as C++" -- g++ -std=c++11 -Wall -Wextra -pedantic -Werror \
    -I"$top_srcdir/include" $MPI_CFLAGS -c "$WORK/use.cpp" -o "$WORK/use_cpp.o"
  CHECKS=$((CHECKS + 1))
  nm "$WORK/use_cpp.o" | grep -q ' U moeplace_version$' || fail "C++ caller does not see the C symbol (missing extern \"C\")"
fi
expect_status 0 "header as C11" -- cc -std=c11 -Wall -Wextra -pedantic -Werror \
  -I"$top_srcdir/include" $MPI_CFLAGS -c "$WORK/use.c" -o "$WORK/use_c.o"
finish
