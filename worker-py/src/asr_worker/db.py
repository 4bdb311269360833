"""Every SQL statement the worker runs against the project's own tables (not Procrastinate's)."""

from __future__ import annotations

import dataclasses
import json
import logging
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
    "best_effort",
]

log = logging.getLogger(__name__)


async def best_effort(coro) -> None:
    """Await a database update whose failure must not fail the job: log it and go on."""
    try:
        await coro
    except Exception as exc:
        log.warning("Database update failed: %s", exc)


async def _replace_segments(conn: AsyncConnection, transcription_id: str, segments) -> None:
    """Make ``segments`` ((start_s, end_s, text), in order) the transcription's only segments."""
    await conn.execute("DELETE FROM segments WHERE transcription_id = %s", (transcription_id,))
    if segments:
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO segments (transcription_id, idx, start_s, end_s, text) VALUES (%s, %s, %s, %s, %s)",
                [(transcription_id, i, s, max(s, e), t) for i, (s, e, t) in enumerate(segments)],
            )


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
            await _replace_segments(conn, task_id, segments)
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


async def worker_heartbeat(
    pool: AsyncConnectionPool, worker_id: str, procrastinate_worker_id: int | None, state: str | None = None
) -> None:
    """Refresh the heartbeat. A row another worker's recovery marked ``gone`` while this one could not
    reach the database (a PostgreSQL restart) gets ``state`` back, so the worker counts as active again."""
    await _execute(
        pool,
        """
        UPDATE workers SET last_heartbeat = now(),
               procrastinate_worker_id = COALESCE(%(pw)s, procrastinate_worker_id),
               state = CASE WHEN state = 'gone' AND %(state)s::text IS NOT NULL
                            AND %(state)s::text <> 'gone' THEN %(state)s::text ELSE state END
         WHERE id = %(id)s
        """,
        {"id": worker_id, "pw": procrastinate_worker_id, "state": state},
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


# --- live sessions (migrations/0003_live.sql) ------------------------------------------------

CAPTIONS_CHANNEL = "asr_captions"
CHUNKS_CHANNEL = "asr_live_chunks"
NOTIFY_LIMIT = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


@dataclasses.dataclass(frozen=True)
class LiveClaim:
    """A live session this worker has started (or resumed)."""

    session_id: str
    attempts: int
    mode: str
    wav_name: str
    state: str
    language: str | None
    hotwords: str
    sentences: int  # sentences already stored (a resumed session skips them)


def caption_payload(session_id: str, msg: dict) -> str:
    """The ``asr_captions`` payload; optional detail is dropped when it would not fit a NOTIFY."""
    payload = json.dumps({"session_id": str(session_id), "msg": msg}, ensure_ascii=False)
    if len(payload.encode()) > NOTIFY_LIMIT:
        msg = {k: v for k, v in msg.items() if k not in ("timestamp", "stamp_sents")}
        payload = json.dumps({"session_id": str(session_id), "msg": msg}, ensure_ascii=False)
    if len(payload.encode()) > NOTIFY_LIMIT:
        msg = dict(msg, text=msg.get("text", "")[:1500], partial=msg.get("partial", "")[:1000])
        payload = json.dumps({"session_id": str(session_id), "msg": msg}, ensure_ascii=False)
    return payload


async def notify_caption(conn, session_id: str, msg: dict) -> None:
    await _execute(conn, "SELECT pg_notify(%s, %s)", (CAPTIONS_CHANNEL, caption_payload(session_id, msg)))


async def live_claim(pool: AsyncConnectionPool, session_id: str, worker_id: str) -> LiveClaim | None:
    """Start (or resume) a live session: None when it is gone or already closed/failed."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE transcriptions t
               SET attempts = t.attempts + 1, worker = %(worker)s, started_at = COALESCE(t.started_at, now())
              FROM live_sessions s
             WHERE t.id = %(id)s AND s.id = t.id AND t.status = 'processing' AND s.state IN ('open', 'ended')
            RETURNING t.attempts, s.mode, s.wav_name, s.state, COALESCE(t.language_requested, ''), t.hotwords,
                      (SELECT count(*) FROM live_sentences x WHERE x.session_id = t.id)
            """,
            {"id": session_id, "worker": worker_id},
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return LiveClaim(session_id, row[0], row[1], row[2] or "", row[3], row[4] or None, row[5] or "", int(row[6]))


async def live_fetch_chunks(conn, session_id: str, from_seq: int, limit: int = 100) -> list[tuple[int, bytes, bool]]:
    cur = await conn.execute(
        "SELECT seq, pcm, is_last FROM live_chunks WHERE session_id = %s AND seq >= %s ORDER BY seq LIMIT %s",
        (session_id, from_seq, limit),
    )
    return [(r[0], bytes(r[1]), bool(r[2])) for r in await cur.fetchall()]


async def live_has_chunk(conn, session_id: str, seq: int) -> bool:
    cur = await conn.execute("SELECT 1 FROM live_chunks WHERE session_id = %s AND seq = %s", (session_id, seq))
    return await cur.fetchone() is not None


async def live_add_sentence(
    pool: AsyncConnectionPool, session_id: str, idx: int, start_ms: int, end_ms: int, pcm: bytes, partial: str
) -> bool:
    """Store a closed sentence and defer its final in one transaction; False if it already existed."""
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                """
                INSERT INTO live_sentences (session_id, idx, start_ms, end_ms, pcm, partial_text)
                VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING
                """,
                (session_id, idx, start_ms, max(start_ms, end_ms), pcm, partial),
            )
            if cur.rowcount != 1:
                return False
            await conn.execute(
                """
                SELECT procrastinate_defer_jobs_v1(ARRAY[ROW(
                       'final', 'asr.finalize_segment', 30, NULL, NULL,
                       jsonb_build_object('session_id', %s::text, 'idx', %s::int), NULL
                       )::procrastinate_job_to_defer_v1])
                """,
                (session_id, idx),
            )
    return True


async def live_pending_sentences(pool: AsyncConnectionPool, session_id: str) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM live_sentences WHERE session_id = %s AND status = 'pending'", (session_id,)
        )
        return (await cur.fetchone())[0]


async def live_sentences(pool: AsyncConnectionPool, session_id: str) -> list[tuple]:
    """(idx, start_ms, end_ms, text, status, partial_text) of every sentence, in order."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            SELECT idx, start_ms, end_ms, final_text, status, partial_text FROM live_sentences
             WHERE session_id = %s ORDER BY idx
            """,
            (session_id,),
        )
        return await cur.fetchall()


async def live_language(pool: AsyncConnectionPool, session_id: str) -> str | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT COALESCE(NULLIF(NULLIF(lower(language_requested), ''), 'auto'), language)"
            " FROM transcriptions WHERE id = %s",
            (session_id,),
        )
        row = await cur.fetchone()
    return row[0] if row else None


async def live_close(
    pool: AsyncConnectionPool,
    session_id: str,
    attempts: int,
    *,
    text: str,
    language: str | None,
    duration_s: float,
    model: str,
    engine: str,
    engine_s: float,
    worker_id: str,
    segments: Sequence[tuple[float, float, str]],
    closing: dict,
) -> bool:
    """Store the session's transcription, close the session, drop its chunks, send the closing message."""
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                """
                UPDATE transcriptions
                   SET status = 'done', text = %(text)s, language = COALESCE(%(language)s, language),
                       duration_s = %(duration)s, model = %(model)s, engine = %(engine)s, worker = %(worker)s,
                       rtf = %(rtf)s, engine_s = %(engine_s)s, progress = 1, finished_at = now(), error = NULL
                 WHERE id = %(id)s AND status = 'processing' AND attempts = %(a)s
                """,
                {
                    "id": session_id,
                    "a": attempts,
                    "text": text,
                    "language": language,
                    "duration": duration_s,
                    "model": model,
                    "engine": engine,
                    "worker": worker_id,
                    "rtf": (engine_s / duration_s) if duration_s > 0 else None,
                    "engine_s": engine_s,
                },
            )
            if cur.rowcount != 1:
                return False
            await _replace_segments(conn, session_id, segments)
            await conn.execute(
                "UPDATE live_sessions SET state = 'closed', closed_at = now() WHERE id = %s", (session_id,)
            )
            await conn.execute("DELETE FROM live_chunks WHERE session_id = %s", (session_id,))
            await notify_caption(conn, session_id, closing)
    return True


async def live_fail(pool: AsyncConnectionPool, session_id: str, error: str, code: str) -> None:
    """Give up on a session: error message to its client, transcription failed, session failed."""
    async with pool.connection() as conn:
        async with conn.transaction():
            await conn.execute(
                """
                UPDATE transcriptions SET status = 'failed', error = %s, finished_at = now()
                 WHERE id = %s AND status = 'processing'
                """,
                (error, session_id),
            )
            await conn.execute(
                "UPDATE live_sessions SET state = 'failed', closed_at = now() WHERE id = %s", (session_id,)
            )
            await notify_caption(conn, session_id, {"error": error, "code": code})


@dataclasses.dataclass(frozen=True)
class SentenceToFinalize:
    start_ms: int
    end_ms: int
    pcm: bytes
    status: str
    partial_text: str
    mode: str
    wav_name: str
    language: str | None
    hotwords: str
    age_s: float = 0.0  # seconds since the sentence was stored, when it was read


async def live_sentence_for_final(pool: AsyncConnectionPool, session_id: str, idx: int) -> SentenceToFinalize | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            SELECT x.start_ms, x.end_ms, x.pcm, x.status, x.partial_text, s.mode, s.wav_name,
                   COALESCE(NULLIF(NULLIF(lower(t.language_requested), ''), 'auto'), t.language), t.hotwords,
                   extract(epoch FROM clock_timestamp() - x.ended_at)::float8
              FROM live_sentences x JOIN live_sessions s ON s.id = x.session_id
              JOIN transcriptions t ON t.id = x.session_id
             WHERE x.session_id = %s AND x.idx = %s
            """,
            (session_id, idx),
        )
        r = await cur.fetchone()
    if r is None:
        return None
    return SentenceToFinalize(
        r[0], r[1], bytes(r[2]), r[3], r[4] or "", r[5], r[6] or "", r[7], r[8] or "", max(0.0, float(r[9] or 0))
    )


async def live_keep_language(pool: AsyncConnectionPool, session_id: str, language: str) -> str:
    """Record the session's detected language once; return the one kept (first detection wins)."""
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE transcriptions SET language = %s WHERE id = %s AND language IS NULL", (language, session_id)
        )
        cur = await conn.execute("SELECT language FROM transcriptions WHERE id = %s", (session_id,))
        row = await cur.fetchone()
    return (row[0] if row else None) or language


async def live_finish_sentence(
    pool: AsyncConnectionPool, session_id: str, idx: int, *, text: str | None, status: str, caption: dict | None
) -> bool:
    """Store a sentence's final (or its failure) and send its caption in the same transaction."""
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                """
                UPDATE live_sentences SET final_text = %s, status = %s, finalized_at = clock_timestamp()
                 WHERE session_id = %s AND idx = %s AND status = 'pending'
                """,
                (text, status, session_id, idx),
            )
            if cur.rowcount != 1:
                return False
            if caption is not None:
                await notify_caption(conn, session_id, caption)
    return True


# --- long files in pieces (migrations/0006_pieces.sql) ----------------------------------------
#
# Lock order, everywhere: the transcriptions row first, then its piece rows (the cancel/delete
# trigger takes them in that order too), so progress, finishing and cancelling never deadlock.

PIECE_TASK = "asr.transcribe_piece"


@dataclasses.dataclass(frozen=True)
class PieceClaim:
    """A piece this worker has started."""

    task_id: str
    generation: int
    idx: int
    attempts: int
    start_sample: int
    end_sample: int
    audio_key: str | None
    language_requested: str | None
    hotwords: str


async def active_batch_workers(pool: AsyncConnectionPool, fresh_s: float) -> int:
    """Workers serving queue batch whose heartbeat is fresher than ``fresh_s`` (at least 1)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            SELECT count(*) FROM workers
             WHERE 'batch' = ANY (queues) AND state IN ('idle', 'busy')
               AND last_heartbeat > now() - make_interval(secs => %s)
            """,
            (fresh_s,),
        )
        return max(1, int((await cur.fetchone())[0]))


async def split_transcription(
    pool: AsyncConnectionPool,
    task_id: str,
    attempts: int,
    duration_s: float,
    ranges: Sequence[tuple[int, int]],
) -> list[int] | None:
    """Record the pieces of this attempt and defer one ``asr.transcribe_piece`` job each, atomically.

    Pieces of an earlier attempt are dropped (their jobs cancelled, or asked to abort). Returns the
    piece jobs' ids, or None (nothing written) when the attempt is stale or the row was canceled.
    """
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                """
                SELECT priority FROM transcriptions
                 WHERE id = %s AND status = 'processing' AND attempts = %s
                   FOR UPDATE
                """,
                (task_id, attempts),
            )
            row = await cur.fetchone()
            if row is None:
                return None
            priority = row[0]
            await conn.execute(
                """
                SELECT procrastinate_cancel_job_v1(job_id, true, true) FROM transcription_pieces
                 WHERE task_id = %s AND job_id IS NOT NULL AND status IN ('queued', 'running')
                """,
                (task_id,),
            )
            await conn.execute("DELETE FROM transcription_pieces WHERE task_id = %s", (task_id,))
            starts = [int(a) for a, _ in ranges]
            ends = [int(b) for _, b in ranges]
            await conn.execute(
                """
                INSERT INTO transcription_pieces (task_id, idx, generation, start_sample, end_sample)
                SELECT %(id)s, u.i - 1, %(gen)s, u.s, u.e
                  FROM unnest(%(starts)s::bigint[], %(ends)s::bigint[]) WITH ORDINALITY AS u(s, e, i)
                """,
                {"id": task_id, "gen": attempts, "starts": starts, "ends": ends},
            )
            cur = await conn.execute(
                """
                SELECT procrastinate_defer_jobs_v1(array_agg(ROW(
                       'batch', %(task)s, %(prio)s, NULL, NULL,
                       jsonb_build_object('task_id', %(id)s::text, 'generation', %(gen)s::int, 'idx', p.idx,
                                          'start', p.start_sample, 'end', p.end_sample),
                       NULL)::procrastinate_job_to_defer_v1 ORDER BY p.idx))
                  FROM transcription_pieces p WHERE p.task_id = %(id)s::uuid
                """,
                {"task": PIECE_TASK, "prio": priority, "id": task_id, "gen": attempts},
            )
            job_ids = list((await cur.fetchone())[0] or [])
            # The defer function returns ids in no promised order: match them by their args.
            await conn.execute(
                """
                UPDATE transcription_pieces p SET job_id = j.id
                  FROM procrastinate_jobs j
                 WHERE j.id = ANY(%(ids)s) AND p.task_id = %(id)s AND p.idx = (j.args->>'idx')::int
                """,
                {"ids": job_ids, "id": task_id},
            )
            await conn.execute(
                "UPDATE transcriptions SET duration_s = %s, progress = 0 WHERE id = %s", (duration_s, task_id)
            )
    return job_ids


async def claim_piece(
    pool: AsyncConnectionPool, task_id: str, generation: int, idx: int, worker_id: str
) -> PieceClaim | None:
    """Mark a piece running for this attempt; None when its transcription is no longer on this split."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE transcription_pieces p
               SET status = 'running', attempts = p.attempts + 1, worker = %(worker)s,
                   started_at = now(), progress = 0
              FROM transcriptions t
             WHERE p.task_id = %(id)s AND p.idx = %(idx)s AND p.generation = %(gen)s
               AND p.status IN ('queued', 'running')
               AND t.id = p.task_id AND t.status = 'processing' AND t.attempts = p.generation
            RETURNING p.attempts, p.start_sample, p.end_sample, t.audio_key, t.language_requested, t.hotwords
            """,
            {"id": task_id, "idx": idx, "gen": generation, "worker": worker_id},
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return PieceClaim(task_id, generation, idx, row[0], int(row[1]), int(row[2]), row[3], row[4], row[5] or "")


_WEIGHTED_PROGRESS = """
    SELECT sum(CASE WHEN idx = %(idx)s THEN %(p)s ELSE progress END * (end_sample - start_sample))
           / sum(end_sample - start_sample)
      FROM transcription_pieces WHERE task_id = %(id)s AND generation = %(gen)s
"""


async def set_piece_progress(pool: AsyncConnectionPool, claim: PieceClaim, progress: float) -> None:
    """The piece's progress, and the transcription's: every piece's progress weighted by its length."""
    params = {
        "id": claim.task_id,
        "gen": claim.generation,
        "idx": claim.idx,
        "a": claim.attempts,
        "p": max(0.0, min(1.0, float(progress))),
    }
    async with pool.connection() as conn:
        async with conn.transaction():
            await conn.execute(
                f"""
                UPDATE transcriptions SET progress = LEAST(0.99, w.value)
                  FROM ({_WEIGHTED_PROGRESS}) AS w(value)
                 WHERE id = %(id)s AND status = 'processing' AND attempts = %(gen)s AND progress < w.value
                """,
                params,
            )
            await conn.execute(
                """
                UPDATE transcription_pieces SET progress = %(p)s
                 WHERE task_id = %(id)s AND idx = %(idx)s AND generation = %(gen)s AND attempts = %(a)s
                   AND status = 'running' AND progress < %(p)s
                """,
                params,
            )


async def requeue_piece(pool: AsyncConnectionPool, claim: PieceClaim) -> None:
    """Put a piece back to queued when this worker stops before finishing it (its job is retried)."""
    async with pool.connection() as conn:
        await conn.execute(
            """
            UPDATE transcription_pieces SET status = 'queued', progress = 0, worker = NULL
             WHERE task_id = %s AND idx = %s AND generation = %s AND attempts = %s AND status = 'running'
            """,
            (claim.task_id, claim.idx, claim.generation, claim.attempts),
        )


async def finish_piece(
    pool: AsyncConnectionPool,
    claim: PieceClaim,
    *,
    text: str,
    segments: Sequence[tuple[float, float, str]],
    language: str | None,
    model: str,
    engine: str,
    engine_s: float,
    merge,
) -> tuple[str, object]:
    """Store a piece's result; if it completes the set, merge every piece into the transcription.

    One transaction under the transcription's row lock, so exactly one worker sees the set
    complete and merges. ``merge(rows)`` gets the pieces (idx, start_sample, end_sample, segments,
    language, model, engine, engine_s, worker) in order and returns a ``split.Merged``.
    Returns ("stale", None) when nothing was written (this attempt was superseded, or the
    transcription canceled, deleted or split again), ("stored", (done, total)), or ("merged", Merged).
    """
    async with pool.connection() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM transcriptions WHERE id = %s AND status = 'processing' AND attempts = %s FOR UPDATE",
                (claim.task_id, claim.generation),
            )
            if await cur.fetchone() is None:
                return "stale", None
            cur = await conn.execute(
                """
                UPDATE transcription_pieces
                   SET status = 'done', progress = 1, text = %(text)s, segments = %(segments)s::jsonb,
                       language = %(language)s, model = %(model)s, engine = %(engine)s,
                       engine_s = %(engine_s)s, finished_at = now()
                 WHERE task_id = %(id)s AND idx = %(idx)s AND generation = %(gen)s AND attempts = %(a)s
                   AND status = 'running'
                """,
                {
                    "id": claim.task_id,
                    "idx": claim.idx,
                    "gen": claim.generation,
                    "a": claim.attempts,
                    "text": text,
                    "segments": json.dumps([[float(s), float(e), t] for s, e, t in segments], ensure_ascii=False),
                    "language": language,
                    "model": model,
                    "engine": engine,
                    "engine_s": engine_s,
                },
            )
            if cur.rowcount != 1:
                return "stale", None
            cur = await conn.execute(
                """
                SELECT idx, start_sample, end_sample, status, segments, language, model, engine,
                       COALESCE(engine_s, 0), worker
                  FROM transcription_pieces WHERE task_id = %s AND generation = %s ORDER BY idx
                """,
                (claim.task_id, claim.generation),
            )
            rows = await cur.fetchall()
            done = sum(1 for r in rows if r[3] == "done")
            if done < len(rows):
                await conn.execute(
                    f"""
                    UPDATE transcriptions SET progress = LEAST(0.99, w.value)
                      FROM ({_WEIGHTED_PROGRESS}) AS w(value)
                     WHERE id = %(id)s AND status = 'processing' AND attempts = %(gen)s AND progress < w.value
                    """,
                    {"id": claim.task_id, "gen": claim.generation, "idx": claim.idx, "p": 1.0},
                )
                return "stored", (done, len(rows))
            merged = merge([(r[0], r[1], r[2], r[4], r[5], r[6], r[7], float(r[8]), r[9]) for r in rows])
            await conn.execute(
                """
                UPDATE transcriptions
                   SET status = 'done', text = %(text)s, language = %(language)s,
                       duration_s = %(duration)s, model = %(model)s, engine = %(engine)s, worker = %(worker)s,
                       rtf = %(rtf)s, engine_s = %(engine_s)s, progress = 1, finished_at = now(), error = NULL
                 WHERE id = %(id)s
                """,
                {
                    "id": claim.task_id,
                    "text": merged.text,
                    "language": merged.language,
                    "duration": merged.duration_s,
                    "model": merged.model,
                    "engine": merged.engine,
                    "worker": ", ".join(merged.workers) or None,
                    "rtf": merged.rtf,
                    "engine_s": merged.engine_s,
                },
            )
            await _replace_segments(conn, claim.task_id, merged.segments)
    return "merged", merged
