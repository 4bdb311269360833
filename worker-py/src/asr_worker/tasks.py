"""Procrastinate app and tasks. ``asr.transcribe_file`` follows docs/CONTRACT.md's worker flow."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading

import procrastinate
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason, JobContext
from psycopg_pool import AsyncConnectionPool

from . import db
from .audio import AudioDecodeError, decode_audio
from .config import Settings
from .engines import Aborted, Engine
from .registry import Registry
from .resilience import retry_transient
from .storage import AudioNotFoundError, InvalidKeyError, Storage
from .text import normalize_language

__all__ = ["app", "make_app", "Runtime", "transcribe_file", "TRANSCRIBE_FILE", "PROGRESS_INTERVAL_S"]

log = logging.getLogger(__name__)

TRANSCRIBE_FILE = "asr.transcribe_file"
PROGRESS_INTERVAL_S = 0.5

app = procrastinate.App(connector=procrastinate.PsycopgConnector())


def make_app(database_url: str, *, min_size: int = 2, max_size: int = 10) -> procrastinate.App:
    """The task app bound to ``database_url`` (tasks are shared with the module-level ``app``)."""
    from . import (
        live,  # noqa: F401  (registers asr.live_session and asr.finalize_segment)
        pieces,  # noqa: F401  (registers asr.transcribe_piece)
    )

    return app.with_connector(
        procrastinate.PsycopgConnector(
            conninfo=database_url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"application_name": "asr-worker"},
        )
    )


@dataclasses.dataclass
class Runtime:
    """What a running worker process shares with its jobs: models, store, registry, database."""

    settings: Settings
    engine: Engine
    storage: Storage
    registry: Registry
    pool: AsyncConnectionPool
    live: object | None = None  # engines.streaming.LiveModels when this worker serves live/final

    @property
    def worker_id(self) -> str:
        return self.registry.worker_id


async def run_reporting(work, progress: dict, report):
    """Run ``work`` in a thread and return its result (or raise its exception); meanwhile, every
    PROGRESS_INTERVAL_S, ``await report(p)`` when ``progress["value"]`` grew (p at most 0.99)."""
    fut = asyncio.ensure_future(asyncio.to_thread(work))
    # If this coroutine is cancelled, the thread still ends (at its next abort check): retrieve its outcome.
    fut.add_done_callback(lambda f: f.cancelled() or f.exception())
    reported = 0.0
    while True:
        done, _ = await asyncio.wait({fut}, timeout=PROGRESS_INTERVAL_S)
        if done:
            return fut.result()
        if progress["value"] > reported:
            reported = progress["value"]
            await report(min(reported, 0.99))


class _Permanent(Exception):
    """An input error no retry can fix: the row fails with this message."""


@app.task(
    name=TRANSCRIBE_FILE,
    queue="batch",
    pass_context=True,
    retry=procrastinate.RetryStrategy(max_attempts=10, wait=0, retry_exceptions={JobAborted}),
)
async def transcribe_file(context: JobContext, task_id: str) -> dict:
    """Transcribe one uploaded file and store its text and segments."""
    runtime: Runtime = context.additional_context["runtime"]
    return await _transcribe(runtime, context, task_id)


async def _transcribe(rt: Runtime, context: JobContext, task_id: str) -> dict:
    claim = await retry_transient(
        lambda: db.claim_transcription(rt.pool, task_id, rt.worker_id), f"starting transcription {task_id}"
    )
    if claim is None:
        log.info("Transcription %s is no longer queued (canceled or deleted): nothing to do", task_id)
        return {"task_id": task_id, "skipped": True}
    if claim.attempts > rt.settings.max_attempts:
        msg = (
            f"Gave up after {claim.attempts - 1} attempts: the worker processing this file stopped "
            "each time before finishing it."
        )
        await db.fail_transcription(rt.pool, task_id, claim.attempts, msg)
        return {"task_id": task_id, "status": "failed"}

    await rt.registry.job_started(task_id)
    counted, rtf = False, None
    try:
        result = await _run(rt, context, claim)
        counted, rtf = result.get("status") == "done", result.get("rtf")
        return result
    finally:
        try:
            await asyncio.shield(rt.registry.job_finished(task_id, rtf=rtf, counted=counted))
        except Exception as exc:
            log.warning("Could not update the registry after %s: %s", task_id, exc)


async def _run(rt: Runtime, context: JobContext, claim: db.Claim) -> dict:
    from . import pieces  # registers asr.transcribe_piece too (imported by make_app)

    task_id = claim.task_id
    abort = threading.Event()
    progress = {"value": 0.0}

    def should_abort() -> bool:
        return abort.is_set() or context.should_abort()

    def on_progress(p: float) -> None:
        progress["value"] = p

    def work():
        if not claim.audio_key:
            raise _Permanent("The transcription has no audio file.")
        try:
            with rt.storage.open(claim.audio_key, task_id) as f:
                audio = decode_audio(f)
        except (AudioDecodeError, InvalidKeyError, AudioNotFoundError) as exc:
            raise _Permanent(str(exc)) from exc
        if should_abort():
            raise Aborted()
        if pieces.needs_split(rt.settings, audio.duration_s):
            return pieces.LongAudio(audio)
        return rt.engine.transcribe(
            audio.samples,
            language=normalize_language(claim.language_requested),
            hotwords=claim.hotwords,
            progress=on_progress,
            should_abort=should_abort,
        )

    def report(p: float):
        return db.best_effort(db.set_progress(rt.pool, task_id, claim.attempts, p))

    try:
        transcript = await run_reporting(work, progress, report)
        if isinstance(transcript, pieces.LongAudio):  # long file: cut into pieces that every batch worker takes
            return await pieces.split_file(rt, claim, transcript.audio, should_abort)
    except _Permanent as exc:
        log.warning("Transcription %s failed: %s", task_id, exc)
        reason = str(exc)
        await retry_transient(
            lambda: db.fail_transcription(rt.pool, task_id, claim.attempts, reason), f"failing transcription {task_id}"
        )
        return {"task_id": task_id, "status": "failed", "error": str(exc)}
    except (asyncio.CancelledError, Aborted) as exc:
        abort.set()
        reason = context.abort_reason()
        if reason == AbortReason.SHUTDOWN or (reason is None and isinstance(exc, asyncio.CancelledError)):
            log.warning("Worker stopping: transcription %s goes back to the queue", task_id)
            await asyncio.shield(db.best_effort(db.requeue_transcription(rt.pool, task_id, claim.attempts)))
        else:
            log.info("Transcription %s aborted on request", task_id)
        raise JobAborted() from exc
    except Exception as exc:
        log.exception("Transcription %s failed unexpectedly", task_id)
        await db.best_effort(db.fail_transcription(rt.pool, task_id, claim.attempts, f"The worker failed: {exc}"))
        raise

    saved = await retry_transient(
        lambda: db.save_result(
            rt.pool,
            task_id,
            claim.attempts,
            text=transcript.text,
            language=transcript.language,
            duration_s=transcript.duration_s,
            model=transcript.model,
            engine=transcript.engine,
            rtf=transcript.rtf,
            engine_s=transcript.engine_s,
            segments=[(s.start, s.end, s.text) for s in transcript.segments],
        ),
        f"saving transcription {task_id}",
    )
    if not saved:
        log.warning(
            "Transcription %s attempt %d is stale (recovered elsewhere or canceled): result discarded",
            task_id,
            claim.attempts,
        )
        return {"task_id": task_id, "status": "stale"}
    log.info(
        "Transcribed %s: %.1f s audio in %.1f s (RTF %.3f, %s/%s, %d segments)",
        task_id,
        transcript.duration_s,
        transcript.engine_s,
        transcript.rtf or 0.0,
        transcript.engine,
        transcript.model,
        len(transcript.segments),
    )
    return {
        "task_id": task_id,
        "status": "done",
        "rtf": transcript.rtf,
        "audio_s": transcript.duration_s,
        "engine": transcript.engine,
    }
