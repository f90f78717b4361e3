#!/usr/bin/env bash
# The Slurm recipe on a real single-node Slurm cluster (slurmctld, slurmd and
# munged started here by deploy/slurm/local-cluster.sh):
#   1. sbatch deploy/slurm/sweepq-worker.sbatch drains a two-run sweep;
#   (worker jobs are submitted and, when idle, drained by
#   deploy/slurm/scale.sh, following the queue);
#   2. scancel of a worker job in the middle of a run: the daemon drains,
#      the run goes back to the queue, and a second worker job resumes it
#      from its uploaded checkpoint (attempt 2 starts after epoch 1) and
#      finishes it.
# Exit 77 (CTest: skipped) only where Slurm cannot run: not root, or the
# slurm-wlm / munge packages are not installed.
#   tests/deploy/slurm_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src="$(realpath "$1")"
bin="$(realpath "$2")"

if [[ $(id -u) -ne 0 ]]; then
  echo "SKIP: slurmd must run as root to start jobs; run the test as root"
  exit 77
fi
for tool in slurmctld slurmd munged sbatch; do
  if ! command -v "$tool" >/dev/null; then
    echo "SKIP: $tool not installed (apt-get install slurm-wlm munge; deploy/install-deps.sh does)"
    exit 77
  fi
done

tmp="$(mktemp -d /tmp/sweepq-slurm-test.XXXXXX)"
server_pid=""
cleanup() {
  local status=$?
  if [[ -n "${SLURM_CONF:-}" ]]; then
    scancel --full --signal=KILL --user=root 2>/dev/null || true
  fi
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null
  "$src"/deploy/slurm/local-cluster.sh stop "$tmp/slurm" || true
  if [[ $status -ne 0 ]]; then
    echo "--- failed; logs follow"
    for f in "$tmp"/job-*.log "$tmp"/server.log "$tmp"/slurm/slurmd.log; do
      [[ -f "$f" ]] && { echo "--- $f"; tail -n 40 "$f"; }
    done
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

deadline_wait() {  # deadline_wait SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  local end=$((SECONDS + seconds))
  until "$@"; do
    if ((SECONDS > end)); then echo "FAIL: timed out waiting for $what"; exit 1; fi
    sleep 1
  done
}

eval "$("$src"/deploy/slurm/local-cluster.sh start "$tmp/slurm")"
echo "slurm cluster up ($SLURM_CONF)"

# Coordinator with a short lease so a lost worker's run comes back quickly.
"$bin"/server/sweepq-server --db "$tmp/sweepq.db" --artifacts "$tmp/artifacts" \
  --listen 127.0.0.1:0 --lease-ttl-ms=4000 >"$tmp/server.out" 2>"$tmp/server.log" &
server_pid=$!
deadline_wait 20 "the coordinator" grep -q "listening on port" "$tmp/server.out"
port=$(sed -n 's/.*listening on port \([0-9]*\).*/\1/p' "$tmp/server.out")
"$bin"/server/sweepq-server --db "$tmp/sweepq.db" team create slurm \
  >"$tmp/tokens.txt" 2>/dev/null
sed -n 's/^worker token: //p' "$tmp/tokens.txt" >"$tmp/worker.token"
member=$(sed -n 's/^member token: //p' "$tmp/tokens.txt")
export XDG_CONFIG_HOME="$tmp/config"
sweepq() { "$bin"/client/sweepq "$@"; }
sweepq login --server "127.0.0.1:$port" --team slurm --token "$member" >/dev/null

"$bin"/worker/sweepq-make-dataset --out "$tmp/data" --people 24 --seed 5 >/dev/null

export SWEEPQ_SERVER="127.0.0.1:$port"
export SWEEPQ_TOKEN_FILE="$tmp/worker.token"
export SWEEPQ_DATA="mask=$tmp/data"
export SWEEPQ_WORKER_BIN="$bin/worker/sweepq-worker"
export SWEEPQ_WORKER_ARGS="--threads-per-slot=1 --lease-wait-ms=1000 --grace-period-ms=2000"
# Worker jobs are submitted by the autoscaler, one step at a time.
export SWEEPQ_CLI="$bin/client/sweepq"
scale_once() {
  "$src"/deploy/slurm/scale.sh --once --max 1 -- --gres=none \
    --cpus-per-task=1 --time=15 --output="$tmp/job-%j.log"
}
submit_worker_job() {
  scale_once | sed -n 's/.*submitted worker job \([0-9]*\).*/\1/p'
}
state_of() {  # state_of RUN
  sweepq show "$1" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'
}
run_ids() {  # run_ids: ids of the submit output on stdin
  python3 -c 'import json,sys; print(" ".join(str(r) for r in json.load(sys.stdin)["run_ids"]))'
}

cat >"$tmp/short.yaml" <<'YAML'
method: grid
config:
  data: {dataset: mask, image_width: 48, image_height: 64}
  model: {name: small_cnn}
  train: {epochs: 2, batch_size: 16}
  threads: 1
parameters:
  optimizer.lr: {values: [0.001, 0.003]}
YAML
short_runs=$(sweepq submit "$tmp/short.yaml" --format json | run_ids)
job1=$(submit_worker_job)
[[ -n "$job1" ]] || { echo "FAIL: scale.sh submitted no worker job for 2 queued runs"; exit 1; }
echo "part 1: worker job $job1 runs sweep runs $short_runs"
all_succeeded() {
  for r in $short_runs; do [[ "$(state_of "$r")" == succeeded ]] || return 1; done
}
deadline_wait 600 "the short sweep to succeed under Slurm" all_succeeded
echo "part 1: every run succeeded"

cat >"$tmp/long.yaml" <<'YAML'
method: grid
config:
  data: {dataset: mask, image_width: 48, image_height: 64}
  model: {name: small_cnn}
  train: {epochs: 12, batch_size: 16}
  threads: 1
parameters:
  seed: {value: 7}
YAML
long_run=$(sweepq submit "$tmp/long.yaml" --format json | run_ids)
has_checkpoint() {
  sweepq artifacts ls "$long_run" --format json 2>/dev/null |
    python3 -c 'import json,sys; sys.exit(0 if any(a["name"]=="last.ckpt" for a in json.load(sys.stdin)) else 1)'
}
deadline_wait 600 "run $long_run to upload a checkpoint" has_checkpoint
echo "part 2: run $long_run has a checkpoint; scancel $job1"
scancel "$job1"
job_gone() { [[ -z "$(squeue -h -j "$job1" 2>/dev/null)" ]]; }
deadline_wait 120 "job $job1 to end" job_gone
grep -q "drain" "$tmp/job-$job1.log" || { echo "FAIL: the daemon did not drain on SIGTERM"; exit 1; }
not_on_job1() { [[ "$(state_of "$long_run")" == queued ]] || [[ "$(state_of "$long_run")" == succeeded ]]; }
deadline_wait 60 "run $long_run to go back to the queue" not_on_job1
job2=$(submit_worker_job)
[[ -n "$job2" ]] || { echo "FAIL: scale.sh submitted no worker job for the requeued run"; exit 1; }
echo "part 2: run $long_run is back in the queue; worker job $job2 takes it"
long_succeeded() { [[ "$(state_of "$long_run")" == succeeded ]]; }
deadline_wait 600 "run $long_run to succeed on job $job2" long_succeeded
# The second attempt resumed from the checkpoint: its first epoch is
# after epoch 1, and the metric history has every epoch once per attempt.
sweepq show "$long_run" --format json | python3 -c '
import json, sys
attempts = json.load(sys.stdin)["attempts"]
assert len(attempts) >= 2, "expected a second attempt, got %r" % attempts
print("attempts:", [(a["attempt"], a["outcome"]) for a in attempts])
'
first_epoch=$(sqlite3 "$tmp/sweepq.db" "SELECT min(step) FROM metrics WHERE run_id = $long_run AND name = 'val_f1' AND attempt = (SELECT max(attempt) FROM metrics WHERE run_id = $long_run)")
echo "part 2: the last attempt started at epoch $first_epoch"
if [[ -z "$first_epoch" || "$first_epoch" -le 1 ]]; then
  echo "FAIL: the requeued run did not resume from its checkpoint"
  exit 1
fi
# Queue empty: the autoscaler drains the idle worker job.
scale_once
job2_gone() { [[ -z "$(squeue -h -j "$job2" 2>/dev/null)" ]]; }
deadline_wait 120 "scale.sh to drain idle job $job2" job2_gone
echo "part 3: the idle worker job was drained"
echo "PASS"
