#!/usr/bin/env bash
# The issues' 5,000 / 500 / 100 LDS campaign (issues 15, 12, 10), one eval per group of methods, all against the same
# cached ground truth and the same held-out split (--tune-fraction 0.5: grids are chosen on half of the queries, every
# LDS, source-level LDS included, is reported on the other half). Groups run in the order of importance, so a run cut
# short still has the main numbers. Results of 2026-12-05: docs/benchmarks/attribution-eval.md ("lds5k" section).
#
# Usage: bench/lds5k.sh GROUP [SEED]     GROUP = one of the names below, or "all" (every group of SEED, in order)
# Environment: PIPELINE (default ./pipeline), CACHE (default .cache/eval: keep it outside the repo for big runs),
# OUT (default reports/lds5k), TRAIN/TEST/SUBSETS (default 5000 500 100), TRAK1_K/TRAK1_DAMPING/TRAK10_K/TRAK10_DAMPING (grids,
# default the full decade grid; the 2026-12-05 run used the three decades around TRAK-1's choice, see the page),
# ENSEMBLE (forward-only ensemble size M, default 3; the 2026-12-05 run could afford 2).
set -euo pipefail
GROUP=${1:?usage: bench/lds5k.sh GROUP [SEED]}; SEED=${2:-0}
PIPELINE=${PIPELINE:-./pipeline}; CACHE=${CACHE:-.cache/eval}; OUT=${OUT:-reports/lds5k}
TRAIN=${TRAIN:-5000}; TEST=${TEST:-500}; SUBSETS=${SUBSETS:-100}
K="256|512|1024|2048|4096"; DAMP="1e-4|1e-3|1e-2|1e-1|1|10"
TRAK1_K=${TRAK1_K:-$K}; TRAK1_DAMPING=${TRAK1_DAMPING:-$DAMP}; TRAK10_K=${TRAK10_K:-$K}; TRAK10_DAMPING=${TRAK10_DAMPING:-$DAMP}
common=(eval --train "$TRAIN" --test "$TEST" --subsets "$SUBSETS" --epochs 20 --seed "$SEED" --sources 10 --source-subsets 50
        --tune-fraction 0.5 --latency-queries 5 --cache "$CACHE")
run() { local group=$1; shift; $PIPELINE "${common[@]}" "$@" --out "$OUT/seed-$SEED/$group"; }

group() {
  case "$1" in
    # Forward-only (one model, defaults) and the gradient baselines; trains the ground truth on first use.
    forward-only) run forward-only --method forward-only --method grad-dot --method tracin ;;
    trak-1) run trak-1 --method "trak:models=1,projector=sjlt,k=$TRAK1_K,damping=$TRAK1_DAMPING" ;;
    # forward-only alone (a second draw, where the gradient baselines are already known)
    forward-only-alone) run forward-only-alone --method forward-only ;;
    trak-10) run trak-10 --method "trak:models=10,projector=sjlt,k=$TRAK10_K,damping=$TRAK10_DAMPING" ;;
    # STRIDE (K = 1000, d = 10, rank 16) and its two combinations with forward-only (issue 12).
    stride) run stride --method stride --method stride:combine=blend ;;
    stride-prior) run stride-prior --method stride:combine=prior ;;
    forward-only-ensemble) run forward-only-ensemble --method "forward-only:models=${ENSEMBLE:-3}" ;;
    all) for g in forward-only trak-1 trak-10 stride stride-prior forward-only-ensemble; do group "$g"; done ;;
    *) echo "unknown group '$1' (forward-only, forward-only-alone, trak-1, trak-10, stride, stride-prior, forward-only-ensemble, all)" >&2; exit 2 ;;
  esac
}
group "$GROUP"
