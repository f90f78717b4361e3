#!/usr/bin/env bash
# Keeps the number of sweepq worker jobs in Slurm in step with the queue:
# submits worker jobs while runs wait (up to --max jobs), cancels pending
# jobs when nothing waits, and scancels running jobs whose daemon is idle
# (scancel = SIGTERM = drain, so nothing is lost).
#
#   deploy/slurm/scale.sh [--max N] [--slots-per-job N] [--interval S] [--once]
#                         [-- SBATCH_ARGS...]
#
# Uses the `sweepq` CLI (logged in with a member token: sweepq login) and
# submits deploy/slurm/sweepq-worker.sbatch with the environment it
# documents (SWEEPQ_SERVER, SWEEPQ_TOKEN_FILE, SWEEPQ_DATA, ...).
# Arguments after -- go to sbatch (e.g. -- --gres=gpu:4 --partition=gpu).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
max=4
slots_per_job=1
interval=60
once=0
sbatch_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --max) max="$2"; shift 2 ;;
    --slots-per-job) slots_per_job="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --once) once=1; shift ;;
    --) shift; sbatch_args=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "scale.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
sweepq_cli="${SWEEPQ_CLI:-sweepq}"
job_name=sweepq-worker

count_json() { python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

# Ids of this user's worker jobs in a state (PENDING or RUNNING).
jobs_in() { squeue -h -u "$(id -un)" -n "$job_name" -t "$1" -o %i; }

# Job ids whose daemon reports no running run.
idle_jobs() {
  "$sweepq_cli" workers --format json | python3 -c '
import json, re, sys
for w in json.load(sys.stdin):
    m = re.match(r"slurm-(\d+)-", w["worker_id"])
    if m and w["state"] == "active" and not w["running_run_ids"]:
        print(m.group(1))
'
}

step() {
  local queued pending running total want
  queued=$("$sweepq_cli" runs --state queued --limit 10000 --format json | count_json)
  pending=$(jobs_in PENDING | wc -l)
  running=$(jobs_in RUNNING | wc -l)
  total=$((pending + running))
  if ((queued > 0)); then
    want=$(( (queued + slots_per_job - 1) / slots_per_job ))
    want=$(( want > max ? max : want ))
    # Pending jobs will pick up queued runs once they start.
    local add=$(( want - pending ))
    (( add > max - total )) && add=$(( max - total ))
    for ((i = 0; i < add; i++)); do
      job=$(sbatch --parsable "${sbatch_args[@]}" "$here/sweepq-worker.sbatch")
      echo "scale: $queued runs queued; submitted worker job $job"
    done
  else
    for job in $(jobs_in PENDING); do
      scancel "$job" && echo "scale: queue empty; cancelled pending job $job"
    done
    for job in $(idle_jobs); do
      if squeue -h -j "$job" -t RUNNING -o %i | grep -q .; then
        scancel "$job" && echo "scale: queue empty; draining idle job $job"
      fi
    done
  fi
}

while true; do
  step
  ((once)) && exit 0
  sleep "$interval"
done
