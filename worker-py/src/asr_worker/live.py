"""Live captions: ``asr.live_session`` (queue ``live``) and ``asr.finalize_segment`` (queue ``final``).

See docs/CONTRACT.md, "Live streaming (2-pass)". The session job follows the chunks the gateway
writes, runs streaming VAD, sends partial captions and cuts sentences; every sentence's final is a
separate job any worker can run, because the sentence's audio is stored with it.
"""

from __future__ import annotations

import asyncio
import logging
import time

import numpy as np
import procrastinate
import psycopg
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason, JobContext

from . import db
from .audio import SAMPLE_RATE
from .engines.streaming import MS, FinalResult, text_delta
from .metrics import METRICS
from .tasks import Runtime, app
from .text import has_cjk, is_chinese, join_texts, normalize_language, to_simplified

__all__ = ["live_session", "finalize_segment", "LIVE_SESSION", "FINALIZE_SEGMENT", "LiveSession"]

log = logging.getLogger(__name__)

LIVE_SESSION = "asr.live_session"
FINALIZE_SEGMENT = "asr.finalize_segment"
POLL_S = 0.5
KEEP_BEFORE_MS = 1000  # audio kept before an open sentence's start (the VAD looks back ~200 ms)


class SessionError(Exception):
    """An unrecoverable problem with one session: its client gets ``{"error", "code"}``."""

    def __init__(self, message: str, code: str = "live_failed"):
        super().__init__(message)
        self.code = code


def _pcm_to_float(pcm: bytes) -> np.ndarray:
    if len(pcm) % 2:
        pcm = pcm[:-1]
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def _online_mode(mode: str) -> str | None:
    return {"2pass": "2pass-online", "online": "online"}.get(mode)


@app.task(
    name=LIVE_SESSION,
    queue="live",
    pass_context=True,
    retry=procrastinate.RetryStrategy(max_attempts=10, wait=0, retry_exceptions={JobAborted}),
)
async def live_session(context: JobContext, session_id: str) -> dict:
    """Follow one live session from its first chunk to its closing message."""
    rt: Runtime = context.additional_context["runtime"]
    if rt.live is None:
        raise SessionError("This worker cannot serve live sessions (no streaming VAD).", "no_live_worker")
    claim = await db.live_claim(rt.pool, session_id, rt.worker_id)
    if claim is None:
        log.info("Live session %s is closed or gone: nothing to do", session_id)
        return {"session_id": session_id, "skipped": True}
    if claim.attempts > rt.settings.max_attempts + 2:
        await db.live_fail(rt.pool, session_id, f"Gave up after {claim.attempts - 1} attempts.", "live_failed")
        return {"session_id": session_id, "status": "failed"}
    await rt.registry.job_started(session_id)
    counted = False
    try:
        result = await LiveSession(rt, claim).run()
        counted = result.get("status") == "done"
        return result
    except (asyncio.CancelledError, JobAborted) as exc:
        reason = context.abort_reason()
        if reason == AbortReason.SHUTDOWN or reason is None:
            log.warning("Worker stopping: live session %s goes back to the queue (it resumes elsewhere)", session_id)
            # Tell the client (through the gateway) why captions pause; a worker that takes the job next
            # resumes from the stored chunks and captions continue.
            notice = {
                "error": "the worker transcribing this session is stopping; another worker resumes it and "
                "audio received so far is kept",
                "code": "worker_lost",
                "session_id": session_id,
                "task_id": session_id,
            }
            await asyncio.shield(db.best_effort(db.notify_caption(rt.pool, session_id, notice)))
        raise JobAborted() from exc
    except SessionError as exc:
        log.warning("Live session %s failed: %s", session_id, exc)
        await db.best_effort(db.live_fail(rt.pool, session_id, str(exc), exc.code))
        return {"session_id": session_id, "status": "failed", "error": str(exc)}
    except Exception as exc:
        log.exception("Live session %s failed unexpectedly", session_id)
        msg = f"The worker failed on this live session: {exc}"
        await db.best_effort(db.live_fail(rt.pool, session_id, msg, "live_failed"))
        return {"session_id": session_id, "status": "failed", "error": str(exc)}
    finally:
        try:
            await asyncio.shield(rt.registry.job_finished(session_id, rtf=None, counted=counted))
        except Exception as exc:
            log.warning("Could not update the registry after %s: %s", session_id, exc)


class LiveSession:
    """One session's run: chunks in order → VAD → partials and sentences → closing."""

    def __init__(self, rt: Runtime, claim: db.LiveClaim):
        self.rt = rt
        self.claim = claim
        self.sid = claim.session_id
        self.mode = claim.mode
        self.cutter = rt.live.vad.new_cutter()
        self.partials = rt.live.new_partials() if _online_mode(claim.mode) else None
        self.language = normalize_language(claim.language)
        self.next_seq = 0
        self.audio = bytearray()  # PCM16 from self.audio_start_ms on
        self.audio_start_ms = 0
        self.total_ms = 0
        self.open_start: int | None = None
        self.idx = 0  # next sentence index
        self.resume_below = claim.sentences  # sentences [0, resume_below) are stored already
        self.partial_text = ""  # the open sentence's whole partial, as last sent
        self.model_s = 0.0
        self.partials_sent = 0
        self.last_chunk_at = time.monotonic()  # when the newest chunk was read (caption latency)

    # -- audio bookkeeping ------------------------------------------------------------------

    def _slice(self, start_ms: int, end_ms: int) -> bytes:
        a = max(0, (start_ms - self.audio_start_ms) * MS * 2)
        b = max(a, (end_ms - self.audio_start_ms) * MS * 2)
        return bytes(self.audio[a:b])

    def _trim(self) -> None:
        keep_from = (self.open_start if self.open_start is not None else self.total_ms) - KEEP_BEFORE_MS
        drop_ms = keep_from - self.audio_start_ms
        if drop_ms > 5000:
            del self.audio[: drop_ms * MS * 2]
            self.audio_start_ms += drop_ms

    def _resumed(self, idx: int) -> bool:
        return idx < self.resume_below

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> dict:
        settings = self.rt.settings
        log.info(
            "Live session %s (%s, attempt %d%s)",
            self.sid,
            self.mode,
            self.claim.attempts,
            f", resuming after {self.resume_below} stored sentences" if self.resume_below else "",
        )
        async with await psycopg.AsyncConnection.connect(
            settings.database_url, autocommit=True, application_name="asr-worker-live"
        ) as conn:
            await conn.execute(f"LISTEN {db.CHUNKS_CHANNEL}")
            last = False
            while not last:
                rows = await db.live_fetch_chunks(conn, self.sid, self.next_seq)
                rows = [r for i, r in enumerate(rows) if r[0] == self.next_seq + i]  # contiguous only
                if not rows:
                    await self._wait_chunk(conn)
                    continue
                for seq, pcm, is_last in rows:
                    await self._chunk(pcm, is_last)
                    self.next_seq = seq + 1
                    if is_last:
                        last = True
                        break
                if not last and self.partials is not None and self.open_start is not None:
                    pending = await db.live_has_chunk(conn, self.sid, self.next_seq)
                    await self._partial(pending)
        return await self._close()

    async def _wait_chunk(self, conn: psycopg.AsyncConnection) -> None:
        """Until a chunk of this session is announced, or POLL_S passes (the poll fallback)."""
        try:
            async for n in conn.notifies(timeout=POLL_S):
                if self.sid in n.payload:
                    return
        except psycopg.OperationalError:
            raise

    async def _chunk(self, pcm: bytes, is_last: bool) -> None:
        self.last_chunk_at = time.monotonic()
        samples = _pcm_to_float(pcm)
        self.audio += pcm[: len(samples) * 2]
        self.total_ms += len(samples) // MS
        events = await asyncio.to_thread(self.cutter.feed, samples, is_final=is_last)
        feed_partials = self.partials is not None and hasattr(self.partials, "cache")
        if feed_partials and (self.open_start is not None or events) and not self._resumed(self.idx):
            await asyncio.to_thread(self.partials.feed, samples, is_final=is_last)
        for ev in events:
            if ev.kind == "start":
                self.open_start = ev.ms
            elif ev.kind == "end" and self.open_start is not None:
                await self._sentence(self.open_start, ev.ms)
        self._trim()

    async def _partial(self, pending: bool, force: bool = False) -> None:
        if self._resumed(self.idx) or self.open_start is None:
            return
        sentence = _pcm_to_float(self._slice(self.open_start, self.total_ms))
        if not self.language and self.idx > 0:
            self.language = normalize_language(await db.live_language(self.rt.pool, self.sid))
        out = await asyncio.to_thread(
            self.partials.poll, sentence, language=self.language, pending=pending, force=force
        )
        if out is None:
            return
        text, model_s = out
        self.model_s += model_s
        detected = getattr(self.partials, "detected", None)
        if not self.language and detected and detected[1] >= 0.8 and len(sentence) >= SAMPLE_RATE * 1.5:
            # Detected confidently on the first sentence: keep it, so its final needs no second detection.
            self.language = await db.live_keep_language(self.rt.pool, self.sid, detected[0])
        delta = text_delta(self.partial_text, text)
        self.partial_text = text
        if not delta:
            return
        msg = {
            "mode": _online_mode(self.mode),
            "wav_name": self.claim.wav_name,
            "text": delta,
            "is_final": False,
            "session_id": self.sid,
            "task_id": self.sid,
            "sentence": self.idx,
            "start_ms": self.open_start,
            "partial": text,
            "audio_end_ms": self.total_ms,
            "model_ms": round(model_s * 1000, 1),
        }
        await db.notify_caption(self.rt.pool, self.sid, msg)
        METRICS.caption_latency.labels("partial").observe(time.monotonic() - self.last_chunk_at)
        self.partials_sent += 1

    async def _sentence(self, start_ms: int, end_ms: int) -> None:
        idx = self.idx
        self.idx += 1
        self.open_start = None
        partial = self.partial_text
        self.partial_text = ""
        if self.partials is not None:
            self.partials.reset()
        if end_ms - start_ms < 100:
            self.idx -= 1  # a blip: no sentence
            return
        if self._resumed(idx):
            return
        pcm = self._slice(start_ms, end_ms)
        added = await db.live_add_sentence(self.rt.pool, self.sid, idx, start_ms, end_ms, pcm, partial)
        log.debug("Session %s sentence %d: %d–%d ms%s", self.sid, idx, start_ms, end_ms, "" if added else " (exists)")

    async def _close(self) -> dict:
        settings = self.rt.settings
        deadline = time.monotonic() + settings.live_final_wait_s
        while time.monotonic() < deadline:
            if await db.live_pending_sentences(self.rt.pool, self.sid) == 0:
                break
            await asyncio.sleep(0.2)
        else:
            log.warning(
                "Live session %s: finals still pending after %.0f s; closing with partials",
                self.sid,
                settings.live_final_wait_s,
            )
        rows = await db.live_sentences(self.rt.pool, self.sid)
        segments, texts = [], []
        for _idx, start_ms, end_ms, final, _status, partial in rows:
            text = (final if final is not None else partial or "").strip()
            if not text:
                continue
            texts.append(text)
            segments.append((round(start_ms / 1000, 3), round(end_ms / 1000, 3), text))
        full = join_texts(texts)
        language = normalize_language(await db.live_language(self.rt.pool, self.sid))
        if language is None and full:
            language = "zh" if has_cjk(full) else None
        if is_chinese(language):
            full = to_simplified(full)
        closing_mode = {"2pass": "2pass-offline", "online": "online", "offline": "offline"}[self.mode]
        closing = {
            "mode": closing_mode,
            "wav_name": self.claim.wav_name,
            "text": full if self.mode == "offline" else "",
            "is_final": True,
            "is_end": True,
            "session_id": self.sid,
            "task_id": self.sid,
            "sentences": len(rows),
            "audio_end_ms": self.total_ms,
        }
        if self.mode == "offline":
            closing["stamp_sents"] = [
                {"text_seg": t, "punc": "", "start": int(s * 1000), "end": int(e * 1000), "ts_list": []}
                for s, e, t in segments
            ]
        engine = self.rt.engine
        saved = await db.live_close(
            self.rt.pool,
            self.sid,
            self.claim.attempts,
            text=full,
            language=language,
            duration_s=self.total_ms / 1000,
            model=getattr(engine, "model_name", ""),
            engine=getattr(engine, "name", ""),
            engine_s=self.model_s,
            worker_id=self.rt.worker_id,
            segments=segments,
            closing=closing,
        )
        if not saved:
            log.warning("Live session %s attempt %d is stale: closed elsewhere", self.sid, self.claim.attempts)
            return {"session_id": self.sid, "status": "stale"}
        log.info(
            "Live session %s closed: %.1f s audio, %d sentences, %d partials",
            self.sid,
            self.total_ms / 1000,
            len(rows),
            self.partials_sent,
        )
        return {"session_id": self.sid, "status": "done", "sentences": len(rows)}


@app.task(
    name=FINALIZE_SEGMENT,
    queue="final",
    pass_context=True,
    retry=procrastinate.RetryStrategy(max_attempts=10, wait=0, retry_exceptions={JobAborted}),
)
async def finalize_segment(context: JobContext, session_id: str, idx: int) -> dict:
    """Decode one stored sentence with the batch model; its 2pass-offline caption replaces the partial."""
    rt: Runtime = context.additional_context["runtime"]
    s = await db.live_sentence_for_final(rt.pool, session_id, idx)
    fetched_at = time.monotonic()
    if s is None or s.status != "pending":
        return {"session_id": session_id, "idx": idx, "skipped": True}
    language = normalize_language(s.language)
    samples = _pcm_to_float(s.pcm)
    try:
        if rt.live is None:
            raise RuntimeError("no engine")
        fut = asyncio.ensure_future(asyncio.to_thread(rt.live.final, samples, language=language, hotwords=s.hotwords))
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        res: FinalResult = await fut
    except asyncio.CancelledError:
        raise JobAborted() from None
    except Exception as exc:
        log.exception("Final of sentence %d of live session %s failed", idx, session_id)
        await db.live_finish_sentence(rt.pool, session_id, idx, text=None, status="failed", caption=None)
        return {"session_id": session_id, "idx": idx, "status": "failed", "error": str(exc)}
    if language is None and res.language:
        kept = await db.live_keep_language(rt.pool, session_id, res.language)
        if kept != res.language:
            log.debug("Session %s keeps language %s (this sentence looked like %s)", session_id, kept, res.language)
    text = res.text.strip()
    caption = None
    if s.mode == "2pass":
        caption = {
            "mode": "2pass-offline",
            "wav_name": s.wav_name,
            "text": text,
            "is_final": False,
            "stamp_sents": [
                {
                    "text_seg": seg.text,
                    "punc": "",
                    "start": s.start_ms + int(seg.start * 1000),
                    "end": s.start_ms + int(seg.end * 1000),
                    "ts_list": [],
                }
                for seg in res.segments
            ],
            "session_id": session_id,
            "task_id": session_id,
            "sentence": idx,
            "start_ms": s.start_ms,
            "end_ms": s.end_ms,
            "audio_end_ms": s.end_ms,
            "model_ms": round(res.model_s * 1000, 1),
        }
        if res.timestamp:
            caption["timestamp"] = str([[s.start_ms + a, s.start_ms + b] for a, b in res.timestamp])
    await db.live_finish_sentence(rt.pool, session_id, idx, text=text, status="done", caption=caption)
    if caption is not None:
        METRICS.caption_latency.labels("final").observe(s.age_s + time.monotonic() - fetched_at)
    return {"session_id": session_id, "idx": idx, "status": "done"}
