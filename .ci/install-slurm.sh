#!/usr/bin/env bash
# Install what the tests need to run a single-node SLURM cluster (Debian's
# slurm-wlm daemons and clients, munge) and to lint generated batch scripts
# (the shellcheck package). See tests/slurm_cluster.py. Idempotent; run as root.
set -euo pipefail
# The daemons live in /usr/sbin, which a non-root PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

need=(slurmctld slurmd sbatch munged mungekey shellcheck)
missing=()
for cmd in "${need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-slurm: slurm, munge and shellcheck already installed; nothing to do"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-slurm: missing ${missing[*]} and not root; cannot apt-get install" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# On a systemd host the packages may start their own services from /etc;
# the tests run separate daemons (own dir, key, socket and free ports), so
# those neither help nor clash. apt's errors still reach stderr.
apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge shellcheck >/dev/null
echo "install-slurm: installed slurmctld slurmd slurm-client munge shellcheck (were missing: ${missing[*]})"
