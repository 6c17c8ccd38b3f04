#!/usr/bin/env bash
# Runs one Kafka fault test N times in a row while busy loops keep every core loaded, and prints how long each run
# took to see all its attributions (a failed run's full output goes to $STRESS_OUT/fault-test-run-N.log) (the "N distinct attributions ... after X s" line) and whether it passed.
#   bench/stress/fault-test-under-load.sh [runs=20] [busy-processes=nproc] [test-name]
# Bounded: each run is killed after 10 minutes; the busy loops end with the script. TEST_DLL=path runs a copy of the
# built test assembly instead of tests/Integration.Tests (so a rebuild meanwhile does not change what is measured).
set -uo pipefail
RUNS="${1:-20}"
BUSY="${2:-$(nproc)}"
TEST="${3:-InjectedProduceFetchAndCommitErrors_AreRetried_AndEveryQueryIsAttributedOnce}"
cd "$(dirname "$0")/../.."
pids=()
for _ in $(seq 1 "$BUSY"); do python3 -c 'while True: pass' & pids+=($!); done
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done' EXIT
if [ -n "${TEST_DLL:-}" ]; then target=("$TEST_DLL"); else target=(tests/Integration.Tests --no-build -c Release); fi
echo "busy processes: $BUSY on $(nproc) cores; runs: $RUNS; test: $TEST"
for i in $(seq 1 "$RUNS"); do
  start=$(date +%s)
  out=$(timeout 600 dotnet test "${target[@]}" --filter "FullyQualifiedName~$TEST" --logger "console;verbosity=detailed" 2>&1)
  rc=$?
  took=$(grep -Eo '[0-9]+ distinct attributions for [^ ]+ after [0-9.]+ s' <<<"$out" | tail -1 | grep -Eo 'after [0-9.]+' | cut -d' ' -f2)
  verdict=$(grep -Eo '(LOST|LATE): [^"]*' <<<"$out" | head -1)
  [ "$rc" -ne 0 ] && printf '%s\n' "$out" > "${STRESS_OUT:-/tmp}/fault-test-run-$i.log"
  echo "run $i: rc=$rc wall=$(( $(date +%s) - start ))s attributions-after=${took:-?}s load=$(cut -d' ' -f1 /proc/loadavg) ${verdict}"
done
