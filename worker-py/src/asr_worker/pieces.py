"""Long files in pieces: the split step of ``asr.transcribe_file`` and the ``asr.transcribe_piece`` task.

A file longer than ASR_SPLIT_MINUTES is cut at silences (``split.py``) into pieces that every batch
worker takes in parallel; the worker that finishes the last piece merges them. The flow, and what
guards each step, is in docs/CONTRACT.md ("Long files in pieces").
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading

import numpy as np
import procrastinate
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason, JobContext

from . import db, split
from .audio import SAMPLE_RATE, Audio, AudioDecodeError, decode_range
from .engines import Aborted
from .resilience import retry_transient
from .storage import AudioNotFoundError, InvalidKeyError
from .tasks import Runtime, app, run_reporting
from .text import normalize_language

__all__ = ["LongAudio", "needs_split", "split_file", "transcribe_piece", "PIECE_TASK"]

log = logging.getLogger(__name__)

PIECE_TASK = db.PIECE_TASK


@dataclasses.dataclass(frozen=True)
class LongAudio:
    """What the decode step of ``asr.transcribe_file`` hands back when the file is to be split."""

    audio: Audio


def needs_split(settings, duration_s: float) -> bool:
    """Whether a file this long is cut into pieces (ASR_SPLIT_MINUTES; 0 turns splitting off)."""
    minutes = getattr(settings, "split_minutes", 0) or 0
    return minutes > 0 and duration_s > minutes * 60


def plan(samples: np.ndarray, pieces: int, finder: split.SilenceFinder) -> tuple[list[split.Piece], int]:
    """Cut ``samples`` into ``pieces`` pieces at silences; also return how many cuts found no silence."""
    duration = len(samples) / SAMPLE_RATE
    cuts, blind = split.plan_cuts(duration, pieces, lambda lo, hi: finder.gaps(samples, lo, hi))
    return split.pieces_from_cuts(cuts, len(samples)), blind


_finders: dict[int, split.SilenceFinder] = {}
_finders_lock = threading.Lock()


def _finder(rt: Runtime) -> split.SilenceFinder:
    with _finders_lock:
        f = _finders.get(id(rt.engine))
        if f is None:
            f = _finders[id(rt.engine)] = split.SilenceFinder.for_engine(rt.engine, rt.settings.offline_vad_model)
        return f


async def split_file(rt: Runtime, claim: db.Claim, audio: Audio, should_abort) -> dict:
    """Cut a long file into pieces and defer their jobs; the transcription stays 'processing'."""
    task_id = claim.task_id
    duration = audio.duration_s
    workers = await db.active_batch_workers(rt.pool, rt.settings.stalled_after_s)
    n = split.piece_count(duration, rt.settings.split_minutes * 60, workers)

    def work():
        if should_abort():
            raise Aborted()
        finder = _finder(rt)
        return plan(audio.samples, n, finder) + (finder.method,)

    fut = asyncio.ensure_future(asyncio.to_thread(work))
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    pieces, blind, method = await fut
    ranges = [(p.start, p.end) for p in pieces]
    ids = await retry_transient(
        lambda: db.split_transcription(rt.pool, task_id, claim.attempts, duration, ranges), f"splitting {task_id}"
    )
    if ids is None:
        log.info("Transcription %s changed while being split (canceled or taken over): pieces discarded", task_id)
        return {"task_id": task_id, "status": "stale"}
    log.info(
        "Split %s (%.1f s) into %d pieces for %d batch worker(s) at %s s (silences by %s%s)",
        task_id,
        duration,
        len(pieces),
        workers,
        ", ".join(f"{p.start_s:.2f}" for p in pieces[1:]),
        method,
        f"; {blind} cut(s) found no silence" if blind else "",
    )
    return {"task_id": task_id, "status": "split", "pieces": len(pieces)}


@app.task(
    name=PIECE_TASK,
    queue="batch",
    pass_context=True,
    retry=procrastinate.RetryStrategy(max_attempts=10, wait=0, retry_exceptions={JobAborted}),
)
async def transcribe_piece(context: JobContext, task_id: str, generation: int, idx: int, start: int, end: int) -> dict:
    """Transcribe one piece of a long file; the worker finishing the last piece merges them all."""
    rt: Runtime = context.additional_context["runtime"]
    claim = await retry_transient(
        lambda: db.claim_piece(rt.pool, task_id, generation, idx, rt.worker_id), f"starting piece {idx} of {task_id}"
    )
    if claim is None:
        log.info("Piece %d of %s is no longer wanted (canceled, deleted or split again): skipped", idx, task_id)
        return {"task_id": task_id, "piece": idx, "skipped": True}
    if (claim.start_sample, claim.end_sample) != (start, end):
        log.warning("Piece %d of %s: job range differs from the row's; using the row's", idx, task_id)
    if claim.attempts > rt.settings.max_attempts:
        msg = (
            f"Gave up after {claim.attempts - 1} attempts at piece {idx + 1}: the worker processing it "
            "stopped each time before finishing it."
        )
        await db.fail_transcription(rt.pool, task_id, generation, msg)
        return {"task_id": task_id, "piece": idx, "status": "failed"}
    await rt.registry.job_started(task_id)
    counted, rtf = False, None
    try:
        result = await _run_piece(rt, context, claim)
        counted, rtf = result.get("status") in ("stored", "done"), result.get("rtf")
        return result
    finally:
        try:
            await asyncio.shield(rt.registry.job_finished(task_id, rtf=rtf, counted=counted))
        except Exception as exc:
            log.warning("Could not update the registry after piece %d of %s: %s", idx, task_id, exc)


class _Permanent(Exception):
    """An input error no retry can fix: the transcription fails with this message."""


async def _run_piece(rt: Runtime, context: JobContext, claim: db.PieceClaim) -> dict:
    task_id, idx = claim.task_id, claim.idx
    abort = threading.Event()
    progress = {"value": 0.0}

    def should_abort() -> bool:
        return abort.is_set() or context.should_abort()

    def work():
        if not claim.audio_key:
            raise _Permanent("The transcription has no audio file.")
        try:
            with rt.storage.open(claim.audio_key, task_id) as f:
                audio = decode_range(f, claim.start_sample, claim.end_sample)
        except (AudioDecodeError, InvalidKeyError, AudioNotFoundError) as exc:
            raise _Permanent(str(exc)) from exc
        if should_abort():
            raise Aborted()
        return rt.engine.transcribe(
            audio.samples,
            language=normalize_language(claim.language_requested),
            hotwords=claim.hotwords,
            progress=lambda p: progress.__setitem__("value", p),
            should_abort=should_abort,
        )

    try:
        transcript = await run_reporting(
            work, progress, lambda p: db.best_effort(db.set_piece_progress(rt.pool, claim, p))
        )
    except _Permanent as exc:
        log.warning("Piece %d of %s failed: %s", idx, task_id, exc)
        await db.fail_transcription(rt.pool, task_id, claim.generation, str(exc))
        return {"task_id": task_id, "piece": idx, "status": "failed", "error": str(exc)}
    except (asyncio.CancelledError, Aborted) as exc:
        abort.set()
        reason = context.abort_reason()
        if reason == AbortReason.SHUTDOWN or (reason is None and isinstance(exc, asyncio.CancelledError)):
            log.warning("Worker stopping: piece %d of %s goes back to the queue", idx, task_id)
            await asyncio.shield(db.best_effort(db.requeue_piece(rt.pool, claim)))
        else:
            log.info("Piece %d of %s aborted on request", idx, task_id)
        raise JobAborted() from exc
    except Exception as exc:
        log.exception("Piece %d of %s failed unexpectedly", idx, task_id)
        await db.best_effort(
            db.fail_transcription(rt.pool, task_id, claim.generation, f"The worker failed on piece {idx + 1}: {exc}")
        )
        raise

    try:
        state, detail = await _finish(rt, claim, transcript)
    except Exception as exc:
        log.exception("Piece %d of %s could not be stored or merged", idx, task_id)
        await db.best_effort(
            db.fail_transcription(rt.pool, task_id, claim.generation, f"Merging the pieces failed: {exc}")
        )
        raise
    piece_s = (claim.end_sample - claim.start_sample) / SAMPLE_RATE
    if state == "stale":
        log.warning(
            "Piece %d of %s attempt %d is stale (recovered elsewhere, canceled or split again): result discarded",
            idx,
            task_id,
            claim.attempts,
        )
        return {"task_id": task_id, "piece": idx, "status": "stale"}
    log.info(
        "Transcribed piece %d of %s: %.1f s at %.1f s in %.1f s (RTF %.3f, %d segments)",
        idx,
        task_id,
        piece_s,
        claim.start_sample / SAMPLE_RATE,
        transcript.engine_s,
        transcript.rtf or 0.0,
        len(transcript.segments),
    )
    if state == "merged":
        log.info(
            "Merged %s: %.1f s audio from %d pieces by %s, %d segments",
            task_id,
            detail.duration_s,
            detail.pieces,
            ", ".join(detail.workers),
            len(detail.segments),
        )
        status = "done"
    else:
        done, total = detail
        status = "stored"
        log.info("%s: %d of %d pieces done", task_id, done, total)
    return {
        "task_id": task_id,
        "piece": idx,
        "status": status,
        "rtf": transcript.rtf,
        "audio_s": piece_s,
        "engine": transcript.engine,
    }


def _merge_rows(rows) -> split.Merged:
    results = []
    for idx, start, end, segments, language, model, engine, engine_s, worker in rows:
        if isinstance(segments, str):
            segments = json.loads(segments)
        results.append(
            split.PieceResult(
                idx=idx,
                start=int(start),
                end=int(end),
                segments=[(float(s), float(e), str(t)) for s, e, t in segments],
                language=language,
                model=model,
                engine=engine,
                engine_s=float(engine_s or 0.0),
                worker=worker,
            )
        )
    return split.merge_pieces(results)


async def _finish(rt: Runtime, claim: db.PieceClaim, transcript):
    """Store the piece (and merge, if it is the last one), retrying while the database is away."""
    return await retry_transient(
        lambda: db.finish_piece(
            rt.pool,
            claim,
            text=transcript.text,
            segments=[(s.start, s.end, s.text) for s in transcript.segments],
            language=transcript.language,
            model=transcript.model,
            engine=transcript.engine,
            engine_s=transcript.engine_s,
            merge=_merge_rows,
        ),
        f"saving piece {claim.idx} of {claim.task_id}",
    )
