#!/usr/bin/env bash
# Make sure a Slurm cluster answers on this machine, installing and starting a one-host test cluster if needed.
#
# The cluster: Debian's slurm-wlm (slurmctld + slurmd) and munge, one slurmctld and SLURM_TEST_NODES slurmd
# "nodes" (n1, n2, ...) on this one host, each slurmd its own daemon on its own port (Slurm's multiple-slurmd
# setup: `slurmd -N nK`, every node's NodeHostname this host), so a `nodes: 2` cell is a real two-node
# allocation whose tasks Slurm starts, signals, times out and cancels node by node. No accounting daemon:
# jobs are read with `scontrol show job` while slurmctld remembers them (MinJobAge), and sacct answers
# nothing (the harness falls back to it only when scontrol has forgotten a job).
#
# Idempotent: does nothing when `sinfo` already answers with idle or allocated nodes. Otherwise installs
# what is missing, writes /etc/slurm/slurm.conf (never over one this script did not write), generates a
# munge key where none is, starts munged, slurmctld and each slurmd in sessions of their own so they
# outlive this script, and waits until every node is up. Exits non-zero with the logs' tails when they do
# not come up. `--stop` ends the daemons this script started.
set -euo pipefail

NODES=${SLURM_TEST_NODES:-2}
WAIT_S=${SLURM_CLUSTER_WAIT_S:-60}
CONF=/etc/slurm/slurm.conf
MARK="# written by comm-harness .ci/slurm-cluster.sh"
STATE=/var/lib/comm-harness-slurm
LOGS=/var/log/comm-harness-slurm
RUN=/run/comm-harness-slurm
FIRST_PORT=17001

if [ "${1:-}" = "--stop" ]; then
    for pidfile in "$RUN"/*.pid; do
        [ -e "$pidfile" ] || continue
        kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    echo "slurm-cluster: stopped"
    exit 0
fi

cluster_answers() {
    # Every node up (idle, mixed or allocated): a node still "down" or "unknown" takes no job yet.
    local states
    states=$(timeout 10 sinfo -h -N -o '%t' 2>/dev/null) || return 1
    [ -n "$states" ] && ! grep -qvE '^(idle|mix|alloc|comp)' <<<"$states"
}

if command -v sinfo >/dev/null 2>&1 && cluster_answers; then
    echo "slurm-cluster: a cluster already answers ($(sinfo -h -N -o '%N' | sort -u | tr '\n' ' '))"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "slurm-cluster: no Slurm cluster answers, and starting one needs root" >&2
    exit 1
fi

missing=()
command -v slurmctld >/dev/null 2>&1 || missing+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || missing+=(slurmd)
command -v sbatch >/dev/null 2>&1 || missing+=(slurm-client)
command -v munged >/dev/null 2>&1 || missing+=(munge)
if [ ${#missing[@]} -gt 0 ]; then
    echo "slurm-cluster: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "slurm-cluster: $CONF exists and was not written by this script; not touching a real cluster" >&2
    exit 1
fi

host=$(hostname -s)
cpus=$(nproc)
mkdir -p "$STATE" "$LOGS" "$RUN" /etc/slurm
nodes="n[1-$NODES]"
[ "$NODES" = 1 ] && nodes=n1
{
    echo "$MARK"
    cat <<EOF
ClusterName=commharness
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d-%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd-%n.log
# Processes of a step are found by their ancestry: portable across cgroup v1 and v2 hosts without systemd.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
# No accounting daemon: a finished job stays in scontrol for MinJobAge seconds; completions also go to a file.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOGS/jobcomp.log
MinJobAge=600
# Quick to end a cancelled or timed-out step (SIGTERM, then SIGKILL this many seconds later).
KillWait=5
SlurmdTimeout=30
NodeName=$nodes NodeHostname=$host Port=$FIRST_PORT-$((FIRST_PORT + NODES - 1)) CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
} >"$CONF"

if [ ! -s /etc/munge/munge.key ]; then
    echo "slurm-cluster: generating a munge key"
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
if ! pgrep -x munged >/dev/null 2>&1; then
    mkdir -p /run/munge && chown munge:munge /run/munge
    # munged daemonizes itself; as the munge user, as its package intends.
    runuser -u munge -- munged
fi

start_daemon() {  # NAME COMMAND...: in a session of its own (it must outlive this script), foreground mode
    local name=$1
    shift
    if [ -e "$RUN/$name.pid" ] && kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null; then
        return
    fi
    setsid "$@" </dev/null >>"$LOGS/$name.out" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

echo "slurm-cluster: starting slurmctld and $NODES slurmd node(s) on $host (logs: $LOGS)"
start_daemon slurmctld slurmctld -D -i
for k in $(seq "$NODES"); do
    start_daemon "slurmd-n$k" slurmd -D -N "n$k"
done

for _ in $(seq "$WAIT_S"); do
    if cluster_answers; then
        echo "slurm-cluster: cluster answers after ${SECONDS}s: $(sinfo -h -N -o '%N:%t' | tr '\n' ' ')"
        exit 0
    fi
    sleep 1
done

echo "slurm-cluster: no cluster answered within ${WAIT_S}s; sinfo: $(sinfo -N 2>&1 | tr '\n' ' ')" >&2
for log in "$LOGS"/slurmctld.log "$LOGS"/slurmd-n1.log; do
    echo "--- $log" >&2
    tail -n 20 "$log" >&2 || true
done
exit 1
