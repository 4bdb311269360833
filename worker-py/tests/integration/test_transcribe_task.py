"""``asr.transcribe_file`` end to end, in process: rows and jobs made exactly as the gateway makes them."""

from __future__ import annotations

import asyncio
import threading

import pytest

from asr_worker import db
from asr_worker.recovery import recover_once

from .conftest import Harness, job, key, row, segments, submit

pytestmark = [pytest.mark.models]


async def test_transcribes_a_file(database_url, conn, store, tiny_engine):
    task_id = submit(conn, key("jfk_en.wav"), language="en")
    async with Harness(database_url, tiny_engine, store) as h:
        await h.run_until_empty()
        name = h.settings.worker_name
    r = row(conn, task_id)
    assert r["status"] == "done", r["error"]
    assert "ask not what your country can do for you" in r["text"].lower()
    assert r["language"] == "en"
    assert r["engine"] == "offline" and r["model"] == "whisper-tiny.en"
    assert r["duration_s"] == pytest.approx(11.0, abs=0.01)
    assert 0 < r["rtf"] < 1 and r["engine_s"] > 0
    assert r["rtf"] == pytest.approx(r["engine_s"] / r["duration_s"])
    assert r["progress"] == 1 and r["attempts"] == 1 and r["worker"] == name
    assert r["started_at"] <= r["finished_at"]
    segs = segments(conn, task_id)
    assert segs and [s[0] for s in segs] == list(range(len(segs)))
    assert all(0 <= s[1] <= s[2] <= 11.0 for s in segs)
    assert all(a[2] <= b[1] + 0.01 for a, b in zip(segs, segs[1:], strict=False))
    assert " ".join(s[3] for s in segs) == r["text"]
    assert job(conn, task_id)["status"] == "succeeded"
    w = conn.execute(
        "SELECT state, current_task, jobs_done, avg_rtf, engine, models->>'asr' FROM workers WHERE id = %s", (name,)
    ).fetchone()
    assert w[0] == "idle" and w[1] is None and w[2] == 1
    assert w[3] == pytest.approx(r["rtf"])
    assert w[4] == "offline" and w[5] == "whisper-tiny.en"
    hist = conn.execute("SELECT status, text FROM history WHERE task_id = %s", (task_id,)).fetchone()
    assert hist == ("done", r["text"])


async def test_undecodable_audio_fails_with_a_reason(database_url, conn, store, tiny_engine):
    (store / "uploads" / "bad.wav").write_bytes(b"this is not audio" * 100)
    (store / "uploads" / "empty.mp3").write_bytes(b"")
    bad = submit(conn, "uploads/bad.wav")
    empty = submit(conn, "uploads/empty.mp3")
    missing = submit(conn, "uploads/nope.wav")
    unsafe = submit(conn, "../etc/passwd")
    async with Harness(database_url, tiny_engine, store) as h:
        await h.run_until_empty()
    for task_id, words in (
        (bad, "not a readable audio"),
        (empty, "empty"),
        (missing, "not in the store"),
        (unsafe, "Invalid audio key"),
    ):
        r = row(conn, task_id)
        assert r["status"] == "failed"
        assert words in r["error"] and r["error"].endswith(".")
        assert r["finished_at"] is not None
        assert job(conn, task_id)["status"] == "succeeded"  # the job ends normally: no retry
        assert segments(conn, task_id) == []


async def test_canceled_row_is_skipped(database_url, conn, store, tiny_engine):
    task_id = submit(conn, key("jfk_en.wav"))
    conn.execute("UPDATE transcriptions SET status = 'canceled', finished_at = now() WHERE id = %s", (task_id,))
    deleted = submit(conn, key("jfk_en.wav"))
    conn.execute("DELETE FROM transcriptions WHERE id = %s", (deleted,))
    async with Harness(database_url, tiny_engine, store) as h:
        await h.run_until_empty()
    r = row(conn, task_id)
    assert (r["status"], r["attempts"], r["text"]) == ("canceled", 0, "")
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'").fetchone()[0] == 2


class _TakenOverElsewhere:
    """Wraps the real engine: while it runs, another worker takes the row over (a recovered job)."""

    def __init__(self, engine, database_url):
        self.engine, self.database_url = engine, database_url
        self.name, self.device, self.models = engine.name, engine.device, engine.models
        self.model_name = engine.model_name
        self.lock = threading.Lock()

    def transcribe(self, samples, **kwargs):
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True) as c:
            c.execute("UPDATE transcriptions SET attempts = attempts + 1, worker = 'other'")
        return self.engine.transcribe(samples, **kwargs)


async def test_stale_attempt_writes_nothing(database_url, conn, store, tiny_engine):
    task_id = submit(conn, key("jfk_en.wav"))
    async with Harness(database_url, _TakenOverElsewhere(tiny_engine, database_url), store) as h:
        await h.run_until_empty()
    r = row(conn, task_id)
    assert (r["status"], r["attempts"], r["worker"], r["text"]) == ("processing", 2, "other", "")
    assert segments(conn, task_id) == []
    # The current attempt still can: exactly one result.
    assert await _save(h, task_id, 2) and not await _save(h, task_id, 1)
    assert row(conn, task_id)["status"] == "done"


async def _save(h, task_id, attempts):
    from asr_worker.tasks import make_app

    app = make_app(h.settings.database_url)
    async with app.open_async():
        return await db.save_result(
            app.connector.pool,
            task_id,
            attempts,
            text="x",
            language="en",
            duration_s=1.0,
            model="m",
            engine="offline",
            rtf=0.1,
            engine_s=0.1,
            segments=[(0.0, 1.0, "x")],
        )


async def test_too_many_attempts_fail_the_row(database_url, conn, store, tiny_engine):
    task_id = submit(conn, key("jfk_en.wav"))
    conn.execute("UPDATE transcriptions SET attempts = 3 WHERE id = %s", (task_id,))
    async with Harness(database_url, tiny_engine, store) as h:
        await h.run_until_empty()
    r = row(conn, task_id)
    assert r["status"] == "failed" and "Gave up after 3 attempts" in r["error"]


async def test_stalled_job_is_recovered(database_url, conn, store, tiny_engine):
    task_id = submit(conn, key("jfk_en.wav"))
    # A worker took the job and died: its Procrastinate heartbeat is a minute old, and so is its registry row.
    dead = conn.execute(
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 minute') RETURNING id"
    ).fetchone()[0]
    fetched = conn.execute("SELECT id FROM procrastinate_fetch_job_v2(ARRAY['batch'], %s)", (dead,)).fetchone()[0]
    assert fetched == job(conn, task_id)["id"]
    conn.execute(
        "UPDATE transcriptions SET status = 'processing', attempts = 1, worker = 'dead' WHERE id = %s", (task_id,)
    )
    conn.execute(
        "INSERT INTO workers (id, host, pid, device, engine, queues, state, last_heartbeat) VALUES "
        "('dead', 'h', 1, 'cpu', 'offline', '{batch}', 'busy', now() - interval '1 minute')"
    )
    alive = conn.execute("INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id").fetchone()[0]
    async with Harness(database_url, tiny_engine, store, stalled_after_s=10) as h:
        # A job held by a live worker is left alone.
        other = submit(conn, key("funasr_example_zh.wav"))
        conn.execute("SELECT procrastinate_fetch_job_v2(ARRAY['batch'], %s)", (alive,))
        assert await recover_once(h.app, h.runtime.pool, 10) == [fetched]
        assert await recover_once(h.app, h.runtime.pool, 10) == []
        assert job(conn, task_id)["status"] == "todo"
        assert job(conn, other)["status"] == "doing"
        await h.run_until_empty()
    r = row(conn, task_id)
    assert (r["status"], r["attempts"]) == ("done", 2)
    assert "ask not" in r["text"].lower()
    assert conn.execute("SELECT state FROM workers WHERE id = 'dead'").fetchone()[0] == "gone"


async def test_progress_is_reported(database_url, conn, store, tiny_engine, speech_dir):
    import numpy as np
    import soundfile  # noqa: F401  (installed with funasr; PyAV writes the file below)

    from asr_worker.audio import decode_audio

    from ..conftest import encode

    a = decode_audio(speech_dir / "jfk_en.wav").samples
    long = np.concatenate([a, np.zeros(16000 * 3, np.float32)] * 5)
    encode(long, 16000, store / "uploads" / "long.flac", codec="flac")
    task_id = submit(conn, "uploads/long.flac")
    seen = set()
    async with Harness(database_url, tiny_engine, store) as h:
        run = asyncio.ensure_future(h.run_until_empty())
        while not run.done():
            seen.add(conn.execute("SELECT progress FROM transcriptions WHERE id = %s", (task_id,)).fetchone()[0])
            await asyncio.sleep(0.1)
        await run
    r = row(conn, task_id)
    assert r["status"] == "done" and r["progress"] == 1
    assert any(0 < p < 1 for p in seen), seen
    assert len(segments(conn, task_id)) >= 5


def _long_flac(store, speech_dir, repeats=4):
    import numpy as np

    from asr_worker.audio import decode_audio

    from ..conftest import encode

    a = decode_audio(speech_dir / "jfk_en.wav").samples
    path = store / "uploads" / "long.flac"
    encode(np.concatenate([a, np.zeros(8000, np.float32)] * repeats), 16000, path, codec="flac")
    return "uploads/long.flac"


async def _until(predicate, timeout=30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_cancel_while_processing_aborts(database_url, conn, store, tiny_engine, speech_dir):
    task_id = submit(conn, _long_flac(store, speech_dir))
    async with Harness(database_url, tiny_engine, store) as h:
        run = asyncio.ensure_future(h.worker(wait=False, abort_job_polling_interval=0.5).run())
        await _until(lambda: row(conn, task_id)["progress"] > 0)
        # Exactly what the gateway does for a processing task.
        with conn.transaction():
            conn.execute(
                "SELECT procrastinate_cancel_job_v1(job_id, true, false) FROM transcriptions WHERE id = %s", (task_id,)
            )
            conn.execute("UPDATE transcriptions SET status = 'canceled', finished_at = now() WHERE id = %s", (task_id,))
        await asyncio.wait_for(run, 30)
        name = h.settings.worker_name
    r = row(conn, task_id)
    assert r["status"] == "canceled" and r["text"] == "" and segments(conn, task_id) == []
    assert job(conn, task_id)["status"] in ("aborted", "failed")
    w = conn.execute("SELECT state, current_task, jobs_done FROM workers WHERE id = %s", (name,)).fetchone()
    assert w == ("idle", None, 0)


async def test_shutdown_mid_job_requeues_it(database_url, conn, store, tiny_engine, speech_dir):
    task_id = submit(conn, _long_flac(store, speech_dir))
    async with Harness(database_url, tiny_engine, store) as h:
        worker = h.worker(wait=True, shutdown_graceful_timeout=0.1)
        run = asyncio.ensure_future(worker.run())
        await _until(lambda: row(conn, task_id)["progress"] > 0)
        worker.stop()
        await asyncio.wait_for(run, 30)
        r = row(conn, task_id)
        assert (r["status"], r["progress"], r["worker"]) == ("queued", 0, None)
        assert job(conn, task_id)["status"] == "todo"
        # Another run picks it up again and finishes it.
        await h.run_until_empty()
    r = row(conn, task_id)
    assert (r["status"], r["attempts"]) == ("done", 2)
