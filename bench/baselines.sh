#!/usr/bin/env bash
# Tuned baselines vs forward-only (issue 15): one eval per group of methods, all against the same cached ground truth
# and the same held-out split (--tune-fraction 0.5: grids are chosen on half of the queries, every LDS is reported on the
# other half). Usage: bench/baselines.sh [TRAIN TEST SUBSETS "SEEDS" OUTDIR]   (defaults: the 5000 500 100 "0 1")
# PIPELINE overrides the command (default ./pipeline). Each group writes OUTDIR/seed-<s>/<group>/report.md.
set -euo pipefail
TRAIN=${1:-5000}; TEST=${2:-500}; SUBSETS=${3:-100}; SEEDS=${4:-"0 1"}; OUT=${5:-reports/baselines}
PIPELINE=${PIPELINE:-./pipeline}
K="256|512|1024|2048|4096"; DAMP="1e-4|1e-3|1e-2|1e-1|1|10"
for s in $SEEDS; do
  common=(eval --train "$TRAIN" --test "$TEST" --subsets "$SUBSETS" --epochs 20 --source-subsets 0 --seed "$s"
          --tune-fraction 0.5 --latency-queries 2 --cache "${CACHE:-.cache/eval}")
  run() { local group=$1; shift; $PIPELINE "${common[@]}" "$@" --out "$OUT/seed-$s/$group"; }
  run forward-only --method forward-only --method grad-dot --method tracin
  run trak-10 --method "trak:models=10,projector=sjlt,k=$K,damping=$DAMP"
  run forward-only-ensemble --method forward-only:models=3
  run trak-1 --method "trak:models=1,projector=sjlt,k=$K,damping=$DAMP"
  run if --method "if:solver=cg,iterations=10,lambda=1e-3|1e-2|1e-1|1"
done
