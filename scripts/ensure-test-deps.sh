#!/usr/bin/env bash
# Ensure the system dependencies of the test suite are present.
# Idempotent and fast when already satisfied (no apt at all then); otherwise
# one `apt-get update` and installs of only what is missing:
# * Debian's Nix (nix-bin) with its Recommends (nix-setup-systemd writes
#   /etc/nix/nix.conf with `sandbox = false` and creates the nixbld
#   group/users that builds need);
# * Prometheus (prometheus, promtool) for the metrics tests, without
#   Recommends;
# * Ceph (mon, osd, radosgw, CLI tools; no mgr, radosgw does without) and
#   PostgreSQL for the scale-out backend's tests (scripts/scaleout/), without
#   Recommends, which for Ceph are many and unneeded.
set -euo pipefail

have_nix() {
  command -v nix-build >/dev/null 2>&1 \
    && command -v nix-store >/dev/null 2>&1 \
    && command -v nix >/dev/null 2>&1 \
    && [ -f /etc/nix/nix.conf ] \
    && getent group nixbld >/dev/null 2>&1
}

have_ceph() {
  local c
  for c in ceph ceph-authtool monmaptool ceph-mon ceph-osd radosgw radosgw-admin; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
}

have_postgres() {
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    && compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null \
    && getent passwd postgres >/dev/null 2>&1
}

have_prometheus() {
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

missing=()
have_nix || missing+=(nix)
have_ceph || missing+=(ceph)
have_postgres || missing+=(postgresql)
have_prometheus || missing+=(prometheus)

if [ ${#missing[@]} -eq 0 ]; then
  echo "ensure-test-deps: nix ($(nix --version 2>/dev/null || echo '?')), ceph, postgresql and prometheus already present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-deps: missing: ${missing[*]}, and this is not root with apt-get. On Debian:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y nix-bin" >&2
  echo "    (keep the Recommends: nix-setup-systemd provides /etc/nix/nix.conf and the nixbld users)" >&2
  echo "  sudo apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw ceph-common postgresql prometheus" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
run() {
  if ! "$@" >>"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-test-deps: '$*' failed (output above)." >&2
    exit 1
  fi
}

run apt-get update -q
for m in "${missing[@]}"; do
  case $m in
    # Recommends are kept on purpose (nix-setup-systemd); stated explicitly in
    # case the machine's apt config disables them.
    nix) run apt-get install -y -q -o APT::Install-Recommends=true nix-bin ;;
    # Nothing starts at install (no init system here); the tests run their own
    # throwaway clusters. ceph-mgr is not needed by radosgw.
    ceph) run apt-get install -y -q --no-install-recommends ceph-mon ceph-osd radosgw ceph-common ;;
    postgresql) run apt-get install -y -q --no-install-recommends postgresql ;;
    # The package's service is not started (no init system here); the tests
    # run their own prometheus on a free port.
    prometheus) run apt-get install -y -q --no-install-recommends prometheus ;;
  esac
done

have_nix || { echo "ensure-test-deps: installed nix-bin but Nix is still incomplete (missing nix-build, /etc/nix/nix.conf or the nixbld group)." >&2; exit 1; }
have_ceph || { echo "ensure-test-deps: installed Ceph but a command is still missing." >&2; exit 1; }
have_postgres || { echo "ensure-test-deps: installed postgresql but initdb/pg_ctl or the postgres user are missing." >&2; exit 1; }
have_prometheus || { echo "ensure-test-deps: installed prometheus but prometheus or promtool is missing." >&2; exit 1; }
echo "ensure-test-deps: installed ${missing[*]} in $(( $(date +%s) - start ))s"
