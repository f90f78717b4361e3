#!/usr/bin/env bash
# Compiles (syntax and types only, no linking) every LibTorch translation
# unit of a configured build against the headers of a LibTorch 2.x, to show
# the code stays portable beyond Debian 12's LibTorch 1.13 (issue #8: the
# worker image builds against a CUDA LibTorch 2.x).
#
# The 2.x headers come from Debian 13 (trixie)'s libtorch-dev package,
# downloaded with a private apt state under the cache directory (nothing is
# installed on this machine; only Debian's registry is needed).
#
# Usage: scripts/check-libtorch2.sh [BUILD_DIR] [CACHE_DIR]
#   BUILD_DIR  a configured build with compile_commands.json (default build)
#   CACHE_DIR  where the .deb and its headers go (default /tmp/sweepq-libtorch2)
# Environment: SUITE (default trixie), JOBS (default nproc), ONLY (a regex:
# check only the units whose path matches).
# Exit status: 0 when every unit compiles, 1 otherwise (errors are printed).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${1:-build}"
CACHE="${2:-/tmp/sweepq-libtorch2}"
SUITE="${SUITE:-trixie}"
JOBS="${JOBS:-$(nproc)}"

if [[ ! -f "$BUILD_DIR/compile_commands.json" ]]; then
  echo "check-libtorch2: $BUILD_DIR/compile_commands.json missing; configure first (cmake -S . -B $BUILD_DIR)" >&2
  exit 1
fi

mkdir -p "$CACHE"/apt/{lists/partial,archives/partial,sources} "$CACHE/debs"
touch "$CACHE/apt/status"
cat > "$CACHE/apt/sources/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
APT=(-o "Dir::State=$CACHE/apt" -o "Dir::State::status=$CACHE/apt/status"
     -o "Dir::Cache=$CACHE/apt" -o "Dir::Etc::sourcelist=/dev/null"
     -o "Dir::Etc::sourceparts=$CACHE/apt/sources" -o "APT::Sandbox::User=root")
ROOT="$CACHE/root"
VERSION_H="$ROOT/usr/include/torch/csrc/api/include/torch/version.h"
if [[ ! -f "$VERSION_H" ]]; then
  echo "check-libtorch2: fetching libtorch-dev from Debian $SUITE" >&2
  apt-get "${APT[@]}" -qq update
  (cd "$CACHE/debs" && apt-get "${APT[@]}" -qq download libtorch-dev)
  rm -rf "$ROOT" && mkdir -p "$ROOT"
  dpkg-deb -x "$CACHE"/debs/libtorch-dev_*.deb "$ROOT"
fi
INC="$ROOT/usr/include"
VERSION=$(awk '/define TORCH_VERSION_(MAJOR|MINOR|PATCH)/ {printf "%s%s", sep, $3; sep="."}' "$VERSION_H")
# Prove the 2.x headers are the ones found ahead of the installed ones.
echo '#include <torch/version.h>
static_assert(TORCH_VERSION_MAJOR >= 2, "found the installed LibTorch 1.x headers");' |
  c++ -fsyntax-only -std=c++17 -isystem "$INC" -isystem "$INC/torch/csrc/api/include" -x c++ - ||
  { echo "check-libtorch2: the LibTorch 2.x headers are not the ones found" >&2; exit 1; }
echo "check-libtorch2: LibTorch headers $VERSION from Debian $SUITE"

# One command per LibTorch unit, with the 2.x include directories first
# (so they shadow the installed 1.13 ones) and -fsyntax-only.
/usr/bin/python3 - "$BUILD_DIR/compile_commands.json" "$INC" "${ONLY:-}" > "$CACHE/commands.txt" <<'PY'
import json, re, shlex, sys
entries = json.load(open(sys.argv[1]))
inc = sys.argv[2]
only = re.compile(sys.argv[3]) if sys.argv[3] else None
for e in entries:
    cmd = e.get("command") or " ".join(map(shlex.quote, e["arguments"]))
    if "torch/csrc/api/include" not in cmd:
        continue
    if only and not only.search(e["file"]):
        continue
    args = shlex.split(cmd)
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-o":
            skip = True
            continue
        if a == "-c":
            continue
        out.append(a)
    out[1:1] = ["-fsyntax-only", "-isystem", inc, "-isystem",
                inc + "/torch/csrc/api/include"]
    print(e["directory"] + "\t" + e["file"] + "\t" + shlex.join(out))
PY
total=$(wc -l < "$CACHE/commands.txt")
echo "check-libtorch2: $total LibTorch translation units, $JOBS at a time"
rm -f "$CACHE"/*.log
check_one() {
  local dir="$1" file="$2" cmd="$3" log
  log="$CACHE/$(echo "$file" | tr '/' '_').log"
  if (cd "$dir" && eval "$cmd") >"$log" 2>&1 && ! grep -q "warning:" "$log"; then
    echo "ok    $file"
  else
    echo "FAIL  $file"; grep -E "error|warning" "$log" | head -20
    return 1
  fi
}
export -f check_one
export CACHE
if tr '\n' '\0' < "$CACHE/commands.txt" |
    xargs -0 -P "$JOBS" -I{} bash -c 'IFS=$'"'"'\t'"'"' read -r d f c <<< "$1"; check_one "$d" "$f" "$c"' _ {}; then
  echo "check-libtorch2: all $total units compile against LibTorch $VERSION"
else
  echo "check-libtorch2: some units do not compile against LibTorch $VERSION" >&2
  exit 1
fi
