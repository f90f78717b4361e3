#!/usr/bin/env bash
# make bench-train: the training step against Python PyTorch, and the data
# stall of real epochs. Extra flags are passed on, e.g. --threads=2 --steps=10.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
shift || true
cmake --build "$BUILD_DIR" --target train_bench -j "$(nproc)"
exec "$BUILD_DIR/bench/train_bench" \
  --reference_script=bench/train_reference.py "$@"
