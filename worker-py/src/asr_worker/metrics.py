"""Prometheus metrics of one worker process, served on ``ASR_METRICS_ADDR`` (``/metrics``).

The metrics live in a registry of their own (no global state), so tests can build several.
Queue depths are read from ``procrastinate_jobs`` by a background loop every
``QUEUE_POLL_S`` seconds (one grouped count over the ``todo``/``doing`` jobs), not on each scrape.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

__all__ = ["WorkerMetrics", "parse_addr", "start", "job_middleware", "METRICS", "QUEUE_POLL_S"]

log = logging.getLogger(__name__)

QUEUE_POLL_S = 5.0
QUEUES = ("batch", "live", "final")
DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RTF_BUCKETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30)


def parse_addr(value: str) -> tuple[str, int] | None:
    """``host:port`` (or ``:port``, or ``port``) → (host, port); ``0``/``off``/``none``/empty → None."""
    v = (value or "").strip()
    if v.lower() in ("", "0", "off", "none", "false", "no"):
        return None
    host, sep, port = v.rpartition(":")
    if not sep:
        host, port = "", v
    host = host.strip("[]") or "0.0.0.0"
    try:
        n = int(port)
    except ValueError:
        raise ValueError(f"ASR_METRICS_ADDR must be host:port or off, not {value!r}.") from None
    if not 0 <= n <= 65535:
        raise ValueError(f"ASR_METRICS_ADDR port must be 0..65535, not {n}.")
    return host, n


class WorkerMetrics:
    """Every metric a worker exports. Methods are safe to call from any thread."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.info = Gauge(
            "asr_worker_info",
            "This worker: its id, engine and device (value 1).",
            ["worker", "engine", "device"],
            registry=r,
        )
        self.jobs = Counter(
            "asr_worker_jobs",
            "Jobs run by this worker, by task and outcome (done, failed, requeued, aborted, skipped, stale, error).",
            ["task", "outcome"],
            registry=r,
        )
        self.job_duration = Histogram(
            "asr_worker_job_duration_seconds",
            "Wall time of each job run by this worker, by task.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.audio_seconds = Counter(
            "asr_worker_audio_seconds", "Seconds of audio transcribed by file jobs.", registry=r
        )
        self.rtf = Histogram(
            "asr_worker_rtf",
            "Real-time factor of each transcribed file (engine time / audio duration).",
            ["engine"],
            buckets=RTF_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "asr_worker_errors",
            "Errors by kind (database_unavailable, database, bad_audio, engine, live_session, final, registry).",
            ["kind"],
            registry=r,
        )
        self.live_sessions = Gauge(
            "asr_worker_live_sessions", "Live sessions this worker is transcribing now.", registry=r
        )
        self.caption_latency = Histogram(
            "asr_worker_caption_latency_seconds",
            "Worker-side caption latency: partial = from reading the "
            "newest audio chunk it covers to sending it; final = from the sentence's end being stored to its "
            "corrected text being sent.",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "asr_worker_queue_depth",
            "Jobs in each Procrastinate queue by status (todo, doing), as this "
            f"worker last read them (every {QUEUE_POLL_S:.0f} s).",
            ["queue", "status"],
            registry=r,
        )
        self.queue_poll_errors = Counter(
            "asr_worker_queue_poll_errors", "Failed reads of the queue depths.", registry=r
        )
        for q in QUEUES:
            for st in ("todo", "doing"):
                self.queue_depth.labels(q, st).set(0)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.address: tuple[str, int] | None = None

    # -- recording -----------------------------------------------------------------------------

    def job(self, task: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(task, outcome).inc()
        self.job_duration.labels(task).observe(max(0.0, seconds))

    def transcribed(self, engine: str, audio_s: float, rtf: float | None) -> None:
        if audio_s > 0:
            self.audio_seconds.inc(audio_s)
        if rtf is not None and rtf >= 0:
            self.rtf.labels(engine or "unknown").observe(rtf)

    def error(self, kind: str) -> None:
        self.errors.labels(kind).inc()

    # -- serving -------------------------------------------------------------------------------

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve /metrics on host:port in a daemon thread; returns the bound address."""
        self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.address = self._server.server_address[:2]
        return self.address

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    async def poll_queues(self, pool, interval_s: float = QUEUE_POLL_S) -> None:
        """Refresh the queue depths from ``procrastinate_jobs`` every ``interval_s`` until cancelled."""
        warned = False
        while True:
            try:
                async with pool.connection(timeout=5) as conn:
                    cur = await conn.execute(
                        "SELECT queue_name, status::text, count(*) FROM procrastinate_jobs "
                        "WHERE status IN ('todo', 'doing') GROUP BY 1, 2"
                    )
                    rows = await cur.fetchall()
                seen = {(q, st) for q in QUEUES for st in ("todo", "doing")}
                counts = {(q, st): n for q, st, n in rows}
                for key in seen | set(counts):
                    self.queue_depth.labels(*key).set(counts.get(key, 0))
                warned = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.queue_poll_errors.inc()
                if not warned:
                    log.warning("Metrics: cannot read the queue depths: %s", exc)
                    warned = True
            await asyncio.sleep(interval_s)


_FAILED_KIND = {
    "asr.transcribe_file": "bad_audio",
    "asr.transcribe_piece": "bad_audio",
    "asr.live_session": "live_session",
    "asr.finalize_segment": "final",
}


async def job_middleware(call_next, context, worker):
    """Procrastinate worker middleware: times every job and counts its outcome (and live sessions)."""
    from procrastinate.job_context import AbortReason

    m = METRICS
    task = context.job.task_name
    live = task == "asr.live_session"
    t0 = time.monotonic()
    if live:
        m.live_sessions.inc()
    try:
        result = await call_next()
    except BaseException as exc:
        reason = context.abort_reason()
        if reason == AbortReason.USER_REQUEST:
            outcome = "aborted"
        elif reason == AbortReason.SHUTDOWN or type(exc).__name__ in ("JobAborted", "CancelledError"):
            outcome = "requeued"
        else:
            outcome = "error"
            m.error("database_unavailable" if _transient(exc) else "task_error")
        m.job(task, outcome, time.monotonic() - t0)
        raise
    finally:
        if live:
            m.live_sessions.dec()
    outcome = "done"
    if isinstance(result, dict):
        if result.get("skipped"):
            outcome = "skipped"
        else:
            outcome = str(result.get("status") or "done")
        if outcome == "failed":
            m.error(_FAILED_KIND.get(task, "task_failed"))
        piece_done = task == "asr.transcribe_piece" and outcome in ("stored", "merged", "done")
        if (task == "asr.transcribe_file" and outcome == "done") or piece_done:
            m.transcribed(str(result.get("engine") or ""), float(result.get("audio_s") or 0), result.get("rtf"))
    m.job(task, outcome, time.monotonic() - t0)
    return result


def _transient(exc: BaseException) -> bool:
    from .resilience import is_transient

    return is_transient(exc)


def start(metrics: WorkerMetrics, addr: str) -> tuple[str, int] | None:
    """Serve ``metrics`` at ``addr`` (ASR_METRICS_ADDR); None when disabled or the address is taken."""
    parsed = parse_addr(addr)
    if parsed is None:
        log.info("Metrics endpoint disabled (ASR_METRICS_ADDR=%s)", addr)
        return None
    try:
        host, port = metrics.serve(*parsed)
    except OSError as exc:
        log.error(
            "Metrics endpoint NOT started: cannot listen on %s:%d (%s). Give each worker on this machine "
            "its own ASR_METRICS_ADDR, or set it to off.",
            parsed[0],
            parsed[1],
            exc,
        )
        return None
    shown = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    log.info("Metrics at http://%s:%d/metrics", shown, port)
    return host, port


# The process's metrics: tasks record into it; cli.run_worker serves it.
METRICS = WorkerMetrics()
