#!/usr/bin/env bash
# Stop a cluster started by start-cluster.sh: cancel its jobs, then stop slurmd, slurmctld and
# munged by their pid files (never by name: other clusters may run on this machine).
#
#   scripts/slurm/stop-cluster.sh STATE_DIR [--purge]    (--purge also deletes STATE_DIR)
set -uo pipefail

state=${1:?usage: stop-cluster.sh STATE_DIR [--purge]}
purge=${2:-}
if [ ! -d "$state" ]; then
    echo "stop-cluster: no such folder $state" >&2
    exit 1
fi
export SLURM_CONF="$state/slurm.conf"

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# cancel every job first, so that no job step outlives slurmd
if alive "$state/slurmctld.pid"; then
    scancel --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 40); do
        [ -z "$(squeue --noheader 2>/dev/null)" ] && break
        sleep 0.5
    done
fi

stop() {
    local pidfile=$1
    if alive "$pidfile"; then
        local pid
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 40); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.25
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}
stop "$state/slurmd.pid"
stop "$state/slurmctld.pid"
stop "$state/munged.pid"

if [ "$purge" = "--purge" ]; then
    rm -rf "$state"
fi
