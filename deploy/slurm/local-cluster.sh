#!/usr/bin/env bash
# A single-node Slurm cluster on this host, all state in one directory, for
# tests and for trying the sbatch script without a real cluster.
#   deploy/slurm/local-cluster.sh start DIR   prints `export SLURM_CONF=...`
#   deploy/slurm/local-cluster.sh stop DIR
# Needs Debian's slurm-wlm and munge packages and root (slurmd runs jobs as
# their submitting user). Ports are picked free at start.
set -euo pipefail

cmd="${1:?usage: local-cluster.sh start|stop DIR}"
dir="$(realpath -m "${2:?usage: local-cluster.sh start|stop DIR}")"

stop() {
  for pidfile in "$dir"/slurmd.pid "$dir"/slurmctld.pid "$dir"/munged.pid; do
    [[ -f "$pidfile" ]] || continue
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$pidfile"
  done
}

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
PY
}

if [[ "$cmd" == "stop" ]]; then
  stop
  exit 0
fi
[[ "$cmd" == "start" ]] || { echo "unknown command $cmd" >&2; exit 2; }
for tool in munged slurmctld slurmd sbatch; do
  command -v "$tool" >/dev/null || {
    echo "local-cluster: $tool not found; apt-get install slurm-wlm munge" >&2
    exit 3
  }
done

mkdir -p "$dir"/state "$dir"/spool "$dir"/munge
chmod 0700 "$dir"/munge
host="$(hostname -s)"
cpus="$(nproc)"
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))

# munge: a fresh key, its own socket.
dd if=/dev/urandom of="$dir"/munge/munge.key bs=1 count=1024 status=none
chmod 0400 "$dir"/munge/munge.key
munged --force --key-file="$dir"/munge/munge.key \
  --socket="$dir"/munge/munge.socket --pid-file="$dir"/munged.pid \
  --log-file="$dir"/munge/munged.log --seed-file="$dir"/munge/munged.seed

cat > "$dir"/slurm.conf <<CONF
ClusterName=sweepqlocal
SlurmctldHost=$host
SlurmUser=root
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$dir"/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o %T 2>/dev/null | grep -qE "^idle"; then
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "local-cluster: the node did not become idle; logs in $dir" >&2
sinfo >&2 || true
exit 1
