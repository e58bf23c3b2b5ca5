#!/bin/sh
# No function in the library directories is longer than MAX_LINES (150):
# a function that long does several things and is split around a context
# struct instead (docs/HACKING.md). Counts from the line of the signature to
# the closing brace of top-level C functions (brace at column 0, the
# project's clang-format style).
: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
max=${MAX_LINES:-150}
cd "$top_srcdir" || exit 1
long=$(awk -v MAX="$max" '
  FNR == 1 { cand = 0; infn = 0 }
  !infn && /^[A-Za-z_].*\(/ && !/;[ \t]*$/ { cand = FNR; name = $0 }
  !infn && cand && /\{[ \t]*$/ { infn = 1 }
  infn && /^\}/ { n = FNR - cand + 1; if (n > MAX) printf "%s:%d: %d lines: %s\n", FILENAME, cand, n, name; infn = 0; cand = 0 }
  !infn && /^\}/ { cand = 0 }
' common/*.c predict/*.c placement/*.c replay/*.c runtime/*.c)
checked=$(cat common/*.c predict/*.c placement/*.c replay/*.c runtime/*.c | grep -c '^}')
if [ -n "$long" ]; then
  echo "functions over $max lines:"
  echo "$long"
  exit 1
fi
echo "function_length: $checked top-level blocks checked, none over $max lines"
