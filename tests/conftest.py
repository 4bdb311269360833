"""End-to-end fixtures: the real gateway binary and real worker processes on a real database.

Each test module gets its own database (cloned from a template that the Go migrator built),
its own audio store and its own gateway port, so tests never share state.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEECH = ROOT.parent / "shared" / "testdata" / "speech"
GATEWAY_BIN = Path(os.environ.get("ASR_GATEWAY_BIN", ROOT / "bin" / "asr-gateway"))
WORKER_BIN = ROOT / ".venv" / "bin" / "asr-worker"
# The gateway's FunASR-protocol client; `make gateway` builds it next to the gateway.
WSCLIENT = ROOT / "bin" / "asr-wsclient"
ARTIFACTS = ROOT / "tests" / "artifacts"
MIGRATIONS = ROOT / "migrations"
# The template's name carries a digest of the migrations, so a changed schema gets a new one.
TEMPLATE = "lanasr_e2e_tpl_" + hashlib.sha256(
    b"".join(p.read_bytes() for p in sorted(MIGRATIONS.glob("*.sql")))
).hexdigest()[:10]


def admin_url() -> str:
    url = os.environ.get("ASR_TEST_DATABASE_URL")
    if not url:
        pytest.fail("ASR_TEST_DATABASE_URL is not set: run these tests through `make test`")
    return url


def db_url_for(name: str) -> str:
    base, _, _ = admin_url().rpartition("/")
    return f"{base}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout: float, what: str, poll: float = 0.1):
    """``cond()``'s first truthy value within ``timeout`` seconds, else AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def scrubbed_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_") and k != "DATABASE_URL"}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def template_db() -> str:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (TEMPLATE,))
        try:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
                subprocess.run([str(GATEWAY_BIN), "migrate"], check=True,
                               env=scrubbed_env(DATABASE_URL=db_url_for(TEMPLATE)))
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (TEMPLATE,))
    return TEMPLATE


@pytest.fixture
def database(template_db: str):
    name = f"lanasr_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield db_url_for(name)
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Stack:
    """A running gateway plus any number of workers, on one database and one audio store."""

    db_url: str
    store: Path
    logs: Path
    port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_gateway(self, **extra: str) -> None:
        env = scrubbed_env(DATABASE_URL=self.db_url, ASR_HTTP_ADDR=f"127.0.0.1:{self.port}",
                           ASR_STORAGE_DIR=str(self.store), ASR_MAX_UPLOAD_MB="8")
        env.update(extra)
        self._spawn("gateway", [str(GATEWAY_BIN), "serve"], env)
        self.wait_http()

    def start_worker(self, name: str = "worker-1", *, prefix: tuple[str, ...] = (), **extra: str) -> subprocess.Popen:
        """A worker process; ``extra`` may override DATABASE_URL and ASR_STORAGE_URL too, and
        ``prefix`` runs it through another command (tests/test_lan.py: ``ip netns exec <ns> …``)."""
        env = scrubbed_env(DATABASE_URL=self.db_url, ASR_STORAGE_URL=self.store.as_uri(), ASR_WORKER_NAME=name)
        env.update(extra)
        return self._spawn(name, [*prefix, str(WORKER_BIN), "run"], env)

    def wait_http(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base}/api/v1/health", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError(f"gateway did not answer within {timeout} s; see {self.logs}/gateway.log")

    def wait_ready(self, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        body: dict = {}
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.base}/api/v1/health", timeout=2)
            body = r.json()
            if r.status_code == 200:
                return body
            time.sleep(0.3)
        raise AssertionError(f"stack not ready within {timeout} s: {body}")

    def submit(self, path: Path, name: str | None = None, **fields: str) -> httpx.Response:
        with open(path, "rb") as f:
            return httpx.post(f"{self.base}/api/v1/asr/submit",
                              files={"audio": (name or path.name, f, "application/octet-stream")},
                              data=fields, timeout=30)

    def result(self, task_id: str) -> dict:
        r = httpx.get(f"{self.base}/api/v1/asr/result/{task_id}", timeout=10)
        r.raise_for_status()
        return r.json()

    def wait_done(self, task_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        res: dict = {}
        while time.monotonic() < deadline:
            res = self.result(task_id)
            if res["status"] in ("done", "failed", "canceled"):
                return res
            time.sleep(0.25)
        raise AssertionError(f"task {task_id} not finished within {timeout} s: {res}")

    def sql(self, query: str, *params) -> list[tuple]:
        with psycopg.connect(self.db_url) as conn:
            return conn.execute(query, params).fetchall()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def stack(database: str, tmp_path: Path, request):
    logs = ARTIFACTS / request.node.name
    logs.mkdir(parents=True, exist_ok=True)
    store = tmp_path / "audio"
    store.mkdir()
    s = Stack(db_url=database, store=store, logs=logs)
    s.start_gateway()
    yield s
    s.stop()


def load_transcripts() -> dict:
    return json.loads((SPEECH / "transcripts.json").read_text())
