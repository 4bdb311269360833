"""The migrations carry Procrastinate's schema verbatim, at the version the worker pins."""

from __future__ import annotations

import importlib.metadata
from importlib import resources

from ..conftest import REPO


def test_migration_is_the_installed_procrastinate_schema():
    assert importlib.metadata.version("procrastinate") == "3.10.0"
    migration = (REPO / "migrations" / "0001_procrastinate_3.10.0.sql").read_text(encoding="utf-8")
    packaged = resources.files("procrastinate").joinpath("sql/schema.sql").read_text(encoding="utf-8")
    ours = migration.split("\n", 2)[2]
    theirs = packaged.split("\n", 1)[1]
    assert ours.strip() == theirs.strip()


def test_migrated_database_has_the_contract_tables(conn):
    tables = {
        r[0]
        for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    }
    assert {
        "procrastinate_jobs",
        "procrastinate_workers",
        "transcriptions",
        "segments",
        "workers",
        "history",
        "history_segments",
    } <= tables
    funcs = {r[0] for r in conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'procrastinate_%'").fetchall()}
    assert {"procrastinate_defer_jobs_v1", "procrastinate_retry_job_v1", "procrastinate_fetch_job_v2"} <= funcs
