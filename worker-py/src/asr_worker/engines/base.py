"""Engine interface and result types shared by every ASR engine."""

from __future__ import annotations

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
]

ProgressCallback = Callable[[float], None]
AbortCheck = Callable[[], bool]


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
