#!/bin/bash
# Makes the extra expert-load traces the tuning and the results are measured
# on (docs/RESULTS.md), by training small byte-level MoE models on text that
# Debian installs, with ../shared/tools/gen_trace.py (not part of the
# project: pass its path with GEN_TRACE=... if it lives elsewhere).
# The traces differ in corpus, expert count, top-k, auxiliary-loss weight and
# seed; they are too large to commit and take ~3-10 min each on one core.
#
# Usage: scripts/make_traces.sh OUT_DIR [NAME...]   (default: every trace)
# Existing files are kept (delete one to remake it). Needs python3-torch.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT_DIR [NAME...]}
shift
gen=${GEN_TRACE:-$here/../shared/tools/gen_trace.py}
py=/usr/bin/python3
[ -f "$gen" ] || { echo "make_traces.sh: $gen not found (set GEN_TRACE)" >&2; exit 2; }
mkdir -p "$out"

# A training's routing drifts apart from the last bits of its arithmetic, and
# two libraries pick their kernels by CPU: OpenBLAS its sgemm (torch's matmuls;
# some machines also set OPENBLAS_CORETYPE for everything), ATen its vector
# kernels. Each choice gives other traces (docs/RESULTS.md, "Why the traces
# differ"), so both are pinned here to ones every x86-64 CPU with AVX2 and
# FMA runs. Elsewhere the traces are made on the CPU's own kernels and differ
# from the recorded digests.
if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  export OPENBLAS_CORETYPE=Haswell ATEN_CPU_CAPABILITY=avx2
else
  echo "make_traces.sh: no x86-64 AVX2/FMA here: traces on this CPU's own kernels" >&2
fi

# name | corpus files | gen_trace options (small d/ffn/seq so a trace takes minutes)
# Each corpus is the files of packages every Debian 12 build machine has
# (libc6-dev, libpython3.11-stdlib, perl-modules-5.36, libstdc++-12-dev and
# the Priority: required packages), so that the traces do not depend on what
# else is installed: "the first 400 headers of /usr/include" were torch's
# ATen headers once python3-torch was there. Sorted in the C locale.
corpus() {
  case $1 in
    cheaders) dpkg -L libc6-dev | grep '\.h$' | LC_ALL=C sort | head -400 ;;
    pystdlib) ls /usr/lib/python3.11/*.py | LC_ALL=C sort ;;
    perlmods) find /usr/share/perl -name '*.pm' | LC_ALL=C sort | head -300 ;;
    copyright)
      dpkg-query -W -f='${Package} ${Priority}\n' | awk '$2 == "required" { print $1 }' |
        while read -r p; do [ -f "/usr/share/doc/$p/copyright" ] && echo "/usr/share/doc/$p/copyright"; done |
        LC_ALL=C sort ;;
    cxx) find /usr/include/c++/12 -type f | LC_ALL=C sort | head -400 ;;
  esac
}
declare -A opts=(
  [cheaders-L4-E16-top2]="cheaders --experts 16 --topk 2 --aux 0.01 --seed 11"
  [pystdlib-L4-E32-top4]="pystdlib --experts 32 --topk 4 --aux 0.003 --seed 12"
  [perlmods-L4-E8-top1]="perlmods --experts 8 --topk 1 --aux 0.0 --seed 13"
  [copyright-L6-E24-top2]="copyright --experts 24 --topk 2 --aux 0.001 --seed 14 --layers 6"
  [cheaders-L4-E64-top2]="cheaders --experts 64 --topk 2 --aux 0.001 --seed 15"
  [cxx-L5-E12-top2]="cxx --experts 12 --topk 2 --aux 0.005 --seed 16 --layers 5"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(cheaders-L4-E16-top2 pystdlib-L4-E32-top4 perlmods-L4-E8-top1 copyright-L6-E24-top2 cheaders-L4-E64-top2 cxx-L5-E12-top2)
for name in "${names[@]}"; do
  spec=${opts[$name]:-}
  [ -n "$spec" ] || { echo "make_traces.sh: unknown trace $name" >&2; exit 2; }
  f=$out/$name.csv.gz
  [ -s "$f" ] && { echo "keep $f"; continue; }
  set -- $spec
  src=$1; shift
  mapfile -t files < <(corpus "$src")
  # the corpus's digest, so that two machines can tell whether they trained on the same text
  digest=$(cat "${files[@]}" | sha256sum | cut -c1-16)
  echo "make $f ($src, ${#files[@]} files, corpus sha256 $digest...: $*)"
  echo "$src ${#files[@]} files sha256 $digest" > "$out/$name.corpus"
  "$py" "$gen" --corpus "${files[@]}" --out "$f.part.csv.gz" --steps "${STEPS:-4000}" \
    --d 64 --ffn 128 --seq 64 --batch 8 --threads 1 "$@" > "$out/$name.log" 2>&1
  mv "$f.part.csv.gz" "$f"
  # the trace's own digest: the same corpus trained into other counts on
  # another machine of this kind (docs/RESULTS.md, "On another machine")
  echo "$name trace sha256 $(zcat -f "$f" | grep -v '^#' | sha256sum | cut -c1-16)" |
    tee -a "$out/$name.corpus"
done
