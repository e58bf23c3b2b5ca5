#!/bin/bash
# submit-sweep.sh: submit the replay sweep as one array job (one task per
# shape, range computed from the shapes table) plus an aggregation job that
# starts when every task succeeded (--dependency=afterok) and writes
# <outdir>/sweep.csv with replay-aggregate.py.
#
#   scripts/slurm/submit-sweep.sh [extra sbatch options...]
#   MOEPLACE_SHAPES=my-shapes.txt scripts/slurm/submit-sweep.sh --partition=big
#
# Run it from the source tree (or set MOEPLACE_SRCDIR); the environment
# variables of replay-sweep.sbatch apply. Prints the two job ids.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
export MOEPLACE_SRCDIR=${MOEPLACE_SRCDIR:-$(cd "$here/../.." && pwd)}
shapes=${MOEPLACE_SHAPES:-$MOEPLACE_SRCDIR/scripts/slurm/shapes.txt}
export MOEPLACE_SHAPES=$shapes
n=$(bash "$here/replay-sweep.sbatch" --count)

array_id=$(sbatch --parsable --array="0-$((n - 1))" "$@" "$here/replay-sweep.sbatch")
array_id=${array_id%%;*}
# The array tasks write into <submit dir>/moeplace-sweep-<array job id>
# unless MOEPLACE_OUTDIR says otherwise; the aggregation reads the same place.
outdir=${MOEPLACE_OUTDIR:-$PWD/moeplace-sweep-$array_id}
agg_id=$(sbatch --parsable --job-name=moeplace-sweep-aggregate --ntasks=1 --time=00:05:00 \
	--dependency="afterok:$array_id" --output="%x-%j.out" "$@" \
	--wrap="python3 '$here/replay-aggregate.py' --shapes '$shapes' -o '$outdir/sweep.csv' '$outdir'")
agg_id=${agg_id%%;*}
echo "array job $array_id ($n shapes), aggregation job $agg_id -> $outdir/sweep.csv"
