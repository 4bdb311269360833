"""Every SQL statement the worker runs against the project's own tables (not Procrastinate's)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

__all__ = [
    "Claim",
    "claim_transcription",
    "set_progress",
    "save_result",
    "fail_transcription",
    "requeue_transcription",
    "worker_insert",
    "worker_heartbeat",
    "worker_set_state",
    "worker_job_done",
    "workers_mark_gone",
]


@dataclasses.dataclass(frozen=True)
class Claim:
    """A transcription this worker has started: what it needs to know to do it."""

    task_id: str
    attempts: int
    audio_key: str | None
    language_requested: str | None
    hotwords: str


async def claim_transcription(pool: AsyncConnectionPool, task_id: str, worker_id: str) -> Claim | None:
    """Mark the row processing for this attempt; None when it is gone or canceled/finished."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE transcriptions
               SET status = 'processing', started_at = now(), attempts = attempts + 1,
                   worker = %(worker)s, progress = 0, error = NULL
             WHERE id = %(id)s AND status IN ('queued', 'processing')
            RETURNING attempts, audio_key, language_requested, hotwords
            """,
            {"id": task_id, "worker": worker_id},
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return Claim(task_id, row[0], row[1], row[2], row[3] or "")


async def set_progress(pool: AsyncConnectionPool, task_id: str, attempts: int, progress: float) -> None:
    async with pool.connection() as conn:
        await conn.execute(
            """
            UPDATE transcriptions SET progress = %(p)s
             WHERE id = %(id)s AND status = 'processing' AND attempts = %(a)s AND progress < %(p)s
            """,
            {"id": task_id, "a": attempts, "p": max(0.0, min(1.0, float(progress)))},
        )


async def save_result(
    pool: AsyncConnectionPool,
    task_id: str,
    attempts: int,
    *,
    text: str,
    language: str | None,
    duration_s: float,
    model: str,
    engine: str,
    rtf: float | None,
    engine_s: float,
    segments: Sequence[tuple[float, float, str]],
) -> bool:
    """Store the result in one transaction; False (nothing written) if this attempt is stale."""
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                """
                UPDATE transcriptions
                   SET status = 'done', text = %(text)s, language = %(language)s,
                       duration_s = %(duration)s, model = %(model)s, engine = %(engine)s,
                       rtf = %(rtf)s, engine_s = %(engine_s)s, progress = 1, finished_at = now()
                 WHERE id = %(id)s AND status = 'processing' AND attempts = %(a)s
                """,
                {
                    "id": task_id,
                    "a": attempts,
                    "text": text,
                    "language": language,
                    "duration": duration_s,
                    "model": model,
                    "engine": engine,
                    "rtf": rtf,
                    "engine_s": engine_s,
                },
            )
            if cur.rowcount != 1:
                return False
            await conn.execute("DELETE FROM segments WHERE transcription_id = %s", (task_id,))
            if segments:
                async with conn.cursor() as c:
                    await c.executemany(
                        "INSERT INTO segments (transcription_id, idx, start_s, end_s, text)"
                        " VALUES (%s, %s, %s, %s, %s)",
                        [(task_id, i, s, max(s, e), t) for i, (s, e, t) in enumerate(segments)],
                    )
    return True


async def fail_transcription(pool: AsyncConnectionPool, task_id: str, attempts: int | None, error: str) -> bool:
    """Mark the row failed with a readable ``error``; only the current attempt may (None: any)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE transcriptions SET status = 'failed', error = %(error)s, finished_at = now()
             WHERE id = %(id)s AND status = 'processing' AND (%(a)s::int IS NULL OR attempts = %(a)s)
            """,
            {"id": task_id, "a": attempts, "error": error},
        )
        return cur.rowcount == 1


async def requeue_transcription(pool: AsyncConnectionPool, task_id: str, attempts: int) -> None:
    """Put a row back to queued when this worker stops before finishing it (its job is retried)."""
    async with pool.connection() as conn:
        await conn.execute(
            """
            UPDATE transcriptions SET status = 'queued', progress = 0, worker = NULL
             WHERE id = %(id)s AND status = 'processing' AND attempts = %(a)s
            """,
            {"id": task_id, "a": attempts},
        )


async def worker_insert(
    conn: AsyncConnection | AsyncConnectionPool,
    *,
    worker_id: str,
    host: str,
    pid: int,
    device: str,
    engine: str,
    queues: list[str],
    models: dict,
    concurrency: int,
    version: str,
    state: str = "starting",
    error: str | None = None,
) -> None:
    params = {
        "id": worker_id,
        "host": host,
        "pid": pid,
        "device": device,
        "engine": engine,
        "queues": queues,
        "models": json.dumps(models),
        "concurrency": concurrency,
        "version": version,
        "state": state,
        "error": error,
    }
    sql = """
        INSERT INTO workers (id, host, pid, device, engine, queues, models, concurrency, version, state, error)
        VALUES (%(id)s, %(host)s, %(pid)s, %(device)s, %(engine)s, %(queues)s, %(models)s::jsonb,
                %(concurrency)s, %(version)s, %(state)s, %(error)s)
        ON CONFLICT (id) DO UPDATE SET
            host = EXCLUDED.host, pid = EXCLUDED.pid, device = EXCLUDED.device, engine = EXCLUDED.engine,
            queues = EXCLUDED.queues, models = EXCLUDED.models, concurrency = EXCLUDED.concurrency,
            version = EXCLUDED.version, state = EXCLUDED.state, error = EXCLUDED.error,
            current_task = NULL, started_at = now(), last_heartbeat = now()
    """
    await _execute(conn, sql, params)


async def worker_heartbeat(pool: AsyncConnectionPool, worker_id: str, procrastinate_worker_id: int | None) -> None:
    await _execute(
        pool,
        """
        UPDATE workers SET last_heartbeat = now(),
               procrastinate_worker_id = COALESCE(%(pw)s, procrastinate_worker_id)
         WHERE id = %(id)s
        """,
        {"id": worker_id, "pw": procrastinate_worker_id},
    )


async def worker_set_state(
    pool: AsyncConnectionPool,
    worker_id: str,
    state: str,
    current_task: str | None = None,
    error: str | None = None,
) -> None:
    await _execute(
        pool,
        """
        UPDATE workers SET state = %(state)s, current_task = %(task)s, last_heartbeat = now(),
               error = COALESCE(%(error)s, error)
         WHERE id = %(id)s
        """,
        {"id": worker_id, "state": state, "task": _uuid_or_none(current_task), "error": error},
    )


async def worker_job_done(pool: AsyncConnectionPool, worker_id: str, rtf: float | None, state: str) -> None:
    """Count one finished job and fold its RTF into the running average."""
    await _execute(
        pool,
        """
        UPDATE workers
           SET jobs_done = jobs_done + 1,
               avg_rtf = CASE WHEN %(rtf)s::float8 IS NULL THEN avg_rtf
                              WHEN avg_rtf IS NULL THEN %(rtf)s::float8
                              ELSE (avg_rtf * jobs_done + %(rtf)s::float8) / (jobs_done + 1) END,
               state = %(state)s, current_task = NULL, last_heartbeat = now()
         WHERE id = %(id)s
        """,
        {"id": worker_id, "rtf": rtf, "state": state},
    )


async def workers_mark_gone(pool: AsyncConnectionPool, stalled_after_s: float) -> list[str]:
    """Set ``state='gone'`` on workers whose heartbeat is older than ``stalled_after_s``.

    Rows in ``error`` keep their state, so the reason their models failed stays visible.
    """
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE workers SET state = 'gone', current_task = NULL
             WHERE state NOT IN ('gone', 'error') AND last_heartbeat < now() - make_interval(secs => %(s)s)
            RETURNING id
            """,
            {"s": stalled_after_s},
        )
        return [r[0] for r in await cur.fetchall()]


async def _execute(target, sql: str, params) -> None:
    if isinstance(target, AsyncConnectionPool):
        async with target.connection() as conn:
            await conn.execute(sql, params)
    else:
        await target.execute(sql, params)


def _uuid_or_none(value: str | None) -> str | None:
    if value is None:
        return None
    return str(uuid.UUID(str(value)))
