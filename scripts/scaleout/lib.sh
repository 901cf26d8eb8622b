# Shared helpers for the scaleout test-infrastructure scripts (sourced, not run).
# shellcheck shell=bash

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}

# Seconds since the epoch with milliseconds, for timing.
now_s() { date +%s.%3N; }
elapsed_since() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }

# True if some TCP socket (any state, IPv4 or IPv6) uses local port $1.
# Read from /proc so that a fresh machine needs neither ss nor netstat.
port_in_use() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# True if TCP port $1 is in LISTEN state (st 0A) on any address.
port_listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" 'FNR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# pick_ports LOW HIGH COUNT: print the first of COUNT consecutive free ports,
# chosen at random in [LOW, HIGH]. Random rather than fixed so that several
# throwaway clusters (parallel CI jobs, a developer's own) can coexist; the
# ranges the callers pass stay below the kernel's ephemeral range (32768+) and
# away from Ceph's OSD range (6800-7300).
pick_ports() {
  local low=$1 high=$2 count=$3 try p i ok
  for try in $(seq 1 200); do
    p=$(( low + (RANDOM * 32768 + RANDOM) % (high - low - count + 2) ))
    ok=1
    for (( i = 0; i < count; i++ )); do
      if port_in_use $(( p + i )); then ok=0; break; fi
    done
    if [ "$ok" = 1 ]; then echo "$p"; return 0; fi
  done
  return 1
}

# True while process $1 exists and is not a zombie. On these machines PID 1
# reaps orphans only every ~2 s, so `kill -0` keeps succeeding on a dead
# daemon: look at the state field of /proc/PID/stat instead.
proc_running() {
  local stat state
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  state=${stat##*) }   # the comm field may contain spaces: cut after its ')'
  state=${state%% *}
  [ "$state" != Z ] && [ "$state" != X ]
}

# True if process $1's command line mentions $2 (our base dir): guards
# against killing an unrelated process that reused a recorded PID.
proc_mentions() {
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# Random lowercase hex string of $1 bytes (2*$1 characters).
random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# PIDs of the direct children of process $1 (from /proc: procps may be absent).
children_of() {
  local f stat rest
  for f in /proc/[0-9]*/stat; do
    stat=$(cat "$f" 2>/dev/null) || continue
    rest=${stat##*) }          # "STATE PPID ..." after the comm field
    rest=${rest#* }
    [ "${rest%% *}" = "$1" ] && { f=${f#/proc/}; echo "${f%/stat}"; }
  done
  return 0
}
