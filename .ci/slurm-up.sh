#!/usr/bin/env bash
# Starts a single-node SLURM cluster on this machine for the test suite:
# munged, slurmctld and slurmd with a slurm.conf written for this host
# (`slurmd -C` gives its CPUs and memory). Installs Debian's slurm-wlm and
# munge when they are missing (needs root and apt). Everything the cluster
# writes lives under $VOXLAB_SLURM_DIR; clients find it through SLURM_CONF,
# so an existing /etc/slurm is left alone. Prints `export SLURM_CONF=...`
# for the caller to eval. .ci/slurm-down.sh stops it.
set -euo pipefail
DIR=${VOXLAB_SLURM_DIR:-/tmp/voxlab-slurm}
log() { echo "slurm-up: $*" >&2; }

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "slurm-wlm/munge missing and cannot be installed here (needs root and apt)"; exit 1
  fi
  log "installing slurm-wlm and munge"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq slurm-wlm munge >&2
fi

mkdir -p "$DIR"/{ctld,slurmd,log}
rm -f "$DIR"/*.pid
# munge: reuse a running daemon, else start one (as the munge user).
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  if [ ! -s /etc/munge/munge.key ]; then
    (command -v mungekey >/dev/null && mungekey --create --force) ||
      dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
    chown munge:munge /etc/munge/munge.key; chmod 600 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged --force
  # Started here, so slurm-down.sh stops it again.
  cp /run/munge/munged.pid "$DIR/munged.pid" 2>/dev/null || pgrep -n -x munged > "$DIR/munged.pid" || true
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

HOST=$(hostname -s)
NODE=$(slurmd -C | head -n 1 | sed "s/^NodeName=[^ ]*/NodeName=$HOST/")
cat > "$DIR/slurm.conf" <<CONF
# Written by .ci/slurm-up.sh for a one-node test cluster.
ClusterName=voxlab-ci
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/slurmd
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=${VOXLAB_SLURMCTLD_PORT:-6817}
SlurmdPort=${VOXLAB_SLURMD_PORT:-6818}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
MessageTimeout=30
SlurmdTimeout=120
InactiveLimit=0
KillWait=5
MinJobAge=300
$NODE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$DIR/slurm.conf
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 100); do
  if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
    log "cluster up ($HOST: $(sinfo -h -o '%c CPUs, %m MB'))"
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
log "the node did not become idle; logs in $DIR/log"
sinfo >&2 || true
tail -n 20 "$DIR"/log/*.log >&2 || true
exit 1
