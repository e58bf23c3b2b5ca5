#!/bin/sh
# make check (MPI builds): examples/torch_moe, the PyTorch expert-parallel
# trainer, on 2 ranks, short (40 steps, a rebalance check every 20):
#  1. --rebalance off and on: the loss of every step agrees to 1e-4
#     relative, and the "on" run rebalanced with moves;
#  2. a run killed (SIGTERM to mpirun) after a checkpoint, then --resume:
#     the losses after the restart agree with the uninterrupted "on" run,
#     the placement after restart is the one saved, and the runtime (restored
#     from its own checkpoint) rebalances at the same steps with the same moves.
# SKIP (77) without torch, mpi4py or numpy, or in a sanitizer build.
set -u
: "${top_builddir:=.}" "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PYTHON3:=/usr/bin/python3}" "${MPIRUN:=mpirun}" "${MPI_IMPL:=openmpi}"

skip() { echo "SKIP: $*"; exit 77; }
[ -z "${MOEPLACE_SANITIZERS:-}" ] ||
  skip "sanitizer build: python3 cannot load ASan-instrumented libraries"
if [ "$PYTHON3" = no ] || [ ! -x "$PYTHON3" ]; then skip "no python3 (apt-get install python3)"; fi
for m in numpy torch mpi4py; do
  "$PYTHON3" -c "import $m" 2>/dev/null || skip "python3 module $m missing (apt-get install python3-$m)"
done
[ "$MPIRUN" != no ] || { echo "no MPI launcher found by configure"; exit 99; }

top_builddir=$(cd "$top_builddir" && pwd)
PYTHONPATH="$top_srcdir/python${PYTHONPATH:+:$PYTHONPATH}"
MOEPLACE_LIBDIR="$top_builddir/.libs"
PYTHONDONTWRITEBYTECODE=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export PYTHONPATH MOEPLACE_LIBDIR PYTHONDONTWRITEBYTECODE OPENBLAS_NUM_THREADS OMP_NUM_THREADS
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
export OMPI_MCA_rmaps_base_oversubscribe=1
over=""
[ "$MPI_IMPL" != openmpi ] || over=--oversubscribe

ex="$top_srcdir/examples/torch_moe"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/torch_moe.XXXXXX") || exit 99
pid=""
cleanup() { [ -z "$pid" ] || kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cd "$tmp" || exit 99
train() {  # train NAME ARGS...: one run of the trainer, its output in NAME.log
  name=$1; shift
  # shellcheck disable=SC2086 # $over is empty or one option
  timeout 600 "$MPIRUN" $over -np 2 "$PYTHON3" "$ex/train.py" --window 10 \
    --rebalance-interval 20 "$@" >"$name.log" 2>&1 || { cat "$name.log"; echo "FAIL: $name run"; exit 1; }
  grep '^done' "$name.log"
}
compare() { "$PYTHON3" "$ex/compare.py" "$@" || exit 1; }

train off --steps 40 --rebalance off --json off.json
train on --steps 40 --rebalance on --json on.json --checkpoint-every 10 --checkpoint-dir ck-full \
  --record-trace on.csv
compare off.json on.json --need-moves
"$PYTHON3" -c "import moeplace, sys; s, c, m = moeplace.read_trace(sys.argv[1]);
assert s.tolist() == list(range(1, 41)) and c.shape == (40, 2, 8) and (c.sum(axis=2) == 512).all(), (s, c.shape)
print('trace: 40 steps of [2][8] counts, 512 tokens per layer and step')" on.csv || exit 1

# The same run, killed once a checkpoint at step 10, 20 or 30 is complete.
# It stops at step 39 by itself, so however late the kill lands (a fast or
# a loaded machine), its last checkpoint is before step 40.
# shellcheck disable=SC2086
"$MPIRUN" $over -np 2 "$PYTHON3" "$ex/train.py" --window 10 --rebalance-interval 20 --steps 39 \
  --rebalance on --checkpoint-every 10 --checkpoint-dir ck >killed.log 2>&1 &
pid=$!
i=0
until grep -qs '"step": [123]0,' ck/latest.json; do
  i=$((i + 1))
  if [ $i -ge 1200 ] || ! kill -0 "$pid" 2>/dev/null; then
    cat killed.log; echo "FAIL: no checkpoint"; exit 1
  fi
  sleep 0.25
done
kill -TERM "$pid" 2>/dev/null # it may have reached step 39 already
wait "$pid"
pid=""
cp ck/latest.json saved.json
saved=$("$PYTHON3" -c "import json; print(json.load(open('saved.json'))['step'])")
[ "$saved" -lt 40 ] || { echo "FAIL: the trainer ran past step 40 before it was killed"; exit 1; }
echo "killed after the checkpoint of step $saved"
train resumed --steps 40 --rebalance on --json resumed.json --checkpoint-dir ck --resume
compare on.json resumed.json --saved-placement saved.json --same-decisions
echo "PASS"
