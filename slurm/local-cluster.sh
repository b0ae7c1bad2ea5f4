#!/usr/bin/env bash
# A single-node SLURM cluster on localhost, for the test suite (and for trying `--cluster slurm`).
#
#   slurm/local-cluster.sh install   apt-get the Debian packages (slurmctld slurmd slurm-client munge)
#   slurm/local-cluster.sh start     start munged, slurmctld and slurmd (empty queue); wait until idle
#   slurm/local-cluster.sh stop      stop them by their pid files
#   slurm/local-cluster.sh status    sinfo, or say that it is not running
#   slurm/local-cluster.sh env       print the line that points SLURM clients at this cluster
#
# Needs root. Everything lives under $SWEEP_SLURM_DIR (default /tmp/sweep-slurm): slurm.conf,
# spool, pid files and logs. Clients find it through SLURM_CONF=$SWEEP_SLURM_DIR/slurm.conf
# (tests/conftest.py sets it when that file exists). No cgroups: proctrack/linuxproc, task/none.
# The node declares this machine's CPU count and 90 % of its memory, partition `debug`.
# `start` is idempotent: when the cluster already answers it says so and returns 0.
set -euo pipefail

DIR="${SWEEP_SLURM_DIR:-/tmp/sweep-slurm}"
CONF="$DIR/slurm.conf"
NODE=localhost
MUNGE_RUN=/run/munge
MUNGE_PID="$MUNGE_RUN/munged.pid"
export SLURM_CONF="$CONF"

die() {
    echo "local-cluster: $*" >&2
    echo "local-cluster: logs: $DIR/log/ (slurmctld.log, slurmd.log, munged.log)" >&2
    for f in "$DIR"/log/*.log; do
        [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }
    done
    exit 1
}

alive() { # pidfile -> 0 when its process runs
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

answers() { sinfo -h -o '%T' 2>/dev/null | grep -q .; }

node_state() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n 1; }

install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
        && command -v sbatch >/dev/null && command -v munged >/dev/null; then
        echo "local-cluster: SLURM and munge already installed"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "install needs root"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge \
        >/dev/null
}

write_conf() {
    local cpus mem_mib
    cpus=$(nproc)
    mem_mib=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    mkdir -p "$DIR/spool/ctld" "$DIR/spool/d" "$DIR/run" "$DIR/log"
    cat >"$CONF" <<CONF
# written by slurm/local-cluster.sh; a one-node test cluster on localhost
ClusterName=sweeptest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/spool/ctld
SlurmdSpoolDir=$DIR/spool/d
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
KillWait=5
MinJobAge=600
SlurmdTimeout=60
InactiveLimit=0
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF
}

start_munge() {
    if alive "$MUNGE_PID"; then return; fi
    mkdir -p "$MUNGE_RUN" /var/lib/munge /var/log/munge
    chown munge:munge "$MUNGE_RUN" /var/lib/munge /var/log/munge
    chmod 0755 "$MUNGE_RUN"
    if [ ! -s /etc/munge/munge.key ]; then
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    runuser -u munge -- munged --pid-file="$MUNGE_PID" --log-file="/var/log/munge/munged.log" \
        || die "munged did not start (log: /var/log/munge/munged.log)"
    ln -sf /var/log/munge/munged.log "$DIR/log/munged.log"
}

start() {
    [ "$(id -u)" -eq 0 ] || die "start needs root"
    command -v slurmctld >/dev/null || die "SLURM is not installed; run: $0 install"
    mkdir -p "$DIR/log"
    if alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid" && answers; then
        echo "local-cluster: already running (SLURM_CONF=$CONF)"
        return
    fi
    write_conf
    start_munge
    # -c: start from an empty queue. This is a throwaway test cluster; recovering saved job state
    # would bring back jobs of an earlier session (a stop can land before a cancel is saved).
    alive "$DIR/run/slurmctld.pid" || slurmctld -c -f "$CONF" || die "slurmctld did not start"
    alive "$DIR/run/slurmd.pid" || slurmd -c -f "$CONF" -N "$NODE" || die "slurmd did not start"
    local state=""
    for _ in $(seq 1 120); do
        state=$(node_state || true)
        case "$state" in
            idle | mixed | allocated) break ;;
            down* | drain*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    case "$state" in
        idle | mixed | allocated) ;;
        *) die "node '$NODE' is '${state:-unreachable}' after 60 s" ;;
    esac
    echo "local-cluster: up, node $NODE $state (SLURM_CONF=$CONF)"
}

stop() {
    local f pid
    for f in "$DIR/run/slurmd.pid" "$DIR/run/slurmctld.pid" "$MUNGE_PID"; do
        if alive "$f"; then
            pid=$(cat "$f")
            kill "$pid"
            for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
            echo "local-cluster: stopped $(basename "$f" .pid) (pid $pid)"
        fi
        rm -f "$f"
    done
}

status() {
    if answers; then sinfo; else echo "local-cluster: not running (SLURM_CONF=$CONF)"; return 1; fi
}

case "${1:-}" in
    install) install ;;
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 install|start|stop|status|env" >&2; exit 2 ;;
esac
