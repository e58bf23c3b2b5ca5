#!/bin/sh
# The public headers must compile cleanly as C++ (extern "C", no C-only
# constructs) and as strict C11, since trainers include them from both.
# <moeplace.h> must need no MPI: it is compiled with no MPI include path.
# <moeplace/runtime.h> (only when configured with MPI) with the MPI flags.
# A part of <moeplace.h> included alone must refuse to compile.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
: "${MPI_IMPL:=}" "${MPI_CFLAGS:=}"

# header_ok HEADER SYMBOL EXPR [FLAGS...]: HEADER compiles as C11 and C++11
# with a main returning EXPR, and a C++ caller of SYMBOL refers to the C symbol.
header_ok() {
  h=$1 sym=$2 expr=$3
  shift 3
  printf '#include <%s>\nint main(void) { return %s; }\n' "$h" "$expr" >"$WORK/use.c"
  cp "$WORK/use.c" "$WORK/use.cpp"
  if command -v g++ >/dev/null 2>&1; then
    expect_status 0 "<$h> as C++11" -- g++ -std=c++11 -Wall -Wextra -pedantic -Werror \
      -I"$top_srcdir/include" "$@" -c "$WORK/use.cpp" -o "$WORK/use_cpp.o"
    CHECKS=$((CHECKS + 1))
    nm "$WORK/use_cpp.o" | grep -q " U $sym\$" || fail "<$h>: C++ caller does not see the C symbol $sym (missing extern \"C\")"
  fi
  expect_status 0 "<$h> as C11" -- cc -std=c11 -Wall -Wextra -pedantic -Werror \
    -I"$top_srcdir/include" "$@" -c "$WORK/use.c" -o "$WORK/use_c.o"
}

header_ok moeplace.h moeplace_version 'moeplace_version() == 0'
# No MPI flag above; and the core header must not pull the runtime in.
printf '#include <moeplace.h>\n#ifdef MOEPLACE_RUNTIME_H\n#error runtime.h included\n#endif\n' >"$WORK/core.c"
expect_status 0 "<moeplace.h> leaves the runtime out" -- cc -std=c11 -I"$top_srcdir/include" -fsyntax-only "$WORK/core.c"

for part in base trace predict placement; do
  printf '#include <moeplace/%s.h>\n' "$part" >"$WORK/part.c"
  expect_status 1 "<moeplace/$part.h> alone is refused" -- cc -std=c11 -I"$top_srcdir/include" -fsyntax-only "$WORK/part.c" &&
    expect_grep "Please include <moeplace.h>" "$WORK/err" "<moeplace/$part.h> alone"
done

if [ -n "$MPI_IMPL" ]; then
  # shellcheck disable=SC2086 # MPI_CFLAGS is a list of flags
  header_ok moeplace/runtime.h moeplace_runtime_rank 'moeplace_runtime_rank(0) != 0' $MPI_CFLAGS
else
  echo "configured --without-mpi: <moeplace/runtime.h> not checked"
fi
finish
