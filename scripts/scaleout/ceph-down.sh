#!/usr/bin/env bash
# ceph-down.sh BASE_DIR — stop a cluster made by ceph-up.sh and delete BASE_DIR.
# The cluster is throwaway, so daemons get SIGKILL (a graceful stop can take
# 5-15 s); still in ceph.md's order — radosgw, then OSDs/mgr, then the mon —
# each group gone before the next. Safe to run twice or on a half-made base.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: ceph-down.sh BASE_DIR"
[ -d "$1" ] || exit 0
base=$(cd "$1" && pwd)
t0=$(now_s)

# kill_group GLOB: SIGKILL the daemons recorded as pids/GLOB.pid and wait
# until each is gone or a zombie (PID 1 reaps orphans only every ~2 s here;
# a zombie holds no memory, files or ports any more).
kill_group() {
  local f pid pids=() deadline
  for f in "$base"/pids/$1.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    # Only a process started for this base (its command line has -c $base/...).
    if proc_running "$pid" && proc_mentions "$pid" "$base/"; then
      kill -9 "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done
  deadline=$(( $(date +%s) + 10 ))
  for pid in "${pids[@]}"; do
    while proc_running "$pid"; do
      if [ "$(date +%s)" -ge "$deadline" ]; then
        echo "ceph-down: process $pid did not die after SIGKILL" >&2
        return 1
      fi
      sleep 0.01
    done
  done
}

status=0
kill_group 'rgw.*' || status=1
kill_group 'osd.*' || status=1
kill_group 'mgr.*' || status=1
kill_group 'mon.*' || status=1
# Sweep: a daemon whose PID was never recorded (bring-up interrupted between
# start and record) still has an argument "$base/ceph.conf" (its -c).
for f in $(grep -lxzF -- "$base/ceph.conf" /proc/[0-9]*/cmdline 2>/dev/null); do
  pid=${f#/proc/}; pid=${pid%/cmdline}
  if proc_running "$pid"; then
    echo "ceph-down: killing unrecorded process $pid" >&2
    kill -9 "$pid" 2>/dev/null
    for _ in $(seq 1 500); do proc_running "$pid" || break; sleep 0.01; done
  fi
done
rm -rf "$base" || status=1
echo "ceph-down: stopped and removed $base in $(elapsed_since "$t0") s"
exit $status
