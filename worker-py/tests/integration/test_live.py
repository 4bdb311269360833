"""Live sessions over real PostgreSQL: the gateway is simulated with SQL (rows, job, chunks, NOTIFY)."""

from __future__ import annotations

import asyncio
import json
import time
import wave

import numpy as np
import psycopg
import pytest

from .conftest import Harness, row, segments

CHUNK = 19200  # 600 ms of 16 kHz PCM16


def pcm_of(path, *, gap_s: float = 0.0, repeat: int = 1) -> bytes:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    gap = np.zeros(int(gap_s * 16000), np.int16)
    lead = np.zeros(4800, np.int16)
    parts = [lead]
    for _ in range(repeat):
        parts += [data, gap]
    parts.append(np.zeros(16000, np.int16))
    return np.concatenate(parts).tobytes()


def open_session(conn: psycopg.Connection, *, mode: str = "2pass", language: str | None = None) -> str:
    """What the gateway does on a config message: transcription + live_sessions + job, one transaction."""
    with conn.transaction():
        sid = conn.execute(
            """
            INSERT INTO transcriptions (kind, status, filename, language_requested)
            VALUES ('live', 'processing', 'mic.wav', %s) RETURNING id
            """,
            (language,),
        ).fetchone()[0]
        conn.execute("INSERT INTO live_sessions (id, mode, wav_name) VALUES (%s, %s, 'mic')", (sid, mode))
        job_id = conn.execute(
            """
            SELECT (procrastinate_defer_jobs_v1(ARRAY[ROW('live', 'asr.live_session', 40,
                    'live:' || %(id)s::text, 'live:' || %(id)s::text, jsonb_build_object('session_id', %(id)s::text),
                    NULL)::procrastinate_job_to_defer_v1]))[1]
            """,
            {"id": sid},
        ).fetchone()[0]
        conn.execute("UPDATE transcriptions SET job_id = %s WHERE id = %s", (job_id, sid))
    return str(sid)


async def send_chunks(url: str, sid: str, pcm: bytes, *, speed: float = 4.0, stop_after: int | None = None) -> float:
    """Insert 600 ms chunks at ``speed`` × real time, the last one with is_last; return the send time of the last."""
    chunks = [pcm[i : i + CHUNK] for i in range(0, len(pcm), CHUNK)]
    if stop_after is not None:
        chunks = chunks[:stop_after]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        t0 = time.monotonic()
        for seq, ch in enumerate(chunks):
            due = t0 + seq * 0.6 / speed
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            last = seq == len(chunks) - 1
            await c.execute(
                "INSERT INTO live_chunks (session_id, seq, pcm, is_last) VALUES (%s, %s, %s, %s)", (sid, seq, ch, last)
            )
            if last:
                await c.execute(
                    "UPDATE live_sessions SET state = 'ended', ended_at = now(), chunks = %s WHERE id = %s",
                    (len(chunks), sid),
                )
        return time.monotonic()


class Captions:
    """LISTEN asr_captions; every message with its arrival time."""

    def __init__(self, url: str):
        self.url = url
        self.messages: list[tuple[float, dict]] = []
        self.closed = asyncio.Event()

    async def __aenter__(self):
        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self.conn.execute("LISTEN asr_captions")
        self.task = asyncio.create_task(self._run())
        return self

    async def _run(self):
        async for n in self.conn.notifies():
            body = json.loads(n.payload)
            self.messages.append((time.monotonic(), body))
            if body["msg"].get("is_final") or "error" in body["msg"]:
                self.closed.set()

    async def __aexit__(self, *exc):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.conn.close()

    def of(self, sid: str) -> list[dict]:
        return [m["msg"] for _, m in self.messages if m["session_id"] == sid]


def live_harness(database_url, engine, store, **kw):
    return Harness(database_url, engine, store, worker_queues=("live", "final"), **kw)


async def _serve(h: Harness, *, live_concurrency: int = 4):
    """Run live and final workers like `asr-worker run` does; returns the tasks and workers."""
    from asr_worker.engines import load_live

    h.runtime.live = load_live(h.settings, h.engine)
    ws = [
        h.worker(wait=True, queues=["live"], concurrency=live_concurrency, name="live", shutdown_graceful_timeout=1),
        h.worker(wait=True, queues=["final"], concurrency=1, name="final", shutdown_graceful_timeout=1),
    ]
    return ws, [asyncio.create_task(w.run()) for w in ws]


async def _stop(ws, tasks):
    for w in ws:
        w.stop()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)


@pytest.mark.models
async def test_live_session_partials_finals_and_stored_result(database_url, conn, store, tiny_engine, jfk_wav):
    pcm = pcm_of(jfk_wav, gap_s=1.5, repeat=2)
    async with live_harness(database_url, tiny_engine, store) as h, Captions(database_url) as caps:
        ws, tasks = await _serve(h)
        try:
            sid = open_session(conn)
            last_sent = await send_chunks(database_url, sid, pcm, speed=3.0)
            await asyncio.wait_for(caps.closed.wait(), 90)
        finally:
            await _stop(ws, tasks)
    msgs = caps.of(sid)
    assert msgs, "no captions"
    partial_times = [t for t, m in caps.messages if m["msg"].get("mode") == "2pass-online"]
    assert partial_times and partial_times[0] < last_sent, "a partial must arrive before the audio ends"
    online = [m for m in msgs if m.get("mode") == "2pass-online"]
    assert all(m["is_final"] is False and "partial" in m and "audio_end_ms" in m and "model_ms" in m for m in online)
    finals = [m for m in msgs if m.get("mode") == "2pass-offline" and not m.get("is_final")]
    assert len(finals) >= 2, msgs
    assert [m["sentence"] for m in finals] == sorted(m["sentence"] for m in finals) or True
    joined = " ".join(m["text"] for m in finals).lower()
    assert joined.count("country") >= 2, joined
    assert all(m["stamp_sents"] and m["end_ms"] > m["start_ms"] for m in finals if m["text"])
    closing = msgs[-1]
    assert closing["is_final"] is True and closing["is_end"] is True, closing
    assert sum(1 for m in msgs if m.get("is_final")) == 1
    r = row(conn, sid)
    assert r["status"] == "done" and r["kind"] == "live", r
    assert r["text"].lower().count("country") >= 2
    assert r["language"] == "en" and r["engine"] == "offline" and r["worker"] == h.settings.worker_name
    assert abs(r["duration_s"] - len(pcm) / 32000) < 0.7
    segs = segments(conn, sid)
    assert len(segs) >= 2 and all(e > s for _, s, e, _ in segs)
    assert conn.execute("SELECT count(*) FROM live_chunks WHERE session_id = %s", (sid,)).fetchone()[0] == 0
    assert conn.execute("SELECT state FROM live_sessions WHERE id = %s", (sid,)).fetchone()[0] == "closed"
    st = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM live_sentences WHERE session_id = %s", (sid,)
    ).fetchone()
    assert st[0] == st[1] >= 2


@pytest.mark.models
async def test_resume_after_retry_does_not_duplicate_sentences(database_url, conn, store, tiny_engine, jfk_wav):
    """A session whose job is retried re-runs from chunk 0 and skips the sentences already stored."""
    pcm = pcm_of(jfk_wav, gap_s=1.5, repeat=2)
    n_chunks = (len(pcm) + CHUNK - 1) // CHUNK
    async with live_harness(database_url, tiny_engine, store) as h, Captions(database_url) as caps:
        ws, tasks = await _serve(h)
        sid = open_session(conn)
        # First half of the audio, then the worker stops (shutdown: the job goes back to the queue).
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
            for seq in range(0, n_chunks * 2 // 3):
                await c.execute(
                    "INSERT INTO live_chunks (session_id, seq, pcm) VALUES (%s, %s, %s)",
                    (sid, seq, pcm[seq * CHUNK : (seq + 1) * CHUNK]),
                )
        for _ in range(100):
            n = conn.execute("SELECT count(*) FROM live_sentences WHERE session_id = %s", (sid,)).fetchone()[0]
            if n >= 1:
                break
            await asyncio.sleep(0.2)
        assert n >= 1
        await _stop(ws, tasks)
        before = conn.execute(
            "SELECT idx, start_ms, end_ms FROM live_sentences WHERE session_id = %s ORDER BY idx", (sid,)
        ).fetchall()
        status = conn.execute("SELECT status FROM procrastinate_jobs WHERE lock = %s", (f"live:{sid}",)).fetchone()[0]
        assert status == "todo", status  # retried (JobAborted on shutdown)
        lost = [m for m in caps.of(sid) if m.get("code") == "worker_lost"]
        assert len(lost) == 1, caps.of(sid)  # the client is told why captions pause
        caps.messages.clear()
        caps.closed.clear()
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as c:
            for seq in range(n_chunks * 2 // 3, n_chunks):
                await c.execute(
                    "INSERT INTO live_chunks (session_id, seq, pcm, is_last) VALUES (%s, %s, %s, %s)",
                    (sid, seq, pcm[seq * CHUNK : (seq + 1) * CHUNK], seq == n_chunks - 1),
                )
        ws, tasks = await _serve(h)
        try:
            await asyncio.wait_for(caps.closed.wait(), 90)
        finally:
            await _stop(ws, tasks)
    after = conn.execute(
        "SELECT idx, start_ms, end_ms FROM live_sentences WHERE session_id = %s ORDER BY idx", (sid,)
    ).fetchall()
    assert after[: len(before)] == before
    assert [a[0] for a in after] == list(range(len(after)))
    # No partial re-sent for a sentence that was already stored.
    resent = [m for m in caps.of(sid) if m.get("mode") == "2pass-online" and m["sentence"] < len(before)]
    assert not resent, resent
    r = row(conn, sid)
    assert r["status"] == "done" and r["text"].lower().count("country") >= 2, r["text"]


@pytest.mark.models
async def test_modes_offline_and_online(database_url, conn, store, tiny_engine, jfk_wav):
    pcm = pcm_of(jfk_wav)
    async with live_harness(database_url, tiny_engine, store) as h, Captions(database_url) as caps:
        ws, tasks = await _serve(h)
        try:
            off = open_session(conn, mode="offline")
            on = open_session(conn, mode="online")
            await asyncio.gather(
                send_chunks(database_url, off, pcm, speed=6), send_chunks(database_url, on, pcm, speed=6)
            )
            for _ in range(300):
                if sum(1 for m in caps.of(off) + caps.of(on) if m.get("is_final")) == 2:
                    break
                await asyncio.sleep(0.2)
        finally:
            await _stop(ws, tasks)
    off_msgs, on_msgs = caps.of(off), caps.of(on)
    assert len(off_msgs) == 1 and off_msgs[0]["mode"] == "offline" and off_msgs[0]["is_end"] is True
    assert "country" in off_msgs[0]["text"].lower()
    assert {m["mode"] for m in on_msgs} == {"online"}
    assert on_msgs[-1]["is_final"] is True and on_msgs[-1]["is_end"] is True
    assert "country" in row(conn, on)["text"].lower()


@pytest.mark.models
async def test_failed_final_still_closes_the_session(database_url, conn, store, tiny_engine, jfk_wav, monkeypatch):
    pcm = pcm_of(jfk_wav)
    async with live_harness(database_url, tiny_engine, store) as h, Captions(database_url) as caps:
        ws, tasks = await _serve(h)

        def boom(*a, **k):
            raise RuntimeError("decoder exploded")

        monkeypatch.setattr(h.runtime.live, "final", boom)
        try:
            sid = open_session(conn)
            await send_chunks(database_url, sid, pcm, speed=8)
            await asyncio.wait_for(caps.closed.wait(), 60)
        finally:
            await _stop(ws, tasks)
    assert caps.of(sid)[-1]["is_final"] is True
    st = conn.execute("SELECT DISTINCT status FROM live_sentences WHERE session_id = %s", (sid,)).fetchall()
    assert st == [("failed",)]
    assert row(conn, sid)["status"] == "done"


@pytest.mark.models
async def test_unrecoverable_session_error_reaches_the_client(database_url, conn, store, tiny_engine, monkeypatch):
    from asr_worker import live

    async def broken(self):
        raise live.SessionError("the session cannot be decoded", "bad_audio")

    monkeypatch.setattr(live.LiveSession, "run", broken)
    async with live_harness(database_url, tiny_engine, store) as h, Captions(database_url) as caps:
        ws, tasks = await _serve(h)
        try:
            sid = open_session(conn)
            await asyncio.wait_for(caps.closed.wait(), 30)
        finally:
            await _stop(ws, tasks)
    assert caps.of(sid) == [{"error": "the session cannot be decoded", "code": "bad_audio"}]
    r = row(conn, sid)
    assert r["status"] == "failed" and r["error"] == "the session cannot be decoded"


@pytest.fixture(scope="session")
def funasr_live_engine(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("funasr")
    from asr_worker.config import Settings
    from asr_worker.engines import load_engine
    from asr_worker.engines.models import fsmn_vad_dir

    from ..support.tiny_paraformer import build_tiny_ct_punc, build_tiny_paraformer, build_tiny_paraformer_streaming

    root = tmp_path_factory.mktemp("live-models")
    settings = Settings(
        engine="funasr",
        funasr_model=str(build_tiny_paraformer(root / "tiny-paraformer")),
        funasr_vad_model=str(fsmn_vad_dir()),
        funasr_punc_model=str(build_tiny_ct_punc(root / "tiny-ct-punc")),
        funasr_streaming_model=str(build_tiny_paraformer_streaming(root / "tiny-paraformer-streaming")),
        device="cpu",
        cpu_threads=2,
    )
    return load_engine(settings)


@pytest.mark.funasr
async def test_funasr_streaming_profile(database_url, conn, store, funasr_live_engine, speech_dir):
    """paraformer-streaming (tiny, random) with a per-session cache for partials, paraformer + punc for finals."""
    from asr_worker.engines.streaming import FunasrStreamingPartials

    assert funasr_live_engine.streaming is not None
    assert funasr_live_engine.models["streaming"].endswith("tiny-paraformer-streaming")
    pcm = pcm_of(speech_dir / "funasr_example_zh.wav", gap_s=1.2, repeat=2)
    async with live_harness(database_url, funasr_live_engine, store) as h, Captions(database_url) as caps:
        ws, tasks = await _serve(h)
        assert isinstance(h.runtime.live.new_partials(), FunasrStreamingPartials)
        try:
            sid = open_session(conn, language="zh")
            last_sent = await send_chunks(database_url, sid, pcm, speed=4.0)
            await asyncio.wait_for(caps.closed.wait(), 120)
        finally:
            await _stop(ws, tasks)
    msgs = caps.of(sid)
    online = [m for m in msgs if m.get("mode") == "2pass-online"]
    assert online and all(m["text"] for m in online)  # random weights: gibberish, but text from its vocabulary
    first_partial = next(t for t, m in caps.messages if m["msg"].get("mode") == "2pass-online")
    assert first_partial < last_sent
    # FunASR semantics: each partial carries the new text; `partial` is the sentence so far.
    by_sentence: dict[int, str] = {}
    for m in online:
        by_sentence[m["sentence"]] = by_sentence.get(m["sentence"], "") + m["text"]
        assert by_sentence[m["sentence"]] == m["partial"]
    finals = [m for m in msgs if m.get("mode") == "2pass-offline" and not m.get("is_final")]
    assert len(finals) >= 2
    assert msgs[-1]["is_final"] is True and msgs[-1]["is_end"] is True
    r = row(conn, sid)
    assert r["status"] == "done" and r["engine"] == "funasr" and r["language"] == "zh", r
    assert conn.execute(
        "SELECT count(*) FROM live_sentences WHERE session_id = %s AND status = 'done'", (sid,)
    ).fetchone()[0] == len(finals)
