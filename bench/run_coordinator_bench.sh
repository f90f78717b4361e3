#!/usr/bin/env bash
# make bench-coordinator: runs the coordinator benchmark against Optuna.
# Extra flags are passed on, e.g. --workers=32 --seconds=5.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
shift || true
cmake --build "$BUILD_DIR" --target coordinator_bench -j "$(nproc)"
exec "$BUILD_DIR/bench/coordinator_bench" \
  --optuna_script=bench/optuna_reference.py "$@"
