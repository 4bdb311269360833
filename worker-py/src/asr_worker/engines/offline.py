"""The offline profile: fsmn-vad finds speech, faster-whisper (CTranslate2, int8 on CPU) decodes it.

Works with no network at all: every model file comes from a PyPI package (see ``models.py``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..text import is_chinese, join_texts, to_simplified
from .base import AbortCheck, Aborted, EngineError, ProgressCallback, Segment, Transcript
from .models import fsmn_vad_dir, whisper_model_dir
from .vad import FsmnVad, SpeechSpan, merge_spans

__all__ = ["OfflineEngine"]

log = logging.getLogger(__name__)

_CHUNK_S = 30.0
_ZH_PROMPT = "以下是普通话的句子。"


class OfflineEngine:
    """fsmn-vad + Whisper. Load once per process; every Whisper call is serialised by ``lock``."""

    name = "offline"

    def __init__(
        self,
        *,
        model: str = "base",
        vad_model: str = "",
        cache_dir: str | os.PathLike = "~/.cache/lanasr/models",
        device: str = "cpu",
        cpu_threads: int = 0,
        beam_size: int = 5,
    ):
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise EngineError("faster-whisper is not installed: install the worker's `offline` extra.") from exc
        threads = cpu_threads or os.cpu_count() or 1
        self.device = "cuda" if device.startswith("cuda") else "cpu"
        self.model_name = f"whisper-{model}" if model in ("base", "tiny.en") else Path(model).name
        model_dir = whisper_model_dir(model, cache_dir)
        vad_dir = fsmn_vad_dir(vad_model)
        self.vad = FsmnVad(vad_dir, threads=min(threads, 2))
        compute_type = "int8_float16" if self.device == "cuda" else "int8"
        try:
            self.whisper = WhisperModel(
                str(model_dir),
                device=self.device,
                compute_type=compute_type,
                cpu_threads=threads,
                local_files_only=True,
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError for bad model files
            raise EngineError(f"Whisper model {model_dir} could not be loaded: {exc}") from exc
        self.beam_size = beam_size
        self.multilingual = bool(self.whisper.model.is_multilingual)
        self.models = {"asr": self.model_name, "vad": "fsmn-vad", "asr_path": str(model_dir), "vad_path": str(vad_dir)}
        self.lock = threading.Lock()

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        hotwords: str = "",
        progress: ProgressCallback | None = None,
        should_abort: AbortCheck | None = None,
    ) -> Transcript:
        t0 = time.perf_counter()
        duration = len(samples) / SAMPLE_RATE
        if not self.multilingual:
            language = "en"
        chunks = merge_spans(self.vad(samples), max_len=_CHUNK_S)
        segments: list[Segment] = []
        detected = language
        if detected is None and chunks:
            with self.lock:
                detected = self._detect_language(samples, chunks[0])
        speech_end = chunks[-1].end if chunks else 0.0

        def at(position: float) -> None:
            if progress is not None and speech_end > 0:
                progress(min(1.0, position / speech_end))

        for chunk in chunks:
            if should_abort is not None and should_abort():
                raise Aborted()
            with self.lock:  # per chunk: live partials and finals get their turn between chunks
                found, lang = self._decode_chunk(samples, chunk, detected, hotwords, should_abort, at)
            detected = detected or lang
            segments.extend(found)
            at(chunk.end)
        if progress is not None:
            progress(1.0)
        if detected and is_chinese(detected):
            segments = [Segment(s.start, s.end, to_simplified(s.text)) for s in segments]
        text = join_texts([s.text for s in segments])
        return Transcript(
            text=text,
            segments=segments,
            language=detected,
            duration_s=duration,
            engine=self.name,
            model=self.model_name,
            engine_s=time.perf_counter() - t0,
        )

    def _detect_language(self, samples: np.ndarray, chunk: SpeechSpan) -> str | None:
        """Detect the language once, on the first speech chunk, so every chunk decodes alike."""
        audio = samples[int(chunk.start * SAMPLE_RATE) : int(chunk.end * SAMPLE_RATE)]
        try:
            language, probability, _ = self.whisper.detect_language(audio=audio)
        except Exception as exc:  # detection is an optimisation: decoding detects by itself too
            log.debug("Language detection failed: %s", exc)
            return None
        log.debug("Detected language %s (p=%.2f)", language, probability)
        return language

    def _decode_chunk(
        self,
        samples: np.ndarray,
        chunk: SpeechSpan,
        language: str | None,
        hotwords: str,
        should_abort: AbortCheck | None = None,
        at: Callable[[float], None] | None = None,
    ) -> tuple[list[Segment], str | None]:
        a, b = int(chunk.start * SAMPLE_RATE), int(chunk.end * SAMPLE_RATE)
        audio = samples[a:b]
        prompt = None
        if language is not None and is_chinese(language):
            prompt = _ZH_PROMPT
        pieces, info = self.whisper.transcribe(
            audio,
            language=language,
            beam_size=self.beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=prompt,
            hotwords=hotwords or None,
        )
        out: list[Segment] = []
        for p in pieces:  # a lazy generator: each step decodes one more window
            if should_abort is not None and should_abort():
                raise Aborted()
            text = p.text.strip()
            if not text:
                continue
            start = min(chunk.start + max(p.start, 0.0), chunk.end)
            end = min(chunk.start + max(p.end, p.start), chunk.end)
            out.append(Segment(round(start, 3), round(max(end, start), 3), text))
            if at is not None:
                at(end)
        return out, info.language
