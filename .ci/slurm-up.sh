#!/usr/bin/env bash
# Start a single-node Slurm (munge + slurmctld + slurmd) on loopback for tests/test_slurm.py.
# Idempotent: installs slurm-wlm/munge if missing, (re)writes /etc/slurm/slurm.conf from the
# template, starts only the daemons that are not running, then waits for the node to be idle.
#
# Env overrides:
#   SLURM_TEMPLATE   template conf (default: <repo>/../shared/docs/slurm-single-node.conf)
#   SLURM_STATE_DIR  state/spool/log dir substituted for @STATE_DIR@ (default /var/lib/facesym-slurm)
#   SLURM_WAIT       seconds to wait for an idle node (default 60)
set -euo pipefail

die() { echo "slurm-up: ERROR: $*" >&2; exit 1; }
log() { echo "slurm-up: $*"; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
TEMPLATE="${SLURM_TEMPLATE:-$REPO/../shared/docs/slurm-single-node.conf}"
STATE_DIR="${SLURM_STATE_DIR:-/var/lib/facesym-slurm}"
WAIT="${SLURM_WAIT:-60}"
CONF=/etc/slurm/slurm.conf
export PATH="$PATH:/usr/sbin:/sbin"

[ "$(id -u)" -eq 0 ] || die "must run as root (starts munged/slurmctld/slurmd, writes $CONF)"
[ -f "$TEMPLATE" ] || die "Slurm config template not found: $TEMPLATE (set SLURM_TEMPLATE)"

# 1. packages
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "installing slurm-wlm munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt_log="$(mktemp)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } \
    >"$apt_log" 2>&1 || { tail -n 30 "$apt_log" >&2; die "apt-get install slurm-wlm munge failed"; }
  rm -f "$apt_log"
fi
for exe in slurmctld slurmd munged sinfo srun sbatch squeue; do
  command -v "$exe" >/dev/null 2>&1 || die "$exe not found after installation"
done
id munge >/dev/null 2>&1 || die "user 'munge' missing (munge package not installed correctly?)"

# 2. state dir + config
mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool" /etc/slurm
new_conf="$(sed "s|@STATE_DIR@|$STATE_DIR|g" "$TEMPLATE")"
if grep -q '@STATE_DIR@' <<<"$new_conf"; then die "placeholder left in $CONF"; fi
if [ ! -f "$CONF" ] || [ "$(cat "$CONF")" != "$new_conf" ]; then
  printf '%s\n' "$new_conf" >"$CONF"
  chmod 644 "$CONF"
  log "wrote $CONF (state dir $STATE_DIR)"
  conf_changed=1
else
  conf_changed=0
fi

# 3. munge
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  log "creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --force --keyfile=/etc/munge/munge.key >/dev/null
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chown munge:munge /etc/munge /etc/munge/munge.key /var/lib/munge /var/log/munge /run/munge
chmod 700 /etc/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
chmod 400 /etc/munge/munge.key

running() { pgrep -x "$1" >/dev/null 2>&1; }

if ! running munged; then
  log "starting munged"
  # a stale socket/pid from a killed munged blocks a new one
  rm -f /run/munge/munged.pid
  su -s /bin/sh munge -c "munged" || die "munged failed to start (see /var/log/munge/munged.log)"
fi
for _ in $(seq 1 50); do
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
  sleep 0.1
done
munge -n 2>/dev/null | unmunge >/dev/null 2>&1 \
  || die "munge round trip failed (see /var/log/munge/munged.log)"

# 4. slurm daemons
if [ "$conf_changed" = 1 ] && running slurmctld; then
  log "config changed: reconfiguring running daemons"
  scontrol reconfigure >/dev/null 2>&1 || true
fi
if ! running slurmctld; then
  log "starting slurmctld"
  slurmctld || die "slurmctld failed to start (see $STATE_DIR/slurmctld.log)"
fi
if ! running slurmd; then
  log "starting slurmd -N localhost"
  slurmd -N localhost || die "slurmd failed to start (see $STATE_DIR/slurmd.log)"
fi

# 5. wait for an idle node
state=""
deadline=$(( $(date +%s) + WAIT ))
while :; do
  state="$(sinfo -h -o %T 2>/dev/null | head -n1 || true)"
  case "$state" in
    idle*|mixed*|allocated*|completing*) break ;;
    down*|drain*|fail*)
      # a node down from an earlier run (e.g. unexpected reboot) is resumed
      scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    sinfo 2>&1 || true
    tail -n 20 "$STATE_DIR/slurmctld.log" "$STATE_DIR/slurmd.log" 2>/dev/null || true
    die "node not idle after ${WAIT}s (state: '${state:-no answer}')"
  fi
  sleep 0.5
done
log "node state: $state"
sinfo
