"""The real ``asr-worker run`` as a subprocess, with a scrubbed environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..integration.conftest import conn, database_url, store, template_db  # noqa: F401  (fixtures)

VENV_BIN = Path(sys.executable).parent


class WorkerProcess:
    def __init__(self, name: str, database_url: str, store: Path, cwd: Path, **env):
        self.name = name
        self.log_path = cwd / f"{name}.log"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": "C.UTF-8",
            "DATABASE_URL": database_url,
            "ASR_STORAGE_URL": store.as_uri(),
            "ASR_WORKER_NAME": name,
            **{k: str(v) for k, v in env.items()},
        }
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self.log_path, "wb")
        exe = VENV_BIN / "asr-worker"
        self.proc = subprocess.Popen(
            [str(exe), "run"], env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, conn, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"worker {self.name} exited:\n{self.log()}"
            r = conn.execute("SELECT state FROM workers WHERE id = %s", (self.name,)).fetchone()
            if r and r[0] in ("idle", "busy"):
                return
            time.sleep(0.2)
        raise AssertionError(f"worker {self.name} not ready in {timeout} s:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


@pytest.fixture
def workers(tmp_path, database_url, store):
    started: list[WorkerProcess] = []

    def start(name: str, **env) -> WorkerProcess:
        w = WorkerProcess(name, database_url, store, tmp_path, **env).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop(signal.SIGKILL)
