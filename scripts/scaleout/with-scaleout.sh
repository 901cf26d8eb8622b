#!/usr/bin/env bash
# with-scaleout.sh CMD... — run CMD against a throwaway Ceph (radosgw S3) and
# PostgreSQL started for it in a fresh temp dir, with their settings exported
# (NIX_CASTORE_TEST_S3_ENDPOINT, NIX_CASTORE_TEST_PG_URL, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION). Both are always stopped afterwards, also
# on SIGINT/SIGTERM. Exits with CMD's status.
# If NIX_CASTORE_TEST_S3_ENDPOINT and NIX_CASTORE_TEST_PG_URL are already set,
# just runs CMD against those.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -ge 1 ] || die "usage: with-scaleout.sh CMD [ARGS...]"
if [ -n "${NIX_CASTORE_TEST_S3_ENDPOINT:-}" ] && [ -n "${NIX_CASTORE_TEST_PG_URL:-}" ]; then
  exec "$@"
fi

root=$(mktemp -d "${TMPDIR:-/tmp}/scaleout.XXXXXX")
# postgres-up.sh runs the server as user postgres, who must pass through here.
chmod 711 "$root"

up_pids=()
cmd_pid=
cleaned=0
cleanup() {
  [ "$cleaned" = 1 ] && return
  cleaned=1
  # Ceph and PostgreSQL are independent: stop both at once.
  bash "$here/ceph-down.sh" "$root/ceph" >/dev/null &
  local c=$!
  bash "$here/postgres-down.sh" "$root/pg" >/dev/null
  wait "$c"
  rm -rf "$root"
}
on_signal() {
  local sig=$1 code=$2
  trap - INT TERM
  echo "with-scaleout: got SIG$sig; stopping" >&2
  # Background jobs of a script ignore SIGINT, so forward TERM in both cases.
  [ -n "$cmd_pid" ] && kill -TERM "$cmd_pid" 2>/dev/null && wait "$cmd_pid"
  for p in "${up_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${up_pids[@]}"; do wait "$p" 2>/dev/null; done
  cleanup
  exit "$code"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

# Ceph takes ~2.5 s and PostgreSQL ~1 s; they use disjoint port ranges and
# directories, so they can start in parallel.
t0=$(now_s)
bash "$here/ceph-up.sh" "$root/ceph" >&2 &
up_pids+=($!)
bash "$here/postgres-up.sh" "$root/pg" >&2 &
up_pids+=($!)
failed=0
for p in "${up_pids[@]}"; do wait "$p" || failed=1; done
up_pids=()
if [ "$failed" = 1 ]; then
  echo "with-scaleout: bringing up the test services failed (see above)" >&2
  exit 1
fi
echo "with-scaleout: Ceph + PostgreSQL up in $(elapsed_since "$t0") s" >&2

set -a
. "$root/ceph/ceph.env"
. "$root/pg/postgres.env"
set +a

# In the background so that a signal to us is handled at once rather than
# after CMD ends; with our stdin passed on explicitly (a background job would
# get /dev/null), unless we have none (CI may close it).
if [ -e /proc/self/fd/0 ]; then
  "$@" <&0 &
else
  "$@" </dev/null &
fi
cmd_pid=$!
wait "$cmd_pid"
status=$?
cmd_pid=
exit "$status"
