#!/usr/bin/env bash
# ceph-up.sh BASE_DIR — bootstrap a throwaway single-node Ceph cluster
# (one mon, one OSD, radosgw; no mgr: RGW does not need one and it costs
# ~300 MiB) entirely under BASE_DIR, on free loopback ports, and write
# BASE_DIR/ceph.env with the S3 endpoint and a fresh user's keys.
#
# Env: CEPH_OBJECTSTORE=memstore (default) | filestore | bluestore
#      CEPH_MEMSTORE_BYTES  memstore capacity (default 16 GiB; RAM is only
#                           used for what is stored, about 2x its size)
#      CEPH_UP_TIMEOUT      seconds for each step to come up (default 60)
# Stop with ceph-down.sh BASE_DIR. See shared/spec/ceph.md for the why of
# most settings below.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: ceph-up.sh BASE_DIR"
objectstore=${CEPH_OBJECTSTORE:-memstore}
case $objectstore in
  memstore | filestore | bluestore) ;;
  # Ceph silently turns an unknown objectstore name into bluestore.
  *) die "CEPH_OBJECTSTORE must be memstore, filestore or bluestore (got '$objectstore')" ;;
esac
memstore_bytes=${CEPH_MEMSTORE_BYTES:-$(( 16 << 30 ))}
timeout_s=${CEPH_UP_TIMEOUT:-60}
for cmd in ceph ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin; do
  command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install ceph-mon ceph-osd radosgw ceph-common; see scripts/ensure-test-deps.sh)"
done

mkdir -p "$1"
base=$(cd "$1" && pwd)
[ ! -e "$base/ceph.conf" ] || die "$base already holds a cluster"
# Admin sockets are unix sockets (path limit 107 bytes): keep the base short.
[ ${#base} -le 70 ] || die "BASE_DIR path too long for Ceph's admin sockets (${#base} > 70 chars): $base"

t0=$(now_s)
mkdir -p "$base"/{run,log,crash,keys,pids,mon,osd,rgw}

# Until the end, any failure prints the log tails and kills what we started,
# so that a failed bring-up leaves no daemons behind (the logs stay).
ok=0
interrupted=0
relevant=
on_exit() {
  [ "$ok" = 1 ] && return
  # Kill first: printing may fail (closed stderr, SIGPIPE).
  local p
  for p in "$base"/pids/*.pid; do
    [ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true
  done
  if [ "$interrupted" = 1 ]; then
    echo "ceph-up: interrupted; stopping what was started" >&2
  else
    echo "ceph-up: FAILED after $(elapsed_since "$t0") s; log tails from $base/log:" >&2
    local f logs=("$base"/log/*)
    # The daemon we were waiting for (and mkfs output) if known, else all logs.
    [ -n "$relevant" ] && logs=("$base"/log/mkfs.out "$base"/log/*"$relevant"* "$base"/log/s3-probe.out)
    for f in "${logs[@]}"; do
      [ -s "$f" ] || continue
      echo "----- $f" >&2
      tail -n 25 "$f" >&2
    done
  fi
}
trap on_exit EXIT
trap 'interrupted=1; exit 130' INT
trap 'interrupted=1; exit 143' TERM

fail() { echo "ceph-up: $*" >&2; exit 1; }

# --- ports: mon v2 + v1 (two consecutive), radosgw. 10000-22999 is below the
# ephemeral range and away from the OSD's 6800-7300 and postgres-up's range.
mon_port=$(pick_ports 10000 22999 2) || fail "no free port pair for the mon"
for _ in 1 2 3 4 5; do
  rgw_port=$(pick_ports 10000 22999 1) || fail "no free port for radosgw"
  [ "$rgw_port" -ne "$mon_port" ] && [ "$rgw_port" -ne $(( mon_port + 1 )) ] && break
done

fsid=$(cat /proc/sys/kernel/random/uuid)
conf=$base/ceph.conf
# Every command below reads this file; CEPH_CONF also covers librados users.
export CEPH_CONF=$conf

# Every path default of Ceph points into /var/lib/ceph, /var/run/ceph or
# /var/log/ceph: all of them are redirected under $base.
cat >"$conf" <<EOF
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$mon_port,v1:127.0.0.1:$(( mon_port + 1 ))]
public network = 127.0.0.0/8
public addr = 127.0.0.1
cluster addr = 127.0.0.1
run dir = $base/run
crash dir = $base/crash
log file = $base/log/\$name.log
mon cluster log file = $base/log/cluster.log
log to syslog = false
err to syslog = false
clog to syslog = false
auth allow insecure global id reclaim = false
# One OSD: size 1 is required (RGW otherwise never listens, silently); RGW
# makes 7+ pools, so keep PG counts small and autoscaling off.
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
# The host disk may be fairly full; the mon must not refuse to start.
mon data avail warn = 1
mon data avail crit = 0
mon warn on pool no redundancy = false
mon allow pool delete = true
osd objectstore = $objectstore

[mon]
mon data = $base/mon/\$cluster-\$id
keyring = \$mon_data/keyring
pid file = $base/run/\$name.pid
# Each RGW pool creation costs ~2 s at the default interval.
paxos propose interval = 0.05

[osd]
osd data = $base/osd/\$cluster-\$id
keyring = \$osd_data/keyring
pid file = $base/run/\$name.pid
# filestore's journal does not follow osd data.
osd journal = \$osd_data/journal
osd journal size = 512
# memstore allocates lazily: this is a ceiling, not a reservation.
memstore device bytes = $memstore_bytes
# filestore on ext4: xattrs cannot hold Ceph's default 2048-byte names.
osd max object name len = 256
osd max object namespace len = 64
# bluestore: a sparse file of this size (default would be 100 GiB).
bluestore block size = $(( 32 << 30 ))

# Not in [global]: there it would override the daemons' own keyrings.
[client]
keyring = $base/keys/\$name.keyring

[client.rgw.a]
rgw data = $base/rgw/\$cluster-\$id
pid file = $base/run/\$name.pid
rgw frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
# Free deleted data after ~30 s instead of 2 h.
rgw gc obj min wait = 30
rgw gc processor period = 30
EOF

# start_daemon NAME CMD...: foreground daemon (-f; not -d) in its own session,
# so a terminal's ^C does not hit it and we stop it in order ourselves.
# Without job control setsid does not fork, so $! is the daemon itself. The
# explicit -c puts $base into the command line, which ceph-down.sh checks
# before killing a recorded PID.
start_daemon() {
  local name=$1; shift
  setsid "$@" </dev/null >>"$base/log/$name.out" 2>&1 &
  echo $! >"$base/pids/$name.pid"
  disown $!   # no "Killed" job report if on_exit has to kill it
}

# wait_until WHAT NAME CMD...: retry CMD until it succeeds; fail if daemon
# NAME died or the timeout passed.
wait_until() {
  local what=$1 name=$2; shift 2
  local deadline=$(( $(date +%s) + timeout_s )) pid
  pid=$(cat "$base/pids/$name.pid")
  relevant=$name
  until "$@" >/dev/null 2>&1; do
    proc_running "$pid" || fail "$name exited while waiting for $what"
    [ "$(date +%s)" -lt "$deadline" ] || fail "timed out after ${timeout_s}s waiting for $what"
    sleep 0.1
  done
  relevant=
}

# ceph CLI with a bound on how long it may hang on an unreachable mon.
cephq() { timeout 20 ceph --connect-timeout 10 "$@"; }

# --- keys: mon. and client.admin (imported into the mon keyring)
ceph-authtool --create-keyring "$base/keys/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring "$base/keys/client.admin.keyring" --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool "$base/keys/mon.keyring" --import-keyring "$base/keys/client.admin.keyring" >/dev/null

# --- mon
monmaptool --create --fsid "$fsid" \
  --addv a "[v2:127.0.0.1:$mon_port,v1:127.0.0.1:$(( mon_port + 1 ))]" "$base/keys/monmap" >/dev/null
ceph-mon --mkfs -i a --monmap "$base/keys/monmap" --keyring "$base/keys/mon.keyring" >>"$base/log/mkfs.out" 2>&1 \
  || fail "ceph-mon --mkfs failed"
start_daemon mon.a ceph-mon -c "$conf" -i a -f
wait_until "the mon to answer" mon.a cephq mon stat
t_mon=$(elapsed_since "$t0")

# --- OSD: register it, then its keyring must exist before --mkfs.
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
osd_secret=$(ceph-authtool --gen-print-key)
osd_id=$(echo "{\"cephx_secret\": \"$osd_secret\"}" | cephq osd new "$osd_uuid" -i -)
osd_dir=$base/osd/ceph-$osd_id
mkdir -p "$osd_dir"
ceph-authtool --create-keyring "$osd_dir/keyring" --name "osd.$osd_id" --add-key "$osd_secret" >/dev/null
ceph-osd -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" >>"$base/log/mkfs.out" 2>&1 \
  || fail "ceph-osd --mkfs ($objectstore) failed"
start_daemon "osd.$osd_id" ceph-osd -c "$conf" -i "$osd_id" -f
osd_up() { cephq osd stat -f json | grep -Eq '"num_up_osds": ?1[,}]'; }
wait_until "osd.$osd_id to be up" "osd.$osd_id" osd_up
t_osd=$(elapsed_since "$t0")

# --- radosgw: it only listens after creating its pools.
mkdir -p "$base/rgw/ceph-rgw.a"
cephq auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' mgr 'allow rw' \
  -o "$base/keys/client.rgw.a.keyring" >/dev/null
start_daemon rgw.a radosgw -c "$conf" -n client.rgw.a -f
wait_until "radosgw to listen on 127.0.0.1:$rgw_port" rgw.a port_listening "$rgw_port"

# --- S3 user: only now (earlier, radosgw-admin races RGW's own zone setup).
access_key=$(random_hex 10 | tr a-f A-F)
secret_key=$(random_hex 20)
timeout 60 radosgw-admin user create --uid=castore-test --display-name="nix-castore tests" \
  --access-key="$access_key" --secret-key="$secret_key" >>"$base/log/radosgw-admin.out" 2>&1 \
  || fail "radosgw-admin user create failed"

# --- wait until signed S3 requests work end to end: this also creates the
# bucket index and data pools, which tests would otherwise pay for.
endpoint=http://127.0.0.1:$rgw_port
probe_log=$base/log/s3-probe.out
s3_probe() { /usr/bin/python3 "$here/s3-probe.py" "$endpoint" "$access_key" "$secret_key" >>"$probe_log" 2>&1; }
wait_until "an S3 PUT/GET round trip on $endpoint" rgw.a s3_probe

cat >"$base/ceph.env" <<EOF
NIX_CASTORE_TEST_S3_ENDPOINT=$endpoint
AWS_ACCESS_KEY_ID=$access_key
AWS_SECRET_ACCESS_KEY=$secret_key
AWS_REGION=us-east-1
NIX_CASTORE_TEST_CEPH_CONF=$conf
EOF
ok=1
echo "ceph-up: $objectstore cluster at $endpoint in $(elapsed_since "$t0") s (mon ${t_mon} s, osd ${t_osd} s; base $base)"
