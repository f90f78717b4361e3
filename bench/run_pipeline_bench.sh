#!/usr/bin/env bash
# make bench-pipeline: generates a synthetic mask data set with
# sweepq-make-dataset in a temporary directory and runs the data pipeline
# benchmark against the torchvision reference on it.
#   bench/run_pipeline_bench.sh BUILD_DIR [--people N] [pipeline_bench flags]
# e.g. bench/run_pipeline_bench.sh build --people 200 --threads=4 --epochs=5
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
shift || true
PEOPLE=100
if [[ "${1:-}" == "--people" ]]; then
  PEOPLE="$2"
  shift 2
fi
cmake --build "$BUILD_DIR" --target sweepq-make-dataset pipeline_bench \
  -j "$(nproc)"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/sweepq-pipeline-bench-XXXXXX")"
trap 'rm -rf "$DATA"' EXIT
"$BUILD_DIR/worker/sweepq-make-dataset" --out "$DATA" --people "$PEOPLE" \
  --seed 1 --eval-images 0
"$BUILD_DIR/bench/pipeline_bench" --data "$DATA" \
  --reference_script=bench/pipeline_reference.py "$@"
