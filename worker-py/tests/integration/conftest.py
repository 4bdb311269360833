"""Real PostgreSQL: a template database migrated by the Go migrator, cloned for every test."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from ..conftest import REPO

TEMPLATE = "lanasr_py_tpl"


def admin_url() -> str:
    url = os.environ.get("ASR_TEST_DATABASE_URL")
    if not url:
        pytest.skip("ASR_TEST_DATABASE_URL is not set (a superuser URL of a throwaway PostgreSQL)")
    return url


def db_url(base: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(base, dbname=dbname)


def gateway_bin() -> Path:
    return Path(os.environ.get("ASR_GATEWAY_BIN") or REPO / "bin" / "asr-gateway")


def _drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _migrate(url: str) -> None:
    binary = gateway_bin()
    if binary.is_file() and os.access(binary, os.X_OK):
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_")}
        env["DATABASE_URL"] = url
        proc = subprocess.run([str(binary), "migrate"], env=env, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            pytest.fail(f"{binary} migrate failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return
    if os.environ.get("ASR_TEST_SQL_MIGRATIONS") == "1":
        # Development stand-in only, while the Go migrator is not built: the real suite uses the binary.
        with psycopg.connect(url, autocommit=True) as conn:
            for f in sorted((REPO / "migrations").glob("*.sql")):
                conn.execute(f.read_text(encoding="utf-8"))
        return
    pytest.fail(
        f"The Go migrator {binary} is not built (make build, or set ASR_GATEWAY_BIN): "
        "Python tests run against a database migrated by `asr-gateway migrate`."
    )


@pytest.fixture(scope="session")
def template_db() -> str:
    """Create and migrate the template database once per session."""
    base = admin_url()
    with psycopg.connect(base, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (TEMPLATE,)).fetchone():
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(TEMPLATE)))
            _drop(conn, TEMPLATE)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    _migrate(db_url(base, TEMPLATE))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(TEMPLATE)))
    yield TEMPLATE


@pytest.fixture
def database_url(template_db) -> str:
    """A fresh clone of the template for this test, dropped afterwards."""
    base = admin_url()
    name = f"lanasr_py_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template_db))
        )
    try:
        yield db_url(base, name)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            _drop(conn, name)


@pytest.fixture
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as c:
        yield c


def submit(
    conn: psycopg.Connection,
    audio_key: str | None,
    *,
    language: str | None = None,
    priority: int = 0,
    filename: str = "a.wav",
    hotwords: str = "",
) -> str:
    """Insert a transcription and defer its job in one transaction, exactly as the gateway does."""
    with conn.transaction():
        task_id = conn.execute(
            """
            INSERT INTO transcriptions (filename, audio_key, language_requested, priority, hotwords)
            VALUES (%s, %s, %s, %s, %s) RETURNING id
            """,
            (filename, audio_key, language, priority, hotwords),
        ).fetchone()[0]
        job_id = conn.execute(
            """
            SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW('batch', 'asr.transcribe_file', %(priority)s,
                    'task:' || %(id)s::text, 'task:' || %(id)s::text, jsonb_build_object('task_id', %(id)s::text),
                    NULL)::procrastinate_job_to_defer_v1]))[1]
            """,
            {"id": task_id, "priority": priority},
        ).fetchone()[0]
        conn.execute("UPDATE transcriptions SET job_id = %s WHERE id = %s", (job_id, task_id))
    return str(task_id)


def row(conn: psycopg.Connection, task_id: str) -> dict:
    cur = conn.execute("SELECT * FROM transcriptions WHERE id = %s", (task_id,))
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=False))


def segments(conn: psycopg.Connection, task_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT idx, start_s, end_s, text FROM segments WHERE transcription_id = %s ORDER BY idx", (task_id,)
    ).fetchall()


def job(conn: psycopg.Connection, task_id: str) -> dict:
    cur = conn.execute(
        "SELECT j.* FROM procrastinate_jobs j JOIN transcriptions t ON t.job_id = j.id WHERE t.id = %s", (task_id,)
    )
    names = [d.name for d in cur.description]
    return dict(zip(names, cur.fetchone(), strict=False))


class Harness:
    """One in-process worker (the real app, registry and runtime) against a test database."""

    def __init__(self, database_url: str, engine, store_dir: Path, *, worker_name: str | None = None, **overrides):
        from asr_worker.config import Settings

        self.settings = Settings(
            database_url=database_url,
            storage_url=store_dir.as_uri(),
            worker_name=worker_name or f"test-{uuid.uuid4().hex[:6]}",
            heartbeat_s=0.5,
            **overrides,
        )
        self.engine = engine
        self.store_dir = store_dir

    async def __aenter__(self):
        from asr_worker.registry import Registry
        from asr_worker.storage import Storage
        from asr_worker.tasks import Runtime, make_app

        self.app = make_app(self.settings.database_url)
        await self.app.open_async()
        pool = self.app.connector.pool
        self.registry = Registry(
            pool,
            self.settings.worker_name,
            queues=self.settings.queues,
            concurrency=1,
            heartbeat_s=self.settings.heartbeat_s,
        )
        await self.registry.register(
            engine=self.engine.name, device=self.engine.device, models=self.engine.models, state="idle"
        )
        self.runtime = Runtime(
            settings=self.settings,
            engine=self.engine,
            storage=Storage(self.settings.storage_url),
            registry=self.registry,
            pool=pool,
        )
        return self

    async def __aexit__(self, *exc):
        await self.registry.stop_heartbeat()
        await self.app.close_async()

    def worker(self, *, wait: bool = False, queues=("batch",), name: str | None = None, **kwargs):
        import procrastinate.worker

        return procrastinate.worker.Worker(
            self.app,
            queues=list(queues),
            name=f"{self.settings.worker_name}/{name}" if name else self.settings.worker_name,
            wait=wait,
            additional_context={"runtime": self.runtime},
            install_signal_handlers=False,
            update_heartbeat_interval=0.5,
            **kwargs,
        )

    async def run_until_empty(self, timeout: float = 60):
        """Process queued jobs until none is left."""
        await asyncio.wait_for(self.worker(wait=False).run(), timeout)


@pytest.fixture
def store(tmp_path, speech_dir) -> Path:
    """An audio store holding the test speech under gateway-style keys."""
    root = tmp_path / "store"
    (root / "uploads" / "2026" / "01" / "02").mkdir(parents=True)
    for f in speech_dir.glob("*.wav"):
        shutil.copyfile(f, root / "uploads" / "2026" / "01" / "02" / f.name)
    return root


def key(name: str) -> str:
    return f"uploads/2026/01/02/{name}"
