#!/usr/bin/env bash
# Share the audio store over SMB, read-only, for the workers on the LAN's laptops (run on the master).
#
#   sudo ASR_SMB_PASSWORD='…' shared-storage/setup-master.sh /srv/lanasr/.data/audio
#
# What it does (idempotent; run it again to change the password or the path):
#   1. installs Samba (apt-get) when smbd is missing;
#   2. creates the dedicated system user ASR_SMB_USER (default lanasr-smb: no shell, no home) and
#      gives it the Samba password from ASR_SMB_PASSWORD (read from the environment, passed to
#      smbpasswd on stdin: it never appears on a command line or in this script's output);
#   3. writes the share [ASR_SMB_SHARE] (default asr: read-only, that user only, no guests) to
#      /etc/samba/lanasr.conf and includes it from /etc/samba/smb.conf, checks it with testparm;
#   4. puts the probe file .lanasr-probe at the top of the store (`asr-worker check` reads it);
#   5. restarts smbd and prints what to set on a laptop.
#
# Settings (environment): ASR_SMB_PASSWORD (required), ASR_SMB_USER, ASR_SMB_SHARE,
# ASR_SMB_HOSTS_ALLOW (e.g. "192.168.1.0/24"; default: every host, guarded by the password),
# ASR_MASTER_HOST (the address laptops use; default: this machine's address on its default route).
# For tests and dry runs: SAMBA_CONF (default /etc/samba/smb.conf; the share file goes beside it)
# and ASR_SMB_NO_RESTART=1 (do not restart smbd).
set -euo pipefail

usage() { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -eq 1 ] || usage
case "$1" in -h|--help) usage ;; esac

AUDIO_DIR=$(realpath -m -- "$1")
SMB_USER=${ASR_SMB_USER:-lanasr-smb}
SHARE=${ASR_SMB_SHARE:-asr}
SAMBA_CONF=${SAMBA_CONF:-/etc/samba/smb.conf}
SHARE_CONF=$(dirname "$SAMBA_CONF")/lanasr.conf

die() { echo "setup-master: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run it as root (sudo): it installs Samba, creates a system user and configures smbd"
[ -n "${ASR_SMB_PASSWORD:-}" ] || die "set ASR_SMB_PASSWORD to the password laptops will use (it is not printed)"
[ ${#ASR_SMB_PASSWORD} -ge 12 ] || die "ASR_SMB_PASSWORD is too short: use 12 characters or more"
[[ "$SMB_USER" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "ASR_SMB_USER must be a plain user name (got '$SMB_USER')"
[[ "$SHARE" =~ ^[A-Za-z0-9_-]{1,40}$ ]] || die "ASR_SMB_SHARE must be letters, digits, _ or - (got '$SHARE')"
[ -d "$AUDIO_DIR" ] || die "$AUDIO_DIR is not a directory: give the gateway's ASR_STORAGE_DIR (make run: <checkout>/.data/audio)"

# 1. Samba
if ! command -v smbd >/dev/null 2>&1 && [ ! -x /usr/sbin/smbd ]; then
  echo ">> installing Samba"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends samba >/dev/null
fi

# 2. The dedicated user (a system account: no login shell, no home directory)
if ! id -u "$SMB_USER" >/dev/null 2>&1; then
  echo ">> creating the system user $SMB_USER"
  useradd --system --no-create-home --shell /usr/sbin/nologin "$SMB_USER"
fi
if ! runuser -u "$SMB_USER" -- test -r "$AUDIO_DIR" -a -x "$AUDIO_DIR"; then
  die "$SMB_USER cannot read $AUDIO_DIR: let it traverse the path (chmod o+x on each parent, o+rx on the store)"
fi
# -s: the password comes from stdin (twice), never from the command line.
printf '%s\n%s\n' "$ASR_SMB_PASSWORD" "$ASR_SMB_PASSWORD" \
  | smbpasswd -c "$SAMBA_CONF" -s -a "$SMB_USER" >/dev/null
smbpasswd -c "$SAMBA_CONF" -e "$SMB_USER" >/dev/null
echo ">> Samba password of $SMB_USER set (from ASR_SMB_PASSWORD)"

# 3. The share
hosts_allow=""
[ -n "${ASR_SMB_HOSTS_ALLOW:-}" ] && hosts_allow="   hosts allow = 127.0.0.1 ${ASR_SMB_HOSTS_ALLOW}
   hosts deny = 0.0.0.0/0"
umask 022
cat > "$SHARE_CONF.tmp" <<EOF
# Written by lanasr's shared-storage/setup-master.sh: the audio store, read-only for the workers.
[$SHARE]
   comment = lanasr audio store (read-only for workers)
   path = $AUDIO_DIR
   read only = yes
   guest ok = no
   valid users = $SMB_USER
   browseable = no
   oplocks = no
   level2 oplocks = no
$hosts_allow
EOF
mv "$SHARE_CONF.tmp" "$SHARE_CONF"
if ! grep -qxF "include = $SHARE_CONF" "$SAMBA_CONF"; then
  # At the end of the file, where it starts its own section.
  printf '\n# lanasr audio store (shared-storage/setup-master.sh)\ninclude = %s\n' "$SHARE_CONF" >> "$SAMBA_CONF"
fi
if ! testparm -s "$SAMBA_CONF" >/dev/null 2>"$SHARE_CONF.testparm"; then
  cat "$SHARE_CONF.testparm" >&2; rm -f "$SHARE_CONF.testparm"
  die "testparm rejects $SAMBA_CONF"
fi
rm -f "$SHARE_CONF.testparm"
echo ">> share [$SHARE] -> $AUDIO_DIR written to $SHARE_CONF"

# 4. The probe object `asr-worker check` reads
if printf 'lanasr audio store\n' 2>/dev/null > "$AUDIO_DIR/.lanasr-probe"; then
  chmod 0644 "$AUDIO_DIR/.lanasr-probe"
else  # a read-only mount (compose's samba service): check reads the newest audio file instead
  echo ">> $AUDIO_DIR is read-only here: no probe file written (asr-worker check reads an audio file instead)"
fi

# 5. (Re)start smbd
if [ "${ASR_SMB_NO_RESTART:-}" = 1 ]; then
  echo ">> not restarting smbd (ASR_SMB_NO_RESTART=1)"
elif command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  systemctl enable --now smbd >/dev/null 2>&1 || true
  systemctl restart smbd
  echo ">> smbd restarted"
elif command -v service >/dev/null 2>&1; then
  service smbd restart
else
  echo ">> start smbd yourself (no systemd here): smbd -D -s $SAMBA_CONF"
fi

host=${ASR_MASTER_HOST:-$(ip -4 route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')}
host=${host:-master.lan}
cat <<EOF

On each laptop, in the worker's .env (mode 0600):

  ASR_STORAGE_URL=smb://$SMB_USER@$host/$SHARE
  ASR_SMB_PASSWORD=<the password you set; not shown here>

then check it:  asr-worker check     (storage: ok smb://$SMB_USER@$host/$SHARE (readable: ...))

Or mount the share instead (Linux; cifs-utils) and use a file:// URL:

  sudo mkdir -p /mnt/asr
  sudo mount -t cifs //$host/$SHARE /mnt/asr -o ro,username=$SMB_USER,credentials=/root/.lanasr-smb,vers=3.0
  #   /root/.lanasr-smb (mode 0600):  username=$SMB_USER  and  password=...
  ASR_STORAGE_URL=file:///mnt/asr

Firewall: allow TCP 445 from the LAN only.
EOF
