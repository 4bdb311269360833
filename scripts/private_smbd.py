"""A private Samba server (smbd) exporting one directory read-only, for tests and trials.

The smb:// storage tests (worker-py/tests/integration/test_smb_storage.py) and the multi-host test
(tests/test_lan.py) start one of these: a real smbd with its own configuration, passdb, lock, state
and pid directories under a temporary directory, on a port of its own, bound to the given addresses
only. It never touches the machine's /etc/samba or a system smbd. Needs root (smbd switches to
the share user to read files) and Samba installed (`scripts/ensure-samba.sh`).

    ASR_SMB_PASSWORD=... python scripts/private_smbd.py --dir /srv/audio --port 4450
    # prints the ASR_STORAGE_URL to use and serves until Ctrl-C

The share `asr` is read-only, open to one Samba user (a system account without a shell or home,
created if missing), guests refused; files are opened by that user, so the directory must be
readable by it (the gateway writes 0644 files in 0755 directories).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARE = "asr"


def smbd_binary() -> str | None:
    return shutil.which("smbd") or (("/usr/sbin/smbd") if os.access("/usr/sbin/smbd", os.X_OK) else None)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_unix_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
        )


def config_text(*, share_dir: Path, work: Path, port: int, addresses: list[str], user: str) -> str:
    return f"""# private smbd for lanasr tests: nothing here touches /etc/samba or a system smbd
[global]
   server role = standalone server
   workgroup = WORKGROUP
   netbios name = LANASRTEST
   security = user
   map to guest = never
   restrict anonymous = 2
   server min protocol = SMB2_10
   smb ports = {port}
   interfaces = {" ".join(addresses)}
   bind interfaces only = yes
   disable netbios = yes
   passdb backend = tdbsam:{work}/private/passdb.tdb
   private dir = {work}/private
   lock directory = {work}/lock
   state directory = {work}/state
   cache directory = {work}/cache
   pid directory = {work}/pid
   ncalrpc dir = {work}/ncalrpc
   binddns dir = {work}/bind-dns
   log file = {work}/log.%m
   max log size = 1000
   load printers = no
   printing = bsd
   printcap name = /dev/null
   disable spoolss = yes
   usershare path =
   rpc_server:spoolss = disabled
   rpc_daemon:spoolssd = disabled

[{SHARE}]
   path = {share_dir}
   read only = yes
   guest ok = no
   browseable = no
   valid users = {user}
"""


class PrivateSmbd:
    """One smbd process: ``start()``, ``url(host)``, ``stop()`` (also a context manager)."""

    def __init__(
        self,
        share_dir: Path,
        *,
        user: str,
        password: str,
        port: int | None = None,
        addresses: tuple[str, ...] = ("127.0.0.1",),
        log_path: Path | None = None,
    ):
        self.share_dir = Path(share_dir).resolve()
        self.user = user
        self.password = password
        self.addresses = list(addresses)
        self.port = port or free_port()
        self.work = Path(tempfile.mkdtemp(prefix="lanasr-smbd-"))
        self.conf = self.work / "smb.conf"
        self.log_path = log_path or (self.work / "smbd.out")
        self.proc: subprocess.Popen | None = None

    def url(self, host: str | None = None) -> str:
        return f"smb://{self.user}@{host or self.addresses[0]}:{self.port}/{SHARE}"

    def start(self, timeout: float = 30) -> PrivateSmbd:
        smbd = smbd_binary()
        if not smbd:
            raise RuntimeError("smbd is not installed: run scripts/ensure-samba.sh (make samba)")
        if os.geteuid() != 0:
            raise RuntimeError("a private smbd needs root (it switches to the share user to read files)")
        ensure_unix_user(self.user)
        for sub in ("private", "lock", "state", "cache", "pid", "ncalrpc", "bind-dns"):
            (self.work / sub).mkdir(mode=0o700, exist_ok=True)
        self.conf.write_text(
            config_text(share_dir=self.share_dir, work=self.work, port=self.port, addresses=self.addresses,
                        user=self.user)
        )
        # The Samba password goes through stdin, never the command line.
        subprocess.run(
            ["pdbedit", f"--configfile={self.conf}", "-a", "-u", self.user, "-t"],
            input=f"{self.password}\n{self.password}\n", text=True, check=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [smbd, "--foreground", "--no-process-group", "--debug-stdout", "-d", "1",
             f"--configfile={self.conf}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            # Its own session and process group: smbd signals its whole process group when it
            # exits, which must not be the caller's (pytest's), and stop() can end its children.
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"smbd exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with socket.create_connection((self.addresses[0], self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"smbd did not listen on {self.addresses[0]}:{self.port} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
            # smbd forks one child per client connection, in its process group: none may survive
            # holding the port or the share.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.proc = None
        shutil.rmtree(self.work, ignore_errors=True)

    def __enter__(self) -> PrivateSmbd:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, required=True, help="directory to export read-only")
    p.add_argument("--port", type=int, default=4450)
    p.add_argument("--address", action="append", help="address to listen on (repeatable; default 127.0.0.1)")
    p.add_argument("--user", default="lanasr-smb")
    a = p.parse_args(argv)
    password = os.environ.get("ASR_SMB_PASSWORD")
    if not password:
        print("private_smbd: set ASR_SMB_PASSWORD to the password the share user should have", file=sys.stderr)
        return 2
    server = PrivateSmbd(a.dir, user=a.user, password=password, port=a.port,
                         addresses=tuple(a.address or ["127.0.0.1"]))
    with server:
        print(f"ASR_STORAGE_URL={server.url()}  (password in ASR_SMB_PASSWORD); Ctrl-C stops", flush=True)
        try:
            server.proc.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
