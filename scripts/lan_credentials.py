"""Database logins for the machines and people on the LAN (docs/LAN-ACCESS.md).

Each login is a PostgreSQL role with LOGIN, a random password stored as a SCRAM-SHA-256 verifier
(computed here: the password itself never reaches the server's log), and membership in exactly one
of the groups that migration 0004 creates:

    worker   asr_worker   a worker on a laptop or the master
    gateway  asr_gateway  a gateway that does not run the migrations (ASR_MIGRATE=false)
    reader   asr_reader   a person querying the views history / history_segments

    python scripts/lan_credentials.py create --role worker --name laptop-anna [--host 192.168.1.10]
    python scripts/lan_credentials.py list
    python scripts/lan_credentials.py rotate --name laptop-anna      # new password, new URL
    python scripts/lan_credentials.py revoke --name laptop-anna      # drops the login

`create` and `rotate` print the DATABASE_URL to give that machine; it is shown once and stored
nowhere. The commands connect with --admin-url, else $DATABASE_URL, else the embedded cluster's
owner URL in .data/db-url (`make run` starts that cluster); that role needs CREATEROLE and ADMIN on
the groups (the owner `lanasr` that created them has both; so does a superuser).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import socket
import sys
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {"worker": "asr_worker", "gateway": "asr_gateway", "reader": "asr_reader"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
COMMENT_PREFIX = "lanasr login: "


def admin_url(explicit: str | None = None) -> str:
    if explicit:
        return explicit
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    f = ROOT / ".data" / "db-url"
    if f.exists():
        return f.read_text().strip()
    raise SystemExit("lan-credentials: no database: pass --admin-url, set DATABASE_URL, or start `make run`")


def login_name(role: str, name: str) -> str:
    """`worker` + `laptop-anna` -> `worker_laptop_anna` (the PostgreSQL user name)."""
    name = name.strip().lower()
    if not NAME_RE.match(name):
        raise SystemExit(f"lan-credentials: --name must be 1-41 of a-z 0-9 _ - (got {name!r})")
    return f"{role}_{name.replace('-', '_')}"


def lan_address() -> str:
    """This machine's address on the LAN (the source address of its default route), or 127.0.0.1."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            addr = s.getsockname()[0]
            if addr and not addr.startswith("0."):
                return addr
    except OSError:
        pass
    return "127.0.0.1"


def login_url(admin: str, user: str, password: str, host: str | None) -> str:
    u = urlsplit(admin)
    hostname = host or u.hostname or "127.0.0.1"
    if ":" in hostname and not hostname.startswith("["):
        hostname = f"[{hostname}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{hostname}"
    if u.port:
        netloc += f":{u.port}"
    # Keep the database, drop the admin's query options except sslmode.
    query = "&".join(p for p in (u.query or "").split("&") if p.startswith("sslmode="))
    return urlunsplit((u.scheme or "postgresql", netloc, u.path or "/postgres", query, ""))


def _verifier(conn: psycopg.Connection, user: str, password: str) -> str:
    return conn.pgconn.encrypt_password(password.encode(), user.encode(), b"scram-sha-256").decode()


def _group_of(conn: psycopg.Connection, user: str) -> str | None:
    row = conn.execute(
        """
        SELECT g.rolname FROM pg_auth_members m
          JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
         WHERE u.rolname = %s AND g.rolname = ANY(%s)
        """,
        (user, list(GROUPS.values())),
    ).fetchone()
    return row[0] if row else None


def _exists(conn: psycopg.Connection, user: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (user,)).fetchone() is not None


def create(admin: str, role: str, name: str, host: str | None = None, *, replace: bool = False) -> str:
    """Create the login (or, with replace, give an existing one a new password); return its URL."""
    group = GROUPS[role]
    user = login_name(role, name)
    password = secrets.token_urlsafe(24)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not _exists(conn, group):
            raise SystemExit(f"lan-credentials: role {group} is missing: apply the migrations first "
                             "(`asr-gateway migrate`, or `make run`)")
        verifier = _verifier(conn, user, password)
        if _exists(conn, user):
            if not replace:
                raise SystemExit(f"lan-credentials: {user} exists: `rotate --name {name}` gives it a new "
                                 f"password, `revoke --name {name}` removes it")
            if _group_of(conn, user) != group:
                raise SystemExit(f"lan-credentials: {user} exists but is not a member of {group}")
            conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(verifier)))
        else:
            with conn.transaction():
                conn.execute(sql.SQL(
                    "CREATE ROLE {} WITH LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                    "NOBYPASSRLS PASSWORD {}").format(sql.Identifier(user), sql.Literal(verifier)))
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(user)))
                conn.execute(sql.SQL("COMMENT ON ROLE {} IS {}").format(
                    sql.Identifier(user), sql.Literal(f"{COMMENT_PREFIX}{role} {name}")))
    return login_url(admin, user, password, host)


def ensure(admin: str, role: str, name: str, url_file: Path, host: str | None = None) -> str:
    """The URL stored in url_file when it still logs in as a member of the group; else a new one
    (creating the login, or rotating its password), written to url_file with mode 0600."""
    if url_file.exists():
        url = url_file.read_text().strip()
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                if _group_of(conn, login_name(role, name)) == GROUPS[role] and \
                        conn.info.user == login_name(role, name):
                    return url
        except psycopg.Error:
            pass
    url = create(admin, role, name, host, replace=True)
    old = os.umask(0o077)
    try:
        tmp = url_file.with_suffix(".tmp")
        tmp.write_text(url + "\n")
        tmp.chmod(0o600)
        tmp.replace(url_file)
    finally:
        os.umask(old)
    return url


def find(conn: psycopg.Connection, name: str) -> tuple[str, str]:
    """(user, group) of the login made for `name`, whichever group it is in."""
    for role, group in GROUPS.items():
        user = login_name(role, name)
        if _exists(conn, user) and _group_of(conn, user) == group:
            return user, group
    raise SystemExit(f"lan-credentials: no login named {name!r} (see `list`)")


def rotate(admin: str, name: str, host: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        user, group = find(conn, name)
    role = next(r for r, g in GROUPS.items() if g == group)
    return create(admin, role, name, host, replace=True)


def revoke(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        user, _ = find(conn, name)
        ident = sql.Identifier(user)
        conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
        # Cut its open sessions (allowed to a superuser or a member of the login; best effort).
        try:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (user,))
        except psycopg.Error:
            pass
        conn.execute(sql.SQL("DROP ROLE {}").format(ident))
    return user


def list_logins(admin: str) -> list[tuple]:
    with psycopg.connect(admin, autocommit=True) as conn:
        return conn.execute(
            """
            SELECT u.rolname, g.rolname, u.rolcanlogin, coalesce(shobj_description(u.oid, 'pg_authid'), ''),
                   (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = u.rolname)
              FROM pg_auth_members m
              JOIN pg_roles g ON g.oid = m.roleid
              JOIN pg_roles u ON u.oid = m.member
             WHERE g.rolname = ANY(%s)
               AND NOT u.rolsuper AND NOT u.rolcreaterole  -- the administrators of the groups
             ORDER BY g.rolname, u.rolname
            """,
            (list(GROUPS.values()),),
        ).fetchall()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--admin-url", help="URL of a role with CREATEROLE (default: $DATABASE_URL, .data/db-url)")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("create", help="create a login and print its DATABASE_URL")
    c.add_argument("--role", choices=sorted(GROUPS), required=True)
    c.add_argument("--name", required=True, help="who or which machine: laptop-anna")
    c.add_argument("--host", help=f"address the login's machine reaches PostgreSQL at (default: {lan_address()})")
    r = sub.add_parser("rotate", help="give a login a new password and print its new DATABASE_URL")
    r.add_argument("--name", required=True)
    r.add_argument("--host")
    v = sub.add_parser("revoke", help="drop a login (its open sessions are cut)")
    v.add_argument("--name", required=True)
    sub.add_parser("list", help="list the logins of the three groups")
    a = p.parse_args(argv)
    admin = admin_url(a.admin_url)
    if a.command == "create":
        print(create(admin, a.role, a.name, a.host or lan_address()))
    elif a.command == "rotate":
        print(rotate(admin, a.name, a.host or lan_address()))
    elif a.command == "revoke":
        print(f"lan-credentials: dropped {revoke(admin, a.name)}", file=sys.stderr)
    elif a.command == "list":
        rows = list_logins(admin)
        print(f"{'login':32} {'group':12} {'can login':9} {'sessions':8} comment")
        for user, group, canlogin, comment, sessions in rows:
            print(f"{user:32} {group:12} {'yes' if canlogin else 'no':9} {sessions:<8} {comment}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
