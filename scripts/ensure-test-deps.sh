#!/usr/bin/env bash
# Ensure the system dependencies of the test suite are present.
# Idempotent and fast when already satisfied. Today: Debian's Nix (nix-bin)
# with its Recommends (nix-setup-systemd writes /etc/nix/nix.conf with
# `sandbox = false` and creates the nixbld group/users that builds need).
set -euo pipefail

have_nix() {
  command -v nix-build >/dev/null 2>&1 \
    && command -v nix-store >/dev/null 2>&1 \
    && command -v nix >/dev/null 2>&1 \
    && [ -f /etc/nix/nix.conf ] \
    && getent group nixbld >/dev/null 2>&1
}

if have_nix; then
  echo "ensure-test-deps: nix already present ($(nix --version 2>/dev/null || echo '?'))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-test-deps: Nix is missing or incomplete and this is not root." >&2
  echo "  Install it with: sudo apt-get update && sudo apt-get install -y nix-bin" >&2
  echo "  (keep the Recommends: nix-setup-systemd provides /etc/nix/nix.conf and the nixbld users)" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-deps: Nix is missing and apt-get is not available; install Nix 2.8+ (Debian: nix-bin) by hand." >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Recommends are kept on purpose (nix-setup-systemd); stated explicitly in case
# the machine's apt config disables them.
if ! { apt-get update -q && apt-get install -y -q -o APT::Install-Recommends=true nix-bin; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-test-deps: installing nix-bin failed (output above)." >&2
  exit 1
fi
if ! have_nix; then
  echo "ensure-test-deps: installed nix-bin but Nix is still incomplete (missing nix-build, /etc/nix/nix.conf or the nixbld group)." >&2
  exit 1
fi
echo "ensure-test-deps: installed nix-bin ($(nix --version)) in $(( $(date +%s) - start ))s"
