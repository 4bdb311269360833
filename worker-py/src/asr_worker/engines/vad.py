"""Voice activity detection with the real fsmn-vad model (ONNX export, run by funasr-onnx)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from .base import EngineError

__all__ = ["SpeechSpan", "FsmnVad", "merge_spans"]


@dataclasses.dataclass(frozen=True)
class SpeechSpan:
    """A stretch of audio, in seconds."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


class FsmnVad:
    """fsmn-vad on onnxruntime; one instance per process, calls serialised by a lock."""

    def __init__(self, model_dir: Path, *, threads: int = 1, max_segment_s: float = 30.0):
        try:
            from funasr_onnx import Fsmn_vad
        except ImportError as exc:
            raise EngineError("funasr-onnx is not installed: install the worker's `offline` extra.") from exc
        if not (Path(model_dir) / "model.onnx").is_file():
            raise EngineError(f"The VAD model directory {model_dir} has no model.onnx.")
        self.model_dir = Path(model_dir)
        self._model = Fsmn_vad(str(model_dir), intra_op_num_threads=max(1, threads))
        self._model.vad_scorer_config["max_single_segment_time"] = int(max_segment_s * 1000)
        self.lock = threading.Lock()

    def __call__(self, samples: np.ndarray) -> list[SpeechSpan]:
        if samples.size < SAMPLE_RATE // 10:
            return []
        with self.lock:
            result = self._model(np.ascontiguousarray(samples, dtype=np.float32))
        spans = result[0] if result else []
        return [SpeechSpan(b / 1000.0, e / 1000.0) for b, e in spans if e > b]


def merge_spans(spans: list[SpeechSpan], *, max_len: float = 30.0, max_gap: float = 2.0) -> list[SpeechSpan]:
    """Merge neighbouring speech spans into chunks no longer than ``max_len`` seconds.

    Spans further apart than ``max_gap`` stay separate; a span longer than ``max_len`` is cut.
    """
    pieces: list[SpeechSpan] = []
    for s in spans:
        start = s.start
        while s.end - start > max_len:
            pieces.append(SpeechSpan(start, start + max_len))
            start += max_len
        pieces.append(SpeechSpan(start, s.end))
    merged: list[SpeechSpan] = []
    for p in pieces:
        if merged and p.start - merged[-1].end <= max_gap and p.end - merged[-1].start <= max_len:
            merged[-1] = SpeechSpan(merged[-1].start, p.end)
        else:
            merged.append(p)
    return merged
