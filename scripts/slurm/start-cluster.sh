#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine, for tests and demos.
#
#   scripts/slurm/start-cluster.sh [STATE_DIR]      prints: export SLURM_CONF=STATE_DIR/slurm.conf
#   scripts/slurm/stop-cluster.sh STATE_DIR
#
# Everything lives under one folder (default: a new /tmp/deeplimit-slurm.XXXXXX): its own munge
# key and munged socket, slurm.conf, state, spool, logs and pid files. The controller and the
# node daemon listen on free loopback ports chosen here, so this cluster neither needs nor
# disturbs a system-wide munge or SLURM, and several can run side by side. Needs Debian's
# `slurm-wlm` and `munge` packages (apt-get install slurm-wlm munge) and root (munged, slurmd).
# Source STATE_DIR/env.sh (or export SLURM_CONF) before calling sbatch, squeue, or deeplimit.
set -euo pipefail

for tool in munged slurmctld slurmd sinfo sbatch; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "start-cluster: '$tool' not found; install it with: apt-get install slurm-wlm munge" >&2
        exit 3
    fi
done

state=${1:-$(mktemp -d /tmp/deeplimit-slurm.XXXXXX)}
mkdir -p "$state"
state=$(cd "$state" && pwd)
if [ -e "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then
    echo "start-cluster: a cluster already runs from $state (stop it with stop-cluster.sh)" >&2
    exit 1
fi
mkdir -p "$state/munge" "$state/spool" "$state/state" "$state/log"
chmod 700 "$state/munge"

# munge: a private key and a private socket
key="$state/munge/munge.key"
if [ ! -s "$key" ]; then
    dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
fi
chmod 400 "$key"
munge_socket="$state/munge/munge.socket"
munged --force --key-file="$key" --socket="$munge_socket" --pid-file="$state/munged.pid" \
    --log-file="$state/log/munged.log" --seed-file="$state/munge/munged.seed"

# two free TCP ports on loopback for slurmctld and slurmd
read -r ctld_port slurmd_port < <(python3 - <<'PY'
import socket
sockets = [socket.socket() for _ in range(2)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
PY
)

host=$(hostname -s)
cpus=$(nproc)
memory_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)
conf="$state/slurm.conf"
cat >"$conf" <<CONF
# written by deeplimit scripts/slurm/start-cluster.sh
ClusterName=deeplimit
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${ctld_port}
SlurmdPort=${slurmd_port}
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job may start again after 10 s (default 120 s)
AuthInfo=socket=${munge_socket},cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation=${state}/state
SlurmdSpoolDir=${state}/spool
SlurmctldPidFile=${state}/slurmctld.pid
SlurmdPidFile=${state}/slurmd.pid
SlurmctldLogFile=${state}/log/slurmctld.log
SlurmdLogFile=${state}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
KillWait=5
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${memory_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF

cat >"$state/env.sh" <<ENV
export SLURM_CONF=${conf}
ENV

export SLURM_CONF="$conf"
slurmctld -c -f "$conf"
slurmd -f "$conf"

# wait until the node takes jobs
for _ in $(seq 1 60); do
    node_state=$(sinfo --noheader --format=%T 2>/dev/null | head -n 1 || true)
    case "$node_state" in
        idle* | mixed* | allocated*)
            echo "export SLURM_CONF=${conf}"
            exit 0
            ;;
    esac
    sleep 0.5
done
echo "start-cluster: the node did not come up within 30 s (state '${node_state:-none}');" \
    "logs under $state/log" >&2
exit 1
