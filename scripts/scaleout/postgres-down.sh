#!/usr/bin/env bash
# postgres-down.sh BASE_DIR — stop a cluster made by postgres-up.sh and delete
# BASE_DIR. Throwaway data, so an immediate shutdown (SIGQUIT: no checkpoint),
# with SIGKILL of the whole session as a fallback. Safe to run twice.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: postgres-down.sh BASE_DIR"
[ -d "$1" ] || exit 0
base=$(cd "$1" && pwd)
t0=$(now_s)
status=0

pid=
[ -f "$base/data/postmaster.pid" ] && pid=$(head -n 1 "$base/data/postmaster.pid")
[ -z "$pid" ] && [ -f "$base/postgres.pid" ] && pid=$(cat "$base/postgres.pid")
# Only the postmaster of this base (its command line has -D $base/data).
if [ -n "$pid" ] && proc_running "$pid" && proc_mentions "$pid" "$base/"; then
  kill -QUIT "$pid" 2>/dev/null
  # The postmaster exits after its children; PID 1 reaps it later (zombie).
  for _ in $(seq 1 500); do proc_running "$pid" || break; sleep 0.01; done
  if proc_running "$pid"; then
    echo "postgres-down: postmaster $pid ignored SIGQUIT; killing it and its children" >&2
    # Each backend runs in its own session, so a process-group kill misses them.
    kill -9 $(children_of "$pid") "$pid" 2>/dev/null
    for _ in $(seq 1 200); do proc_running "$pid" || break; sleep 0.01; done
    proc_running "$pid" && { echo "postgres-down: $pid still running" >&2; status=1; }
  fi
fi
rm -rf "$base" || status=1
echo "postgres-down: stopped and removed $base in $(elapsed_since "$t0") s"
exit $status
