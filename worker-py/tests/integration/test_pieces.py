"""Long files in pieces against a real database: the split, the guards, the merge, cancel and delete."""

from __future__ import annotations

import asyncio
import wave

import numpy as np
import pytest
from psycopg_pool import AsyncConnectionPool

from asr_worker import db
from asr_worker.audio import SAMPLE_RATE, decode_audio
from asr_worker.pieces import _merge_rows

from .conftest import Harness, key, row, segments, submit

SR = SAMPLE_RATE


@pytest.fixture
async def pool(database_url):
    p = AsyncConnectionPool(database_url, min_size=1, max_size=6, open=False)
    await p.open()
    yield p
    await p.close()


def piece_rows(conn, task_id):
    return conn.execute(
        "SELECT idx, generation, status, attempts, job_id, start_s, end_s FROM transcription_pieces"
        " WHERE task_id = %s ORDER BY idx",
        (task_id,),
    ).fetchall()


def job_status(conn, job_id):
    r = conn.execute("SELECT status::text, abort_requested FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()
    return r if r else None


async def _split(pool, conn, task_id, bounds=(0, 10 * SR, 25 * SR, 40 * SR)):
    claim = await db.claim_transcription(pool, task_id, "splitter")
    ranges = list(zip(bounds, bounds[1:], strict=False))
    ids = await db.split_transcription(pool, task_id, claim.attempts, bounds[-1] / SR, ranges)
    return claim, ids


async def _finish(pool, claim, segs):
    return await db.finish_piece(
        pool,
        claim,
        text=" ".join(t for *_, t in segs),
        segments=segs,
        language="en",
        model="m",
        engine="offline",
        engine_s=1.0,
        merge=_merge_rows,
    )


async def test_split_defers_one_job_per_piece_and_guards_every_write(pool, conn):
    task_id = submit(conn, "uploads/x.wav", priority=3)
    claim, ids = await _split(pool, conn, task_id)
    pieces = piece_rows(conn, task_id)
    assert [(p[0], p[1], p[2], p[3]) for p in pieces] == [(i, claim.attempts, "queued", 0) for i in range(3)]
    assert [(p[5], p[6]) for p in pieces] == [(0.0, 10.0), (10.0, 25.0), (25.0, 40.0)]
    assert sorted(ids) == sorted(p[4] for p in pieces)
    jobs = conn.execute(
        "SELECT id, queue_name, task_name, priority, args FROM procrastinate_jobs WHERE id = ANY(%s)", (ids,)
    ).fetchall()
    by_idx = {j[4]["idx"]: j for j in jobs}
    assert {j[1] for j in jobs} == {"batch"} and {j[2] for j in jobs} == {"asr.transcribe_piece"}
    assert {j[3] for j in jobs} == {3}  # the file's priority
    assert by_idx[1][4] == {"task_id": task_id, "generation": 1, "idx": 1, "start": 10 * SR, "end": 25 * SR}
    assert by_idx[1][0] == pieces[1][4]  # each piece row names its own job
    assert row(conn, task_id)["status"] == "processing" and row(conn, task_id)["duration_s"] == 40.0

    # A piece retried after its worker vanished: the old attempt's result is discarded.
    old = await db.claim_piece(pool, task_id, 1, 0, "w-old")
    new = await db.claim_piece(pool, task_id, 1, 0, "w-new")
    assert (old.attempts, new.attempts) == (1, 2) and (new.start_sample, new.end_sample) == (0, 10 * SR)
    assert await _finish(pool, old, [(1.0, 2.0, "stale words")]) == ("stale", None)
    state, detail = await _finish(pool, new, [(1.0, 2.0, "zero")])
    assert state == "stored" and detail == (1, 3)
    assert row(conn, task_id)["progress"] == pytest.approx(0.25)  # 10 s of 40 s
    assert await _finish(pool, new, [(1.0, 2.0, "again")]) == ("stale", None)  # never twice
    # A piece of another generation is not claimable.
    assert await db.claim_piece(pool, task_id, 2, 1, "w") is None

    # Progress of a running piece moves the transcription's, weighted by length.
    c1 = await db.claim_piece(pool, task_id, 1, 1, "w1")
    await db.set_piece_progress(pool, c1, 0.5)
    assert row(conn, task_id)["progress"] == pytest.approx((10 + 7.5) / 40)
    c2 = await db.claim_piece(pool, task_id, 1, 2, "w2")

    # The last two pieces finish at the same moment: exactly one of them merges.
    results = await asyncio.gather(
        _finish(pool, c1, [(0.5, 3.0, "one a"), (14.0, 15.5, "one b")]),
        _finish(pool, c2, [(0.0, 2.0, "two")]),
    )
    assert sorted(r[0] for r in results) == ["merged", "stored"]
    r = row(conn, task_id)
    assert r["status"] == "done" and r["progress"] == 1 and r["text"] == "zero one a one b two"
    assert r["worker"] == "w-new, w1, w2" and r["rtf"] == pytest.approx(3 / 40) and r["duration_s"] == 40.0
    assert segments(conn, task_id) == [
        (0, 1.0, 2.0, "zero"),
        (1, 10.5, 13.0, "one a"),
        (2, 24.0, 25.0, "one b"),
        (3, 25.0, 27.0, "two"),
    ]


async def test_cancel_stops_the_pieces_and_a_new_attempt_replaces_them(pool, conn):
    task_id = submit(conn, "uploads/x.wav")
    claim, ids = await _split(pool, conn, task_id)
    running = await db.claim_piece(pool, task_id, claim.attempts, 0, "w")
    running_job = piece_rows(conn, task_id)[0][4]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (running_job,))
    conn.execute("UPDATE transcriptions SET status = 'canceled', finished_at = now() WHERE id = %s", (task_id,))
    assert {p[2] for p in piece_rows(conn, task_id)} == {"canceled"}
    assert job_status(conn, running_job) == ("doing", True)  # asked to abort
    assert all(job_status(conn, j) == ("cancelled", True) for j in ids if j != running_job)
    assert await db.claim_piece(pool, task_id, claim.attempts, 1, "w") is None
    assert await _finish(pool, running, [(0.0, 1.0, "late")]) == ("stale", None)
    assert row(conn, task_id)["status"] == "canceled" and segments(conn, task_id) == []

    # Retried: a new attempt splits again; the old generation's jobs find nothing to do.
    conn.execute("UPDATE transcriptions SET status = 'queued' WHERE id = %s", (task_id,))
    claim2, ids2 = await _split(pool, conn, task_id, bounds=(0, 20 * SR, 40 * SR))
    assert claim2.attempts == 2 and not set(ids) & set(ids2)
    assert {(p[1], p[2]) for p in piece_rows(conn, task_id)} == {(2, "queued")}
    assert await db.claim_piece(pool, task_id, 1, 0, "w") is None
    assert await db.claim_piece(pool, task_id, 2, 0, "w") is not None

    # A stale splitter (its attempt superseded) writes nothing.
    assert await db.split_transcription(pool, task_id, 1, 40.0, [(0, 40 * SR)]) is None
    assert len(piece_rows(conn, task_id)) == 2


async def test_delete_removes_waiting_piece_jobs_and_aborts_running_ones(pool, conn):
    task_id = submit(conn, "uploads/x.wav")
    claim, ids = await _split(pool, conn, task_id)
    running_job = piece_rows(conn, task_id)[1][4]
    conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (running_job,))
    conn.execute("DELETE FROM transcriptions WHERE id = %s", (task_id,))
    assert piece_rows(conn, task_id) == []
    assert job_status(conn, running_job) == ("doing", True)
    assert all(job_status(conn, j) is None for j in ids if j != running_job)


def _write_wav(path, samples):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())


@pytest.mark.models
async def test_a_long_file_is_split_transcribed_and_merged_in_process(database_url, conn, store, tiny_engine):
    jfk = decode_audio(store / "uploads/2026/01/02/jfk_en.wav").samples
    libri = decode_audio(store / "uploads/2026/01/02/librispeech_1995-1837-0001_en.wav").samples
    gap = np.zeros(3 * SR, np.float32)
    _write_wav(store / "uploads/2026/01/02/long.wav", np.concatenate([jfk, gap, libri, gap, jfk, gap]))
    task_id = submit(conn, key("long.wav"), language="en")
    async with Harness(database_url, tiny_engine, store, split_minutes=0.25) as h:
        await h.run_until_empty(timeout=300)
    r = row(conn, task_id)
    assert r["status"] == "done", r["error"]
    pieces = piece_rows(conn, task_id)
    assert len(pieces) >= 2 and {p[2] for p in pieces} == {"done"}
    text = r["text"].lower()
    assert text.count("ask not what your country can do for you") == 2, text
    assert text.count("sorrow of his life") == 1, text
    segs = segments(conn, task_id)
    assert all(a[2] <= b[1] for a, b in zip(segs, segs[1:], strict=False))
    second_jfk = len(jfk) / SR + 3 + len(libri) / SR + 3
    assert any(s[1] >= second_jfk - 0.5 and "fellow americans" in s[3].lower() for s in segs), segs


async def test_least_privilege_roles_can_run_the_piece_flow(database_url, conn):
    """The worker group splits, claims, finishes and merges; the gateway group's cancel and delete
    run the trigger that stops the pieces (0004's roles, 0006's grants)."""
    worker = AsyncConnectionPool(
        database_url, min_size=1, max_size=4, open=False, kwargs={"options": "-c role=asr_worker"}
    )
    await worker.open()
    try:
        async with worker.connection() as c:
            assert (await (await c.execute("SELECT current_user")).fetchone())[0] == "asr_worker"
        canceled = submit(conn, "uploads/x.wav")
        claim, ids = await _split(worker, conn, canceled)
        piece = await db.claim_piece(worker, canceled, claim.attempts, 0, "w")
        await db.set_piece_progress(worker, piece, 0.5)
        assert await _finish(worker, piece, [(0.0, 1.0, "a")]) == ("stored", (1, 3))
        deleted = submit(conn, "uploads/y.wav")
        await _split(worker, conn, deleted)
        done = submit(conn, "uploads/z.wav")
        claim, _ = await _split(worker, conn, done, bounds=(0, 5 * SR))
        piece = await db.claim_piece(worker, done, claim.attempts, 0, "w")
        assert (await _finish(worker, piece, [(0.0, 1.0, "z")]))[0] == "merged"
        assert row(conn, done)["status"] == "done"
    finally:
        await worker.close()
    import psycopg

    with psycopg.connect(database_url, autocommit=True, options="-c role=asr_gateway") as gw:
        gw.execute("UPDATE transcriptions SET status = 'canceled' WHERE id = %s", (canceled,))
        gw.execute("DELETE FROM transcriptions WHERE id = %s", (deleted,))
    assert {p[2] for p in piece_rows(conn, canceled)} == {"done", "canceled"}
    assert piece_rows(conn, deleted) == []
    with psycopg.connect(database_url, autocommit=True, options="-c role=asr_reader") as reader:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            reader.execute("SELECT 1 FROM transcription_pieces")
