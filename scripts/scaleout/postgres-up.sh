#!/usr/bin/env bash
# postgres-up.sh BASE_DIR — start a throwaway PostgreSQL cluster under
# BASE_DIR: trust auth, listening on 127.0.0.1 on a free port and on a unix
# socket in BASE_DIR/sock; writes BASE_DIR/postgres.env with
# NIX_CASTORE_TEST_PG_URL. Stop with postgres-down.sh BASE_DIR.
#
# Env: PG_FSYNC=off (default: a throwaway cluster needs no durability and
#      tests run much faster) | on (for honest benchmarks)
#      PG_BIN  directory with initdb/pg_ctl (default: newest Debian
#              /usr/lib/postgresql/*/bin)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: postgres-up.sh BASE_DIR"
fsync=${PG_FSYNC:-off}
case $fsync in on | off) ;; *) die "PG_FSYNC must be on or off (got '$fsync')" ;; esac
if [ -z "${PG_BIN:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
fi
[ -x "${PG_BIN:-}/initdb" ] || die "no PostgreSQL server found (apt-get install postgresql; see scripts/ensure-test-deps.sh)"
getent passwd postgres >/dev/null || die "no 'postgres' user (it comes with Debian's postgresql package)"

mkdir -p "$1"
base=$(cd "$1" && pwd)
[ ! -e "$base/data" ] || die "$base already holds a cluster"
t0=$(now_s)

# PostgreSQL refuses to run as root: initdb and the server run as the
# 'postgres' user, who must be able to reach and own BASE_DIR.
chown postgres:postgres "$base"
chmod 700 "$base"
runuser -u postgres -- test -x "$base" \
  || die "user postgres cannot reach $base (a parent directory is not searchable by others)"
# As root our cwd may be unreadable to postgres (e.g. /root), which initdb warns about.
cd "$base"
as_pg() { runuser -u postgres -- "$@"; }

ok=0
interrupted=0
on_exit() {
  [ "$ok" = 1 ] && return
  # Immediate shutdown of a server that did start; first, as printing may
  # fail (closed stderr, SIGPIPE).
  if [ -f "$base/data/postmaster.pid" ]; then
    kill -QUIT "$(head -n 1 "$base/data/postmaster.pid")" 2>/dev/null || true
  fi
  if [ "$interrupted" = 1 ]; then
    echo "postgres-up: interrupted; stopping what was started" >&2
  else
    echo "postgres-up: FAILED after $(elapsed_since "$t0") s; log tails:" >&2
    local f
    for f in "$base/initdb.log" "$base/postgres.log"; do
      [ -s "$f" ] || continue
      echo "----- $f" >&2
      tail -n 25 "$f" >&2
    done
  fi
}
trap on_exit EXIT
trap 'interrupted=1; exit 130' INT
trap 'interrupted=1; exit 143' TERM

# 23000-32000: below the ephemeral range and apart from ceph-up.sh's ports,
# so that the two can start in parallel without racing for one port.
port=$(pick_ports 23000 32000 1) || { echo "postgres-up: no free port" >&2; exit 1; }
mkdir -p "$base/sock"
chown postgres:postgres "$base/sock"

# --no-sync: a throwaway cluster; C locale: independent of the host's locales.
as_pg "$PG_BIN/initdb" -D "$base/data" -U postgres -A trust -E UTF8 --locale=C \
  --no-sync --no-instructions >"$base/initdb.log" 2>&1 \
  || { echo "postgres-up: initdb failed" >&2; exit 1; }

sync_off=$([ "$fsync" = off ] && echo off || echo on)
cat >>"$base/data/postgresql.conf" <<EOF

# --- postgres-up.sh (throwaway test cluster)
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base/sock'
fsync = $fsync
synchronous_commit = $sync_off
full_page_writes = $sync_off
# Tests open pools per store and per daemon.
max_connections = 300
EOF

# pg_ctl -w waits until the server accepts connections; it starts the
# postmaster in its own session, so a terminal's ^C does not reach it.
as_pg "$PG_BIN/pg_ctl" -D "$base/data" -l "$base/postgres.log" -w -t 60 start >/dev/null \
  || { echo "postgres-up: server did not start" >&2; exit 1; }
head -n 1 "$base/data/postmaster.pid" >"$base/postgres.pid"
"$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc 'select 1' >/dev/null \
  || { echo "postgres-up: the server does not answer queries on 127.0.0.1:$port" >&2; exit 1; }

echo "NIX_CASTORE_TEST_PG_URL=postgres://postgres@127.0.0.1:$port/postgres" >"$base/postgres.env"
ok=1
echo "postgres-up: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') (fsync=$fsync) at 127.0.0.1:$port in $(elapsed_since "$t0") s (base $base)"
