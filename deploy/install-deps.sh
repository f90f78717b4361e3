#!/usr/bin/env bash
# Installs the Debian 12 packages sweepq builds, tests and runs with.
# Idempotent: does nothing when every package is already installed.
#   deploy/install-deps.sh          build + test dependencies
#   deploy/install-deps.sh --bench  also the reference peers of `make bench`
set -euo pipefail

packages=(
  cmake g++ make ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libabsl-dev libsqlite3-dev libssl-dev libgoogle-glog-dev libyaml-cpp-dev
  libgtest-dev libgmock-dev
  libopencv-dev opencv-data libtorch-dev
  zlib1g-dev  # PNG pictures of the CLI (common/plot)
  python3-skimage  # astronaut.png: the real face photo of face_crop_test
  python3-pil  # an independent PNG decoder for the picture tests
  python3-torchvision  # tools/export_model.py, run by the TorchScript tests
  systemd  # systemd-analyze verify of deploy/systemd (tests/deploy)
  slurm-wlm munge  # the real single-node Slurm cluster of tests/deploy
  openssl sqlite3
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3 python3-optuna python3-torch python3-torchvision
    python3-pil)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
