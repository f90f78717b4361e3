#!/usr/bin/env bash
# make demo: the whole product on this machine. Generates a small synthetic
# mask data set, starts a coordinator (.demo/sweepq.db) and one worker
# daemon, creates a team, submits examples/sweeps/demo.yaml, follows it with
# `sweepq watch`, prints `sweepq board`, then stops what it started.
#
#   scripts/demo.sh [BUILD_DIR]    run the demo (default build dir: build)
#   DEMO_KEEP=1 scripts/demo.sh    leave the coordinator and worker running
#   scripts/demo.sh stop [BUILD_DIR]  stop what a DEMO_KEEP=1 run left
#
# Everything lives in .demo/ (removed at the start of every run); the user's
# own sweepq login is never touched (XDG_CONFIG_HOME points into .demo/).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
MODE=run
if [[ "${1:-}" == "stop" ]]; then
  MODE=stop
  shift
fi
BUILD_DIR="${1:-build}"
[[ "$BUILD_DIR" == /* ]] || BUILD_DIR="$ROOT/$BUILD_DIR"
DEMO_DIR="$ROOT/.demo"
SERVER="$BUILD_DIR/server/sweepq-server"
WORKER="$BUILD_DIR/worker/sweepq-worker"
TRAIN="$BUILD_DIR/worker/sweepq-train"
MAKE_DATASET="$BUILD_DIR/worker/sweepq-make-dataset"
SWEEPQ="$BUILD_DIR/client/sweepq"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Starts a program in its own session (a Ctrl-C or a closed terminal does
# not reach it; this script stops it) and records "PID PATH" in
# .demo/NAME.pid.
start_recorded() {
  local name="$1" program="$2"
  shift 2
  setsid "$program" "$@" &
  echo "$! $(readlink -f "$program")" >"$DEMO_DIR/$name.pid"
}

# Stops a process recorded in .demo/NAME.pid if it is still the program that
# was started (a recycled pid is left alone). A worker drains on the first
# SIGTERM and stops its runs on the second.
stop_recorded() {
  local name="$1" pid_file="$DEMO_DIR/$1.pid" pid program exe
  [[ -f "$pid_file" ]] || return 0
  read -r pid program <"$pid_file"
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  if [[ -n "$exe" && "$exe" == "$program" ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true  # worker: stop the runs now
      for _ in $(seq 200); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pid_file"
}

stop_all() {
  stop_recorded worker
  stop_recorded server
}

if [[ "$MODE" == "stop" ]]; then
  stop_all
  exit 0
fi

for bin in "$SERVER" "$WORKER" "$TRAIN" "$MAKE_DATASET" "$SWEEPQ"; do
  if [[ ! -x "$bin" ]]; then
    echo "demo: $bin is missing; build first (make build, or make demo)" >&2
    exit 1
  fi
done

# A previous DEMO_KEEP=1 run may still be running: stop it before wiping.
stop_all
rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
export XDG_CONFIG_HOME="$DEMO_DIR/config"   # never touch the user's login

cleanup() {
  local status=$?
  if [[ "${DEMO_KEEP:-0}" != "1" ]]; then
    stop_all >/dev/null
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting sweepq-server on $DEMO_DIR/sweepq.db"
start_recorded server "$SERVER" --db "$DEMO_DIR/sweepq.db" \
  --artifacts "$DEMO_DIR/artifacts" --listen 127.0.0.1:0 \
  </dev/null >"$DEMO_DIR/server.out" 2>"$DEMO_DIR/server.log"
for _ in $(seq 100); do
  grep -q "listening on port" "$DEMO_DIR/server.out" 2>/dev/null && break
  sleep 0.1
done
PORT=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$DEMO_DIR/server.out")
if [[ -z "$PORT" ]]; then
  echo "demo: sweepq-server did not start:" >&2
  cat "$DEMO_DIR/server.log" >&2
  exit 1
fi
echo "coordinator at 127.0.0.1:$PORT (log: $DEMO_DIR/server.log)"

step "creating team 'demo'"
"$SERVER" --db "$DEMO_DIR/sweepq.db" team create demo \
  >"$DEMO_DIR/tokens.txt" 2>/dev/null
chmod 600 "$DEMO_DIR/tokens.txt"
MEMBER=$(sed -n 's/^member token: //p' "$DEMO_DIR/tokens.txt")
(umask 077 && sed -n 's/^worker token: //p' "$DEMO_DIR/tokens.txt" \
  >"$DEMO_DIR/worker.token")
echo "tokens written to $DEMO_DIR/tokens.txt"

step "generating the synthetic mask data set (100 people, 700 JPEGs)"
"$MAKE_DATASET" --out "$DEMO_DIR/data/mask" --people 100 --seed 1

step "starting sweepq-worker (one CPU slot, data set mask)"
start_recorded worker "$WORKER" --server "127.0.0.1:$PORT" \
  --token-file "$DEMO_DIR/worker.token" --worker-id demo-worker \
  --data "mask=$DEMO_DIR/data/mask" --slots 1 --work-dir "$DEMO_DIR/worker" \
  </dev/null >"$DEMO_DIR/worker.log" 2>&1
echo "worker demo-worker (log: $DEMO_DIR/worker.log)"

step "sweepq login"
"$SWEEPQ" login --server "127.0.0.1:$PORT" --team demo --token "$MEMBER"

step "sweepq submit examples/sweeps/demo.yaml --dry-run"
"$SWEEPQ" submit examples/sweeps/demo.yaml --dry-run
step "sweepq submit examples/sweeps/demo.yaml"
"$SWEEPQ" submit examples/sweeps/demo.yaml | tee "$DEMO_DIR/submit.out"
SWEEP=$(sed -n 's/^submitted sweep \([0-9]*\).*/\1/p' "$DEMO_DIR/submit.out")
[[ -n "$SWEEP" ]] || { echo "demo: no sweep id in the submit output" >&2; exit 1; }

step "sweepq watch --sweep $SWEEP (the worker trains the runs)"
WATCH_STATUS=0
"$SWEEPQ" watch --sweep "$SWEEP" || WATCH_STATUS=$?

step "sweepq runs --sweep $SWEEP"
"$SWEEPQ" runs --sweep "$SWEEP"
step "sweepq board --sweep $SWEEP"
"$SWEEPQ" board --sweep "$SWEEP"
FIRST=$("$SWEEPQ" runs --sweep "$SWEEP" --format csv | sed -n '2s/,.*//p' || true)
if [[ -n "$FIRST" ]]; then
  step "sweepq artifacts ls $FIRST"
  "$SWEEPQ" artifacts ls "$FIRST" || true
fi

if [[ "$WATCH_STATUS" == "0" ]]; then
  step "sweepq predict --top 1 --sweep $SWEEP --tta hflip --wait (the board's best run on eval/info.csv)"
  JOB=$("$SWEEPQ" predict --top 1 --sweep "$SWEEP" --tta hflip --wait | tail -1) || WATCH_STATUS=$?
  if [[ "$WATCH_STATUS" == "0" && -n "$JOB" ]]; then
    step "sweepq submission $JOB -o $DEMO_DIR/submission.csv"
    "$SWEEPQ" submission "$JOB" -o "$DEMO_DIR/submission.csv" --force
    head -n 4 "$DEMO_DIR/submission.csv"
  fi
fi

if [[ "$WATCH_STATUS" != "0" ]]; then
  echo "demo: some runs did not succeed; the worker's log ends with:" >&2
  tail -n 30 "$DEMO_DIR/worker.log" >&2
  exit 1
fi

if [[ "${DEMO_KEEP:-0}" == "1" ]]; then
  cat <<EOF

DEMO_KEEP=1: the coordinator (pid $(cut -d' ' -f1 "$DEMO_DIR/server.pid"), 127.0.0.1:$PORT) and the
worker (pid $(cut -d' ' -f1 "$DEMO_DIR/worker.pid"), log $DEMO_DIR/worker.log) keep running. To use them:
  export XDG_CONFIG_HOME=$DEMO_DIR/config
  $SWEEPQ board
  $SWEEPQ submit examples/sweeps/demo.yaml
To stop them:
  scripts/demo.sh stop
EOF
else
  step "stopping the worker and the coordinator"
  stop_all
fi
