"""Live (streaming) pieces of the engines: streaming fsmn-vad, partial decoders, sentence finals.

One model object serves every session of the process (calls serialised by that model's lock);
each session keeps its own VAD state and decoder cache.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..text import has_cjk, is_chinese, join_texts, to_simplified
from .base import EngineError, Segment

__all__ = [
    "StreamingVad",
    "SentenceCutter",
    "VadEvent",
    "WhisperPartials",
    "FunasrStreamingPartials",
    "LiveModels",
    "FinalResult",
    "text_delta",
]

log = logging.getLogger(__name__)

MS = SAMPLE_RATE // 1000  # samples per millisecond
PARTIAL_WAIT_S = 5.0  # how long a partial waits for the model while a batch chunk (up to 30 s of audio) is decoded


@dataclasses.dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" or "end"
    ms: int


class StreamingVad:
    """fsmn-vad in streaming mode (funasr-onnx ``Fsmn_vad_online``); one per process, state per session."""

    def __init__(self, model_dir: Path, *, end_silence_ms: int = 500, max_sentence_ms: int = 15000, threads: int = 1):
        try:
            from funasr_onnx import Fsmn_vad_online
        except ImportError as exc:
            raise EngineError("funasr-onnx is not installed: install the worker's `offline` extra.") from exc
        if not (Path(model_dir) / "model.onnx").is_file():
            raise EngineError(f"The VAD model directory {model_dir} has no model.onnx.")
        self._model = Fsmn_vad_online(str(model_dir), intra_op_num_threads=max(1, threads), max_end_sil=end_silence_ms)
        self._model.config["model_conf"]["max_single_segment_time"] = int(max_sentence_ms)
        self.end_silence_ms = end_silence_ms
        self.max_sentence_ms = max_sentence_ms
        self.lock = threading.Lock()

    def new_cutter(self) -> SentenceCutter:
        return SentenceCutter(self)

    def step(self, samples: np.ndarray, state: dict, is_final: bool) -> list:
        state["is_final"] = is_final
        with self.lock:
            out = self._model(np.ascontiguousarray(samples, dtype=np.float32), param_dict=state)
        return out[0] if out else []


class SentenceCutter:
    """One session's streaming VAD: feed audio in order, get sentence start/end events (session ms)."""

    def __init__(self, vad: StreamingVad):
        self.vad = vad
        self.state: dict = {}
        self.fed_ms = 0
        self.open_start: int | None = None
        self.finished = False

    def feed(self, samples: np.ndarray, *, is_final: bool = False) -> list[VadEvent]:
        if self.finished:
            return []
        samples = np.asarray(samples, dtype=np.float32)
        self.fed_ms += len(samples) // MS
        if is_final and len(samples) < 400:
            # The frontend needs a few frames to run its final step: pad with silence, not counted.
            samples = np.concatenate([samples, np.zeros(1600, np.float32)])
        segs = self.vad.step(samples, self.state, is_final) if len(samples) else []
        events: list[VadEvent] = []
        for seg in segs:
            b, e = int(seg[0]), int(seg[1])
            if b != -1:
                if self.open_start is not None:  # a start while open: close the open one there
                    events.append(VadEvent("end", max(self.open_start, min(b, self.fed_ms))))
                b = min(b, self.fed_ms)
                self.open_start = b
                events.append(VadEvent("start", b))
            if e != -1 and self.open_start is not None:
                e = max(self.open_start, min(e, self.fed_ms))
                events.append(VadEvent("end", e))
                self.open_start = None
        if is_final:
            if self.open_start is not None:
                events.append(VadEvent("end", max(self.open_start, self.fed_ms)))
                self.open_start = None
            self.finished = True
        return events


def text_delta(previous: str, current: str) -> str:
    """The text to append to ``previous`` (already shown by append-only clients) to approach ``current``.

    When ``current`` extends ``previous``: the rest. Otherwise, since clients cannot retract: the
    words (characters, for CJK) of ``current`` beyond as many as ``previous`` had.
    """
    if not current or current == previous:
        return ""
    if not previous:
        return current
    if current.startswith(previous):
        return current[len(previous) :]
    if has_cjk(current) or has_cjk(previous):
        return current[len(previous) :] if len(current) > len(previous) else ""
    old, new = previous.split(), current.split()
    if len(new) <= len(old):
        return ""
    return " " + " ".join(new[len(old) :])


@dataclasses.dataclass
class FinalResult:
    text: str
    language: str | None
    segments: list[Segment]  # seconds from the sentence's start
    model_s: float
    timestamp: list[list[int]] | None = None  # per token, ms from the sentence's start


class WhisperPartials:
    """Partials of the offline profile: re-decode the open sentence with Whisper, at a bounded rate."""

    def __init__(self, engine, *, interval_ms: int = 1000, finals_waiting=lambda: False):
        self.engine = engine
        self.finals_waiting = finals_waiting
        self.interval_ms = interval_ms
        self.decoded_ms = 0
        self.text = ""
        self.detected: tuple[str, float] | None = None  # (language, probability) when the decode detected it

    def reset(self) -> None:
        self.decoded_ms = 0
        self.text = ""

    def feed(self, pcm: np.ndarray) -> None:  # nothing to do per chunk
        return None

    def poll(self, sentence: np.ndarray, *, language: str | None, pending: bool, force: bool = False):
        """Whole current text and model seconds, or None when it is not time (or no change)."""
        have_ms = len(sentence) // MS
        if pending and not force:
            return None
        if have_ms - self.decoded_ms < self.interval_ms and not (force and have_ms > self.decoded_ms):
            return None
        if have_ms < 300:
            return None
        e = self.engine
        # Finals first. Ahead of batch chunks (an urgent acquisition), but not for longer than
        # PARTIAL_WAIT_S behind the chunk being decoded: then try again on the next round.
        if self.finals_waiting() or not e.lock.acquire(timeout=PARTIAL_WAIT_S, urgent=True):
            return None
        try:
            t0 = time.perf_counter()
            out = e.decode_short(sentence, language=language, beam_size=1)
            model_s = time.perf_counter() - t0
        finally:
            e.lock.release()
        if language is None and e.multilingual and out.language:
            self.detected = (out.language, out.language_probability)
        text = out.text
        self.decoded_ms = have_ms
        if text == self.text:
            return None
        self.text = text
        return text, model_s


class FunasrStreamingPartials:
    """Partials of the FunASR profile: paraformer-streaming fed every chunk, with this session's cache."""

    def __init__(self, model, lock: threading.Lock, *, chunk_size=(0, 10, 5)):
        self.model = model
        self.lock = lock
        self.chunk_size = list(chunk_size)
        self.cache: dict = {}
        self.text = ""
        self._changed = False
        self.model_s = 0.0

    def reset(self) -> None:
        self.cache = {}
        self.text = ""
        self._changed = False
        self.model_s = 0.0

    def feed(self, pcm: np.ndarray, *, is_final: bool = False) -> None:
        t0 = time.perf_counter()
        with self.lock:
            texts = self._step(np.ascontiguousarray(pcm, dtype=np.float32), is_final)
        self.model_s += time.perf_counter() - t0
        piece = to_simplified("".join(texts))
        if piece:
            self.text = join_texts([self.text, piece]) if not has_cjk(piece) else self.text + piece
            self._changed = True

    def _step(self, pcm: np.ndarray, is_final: bool) -> list[str]:
        """One chunk through the streaming model (lock held): the text pieces it produced."""
        res = self.model.generate(
            input=pcm,
            cache=self.cache,
            is_final=is_final,
            chunk_size=self.chunk_size,
            encoder_chunk_look_back=4,
            decoder_chunk_look_back=1,
            disable_pbar=True,
        )
        return [str(r.get("text", "")) for r in res or []]

    def poll(self, sentence: np.ndarray, *, language: str | None, pending: bool, force: bool = False):
        if not self._changed or (pending and not force):
            return None
        self._changed = False
        model_s, self.model_s = self.model_s, 0.0
        return self.text, model_s


class LiveModels:
    """What live sessions of one process share: the streaming VAD and the engine's models."""

    def __init__(self, engine, vad: StreamingVad, *, partial_interval_ms: int = 1000):
        self.engine = engine
        self.vad = vad
        self.partial_interval_ms = partial_interval_ms
        self._finals = 0
        self._finals_lock = threading.Lock()

    def finals_waiting(self) -> bool:
        return self._finals > 0

    @property
    def streaming_model_name(self) -> str:
        if getattr(self.engine, "streaming", None) is not None:
            return self.engine.models.get("streaming", "")
        return self.engine.model_name

    def new_partials(self):
        streaming = getattr(self.engine, "streaming", None)
        if streaming is not None and hasattr(self.engine, "new_streaming_partials"):  # the ONNX engine's
            return self.engine.new_streaming_partials()
        if streaming is not None:
            return FunasrStreamingPartials(streaming, self.engine.streaming_lock)
        if hasattr(self.engine, "whisper"):
            return WhisperPartials(
                self.engine, interval_ms=self.partial_interval_ms, finals_waiting=self.finals_waiting
            )
        return None

    def final(self, samples: np.ndarray, *, language: str | None, hotwords: str = "") -> FinalResult:
        """Decode one closed sentence with the batch model (same object, same lock)."""
        t0 = time.perf_counter()
        if len(samples) < SAMPLE_RATE // 10:
            return FinalResult("", language, [], 0.0)
        with self._finals_lock:
            self._finals += 1
        decode = getattr(self.engine, "transcribe_sentence", None) or self.engine.transcribe
        try:
            tr = decode(np.ascontiguousarray(samples, dtype=np.float32), language=language, hotwords=hotwords)
        finally:
            with self._finals_lock:
                self._finals -= 1
        text = tr.text
        lang = tr.language or language
        if is_chinese(lang) or has_cjk(text):
            text = to_simplified(text)
        return FinalResult(text, lang, list(tr.segments), time.perf_counter() - t0)
