#!/usr/bin/env bash
# Makes sure Samba's smbd (and pdbedit/smbpasswd, from the same package) is installed: the smb://
# storage tests (worker-py/tests/integration/test_smb_storage.py) and the multi-host test
# (tests/test_lan.py) start a private smbd of their own on a free port. Quiet and quick when it is
# there; installs with apt-get when running as root; otherwise says what to run and fails.
set -euo pipefail

PACKAGES=(samba)

smbd_path() {
  command -v smbd 2>/dev/null || { [ -x /usr/sbin/smbd ] && echo /usr/sbin/smbd; } || true
}

if [ -n "$(smbd_path)" ] && { command -v pdbedit >/dev/null 2>&1 || [ -x /usr/bin/pdbedit ]; }; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "The SMB storage tests need Samba (smbd). Install it with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
  exit 1
fi

echo ">> installing ${PACKAGES[*]} for the SMB storage tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d: do not start the system smbd/nmbd services on install (containers, CI); the
# tests run their own smbd with a private configuration.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
[ -n "$(smbd_path)" ] || { echo "samba installed but smbd is missing" >&2; exit 1; }
