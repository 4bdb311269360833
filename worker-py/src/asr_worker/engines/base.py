"""Engine interface and result types shared by every ASR engine."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from typing import Protocol

import numpy as np

__all__ = [
    "Segment",
    "Transcript",
    "Engine",
    "EngineError",
    "Aborted",
    "ProgressCallback",
    "AbortCheck",
    "PriorityLock",
]

ProgressCallback = Callable[[float], None]
AbortCheck = Callable[[], bool]


class PriorityLock:
    """A model's lock where urgent callers (live partials and finals) go before batch callers.

    Batch decoding takes the lock once per chunk; without priorities a live caption had to win
    a race against the next chunk, and under a long batch file the partials never did. A batch
    caller waits while any urgent caller is waiting; urgent callers take the lock as soon as it
    is released. ``with lock:`` is a batch acquisition, ``with lock.urgent():`` an urgent one.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._urgent_waiting = 0

    def acquire(self, blocking: bool = True, timeout: float = -1, *, urgent: bool = False) -> bool:
        with self._cond:
            if urgent:
                self._urgent_waiting += 1
            try:

                def free() -> bool:
                    return not self._held and (urgent or self._urgent_waiting == 0)

                if not blocking:
                    ok = free()
                else:
                    ok = self._cond.wait_for(free, timeout=None if timeout is None or timeout < 0 else timeout)
                if ok:
                    self._held = True
                return ok
            finally:
                if urgent:
                    self._urgent_waiting -= 1
                    self._cond.notify_all()  # batch waiters re-check once no urgent caller waits

    def release(self) -> None:
        with self._cond:
            if not self._held:
                raise RuntimeError("release of an unlocked PriorityLock")
            self._held = False
            self._cond.notify_all()

    def locked(self) -> bool:
        return self._held

    def __enter__(self) -> PriorityLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    @contextlib.contextmanager
    def urgent(self):
        self.acquire(urgent=True)
        try:
            yield self
        finally:
            self.release()


class EngineError(RuntimeError):
    """An engine or its models could not be loaded or run."""


class Aborted(Exception):
    """Transcription stopped because the job was asked to abort."""


@dataclasses.dataclass(frozen=True)
class Segment:
    """One sentence of a transcript, times in seconds from the start of the audio."""

    start: float
    end: float
    text: str


@dataclasses.dataclass(frozen=True)
class Transcript:
    """What an engine made of one audio file."""

    text: str
    segments: list[Segment]
    language: str | None
    duration_s: float
    engine: str
    model: str
    engine_s: float

    @property
    def rtf(self) -> float | None:
        return self.engine_s / self.duration_s if self.duration_s > 0 else None


class Engine(Protocol):
    """An ASR engine whose models are loaded once, then used for many files."""

    name: str
    model_name: str
    device: str
    models: dict[str, str]
    lock: threading.Lock

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        hotwords: str = "",
        progress: ProgressCallback | None = None,
        should_abort: AbortCheck | None = None,
    ) -> Transcript: ...
