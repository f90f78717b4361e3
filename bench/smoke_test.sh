#!/bin/sh
# Smoke test of coordinator_bench (CTest; not a measurement): two short
# paired rounds against a stand-in reference with a fixed rate, then a
# run whose reference is missing. Usage: smoke_test.sh BENCH SOURCE_DIR
set -u
bench=$1
src=$2
fail() { echo "FAILED: $1"; exit 1; }
short="--phases=trial,optuna --seconds=1 --workers=4 --python=/bin/sh"

out=$("$bench" $short --rounds=2 \
  --optuna_script="$src/bench/testdata/fake_optuna.sh" 2>&1) ||
  { echo "$out"; fail "the bench exited with $?"; }
echo "$out"
for round in 1 2; do
  echo "$out" | grep -Eq "^round $round: optuna 10.0 trials/s, ours [1-9][0-9]* trials/s" ||
    fail "no line for round $round"
done
echo "$out" | grep -q "the median of 2 rounds" || fail "ours is not the median of the rounds"
echo "$out" | grep -q "the median of the rounds' ratios" || fail "no ratio line"
echo "$out" | tail -n 1 |
  grep -Eq '^coordinator: ratio=[1-9][0-9]*\.[0-9] points_per_s=0 leaderboard_p99_ms=0\.00$' ||
  fail "the last line is not the summary with a ratio"

# Without the reference the trial phase still runs, once, and the ratio is 0.
out=$("$bench" $short --rounds=3 --optuna_script="$src/bench/testdata/missing.sh" 2>&1) ||
  { echo "$out"; fail "the bench exited with $? without its reference"; }
echo "$out"
echo "$out" | grep -q "optuna reference failed" || fail "the missing reference is not reported"
echo "$out" | grep -Eq "^ours   trial shape .*: [1-9][0-9]* trials/s \(one phase\)" ||
  fail "our trial phase did not run once"
echo "$out" | tail -n 1 | grep -q '^coordinator: ratio=0\.0 ' || fail "the ratio is not 0"
echo "PASSED"
