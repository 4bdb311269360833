"""The offline profile: fsmn-vad finds speech, faster-whisper (CTranslate2, int8 on CPU) decodes it.

Works with no network at all: every model file comes from a PyPI package (see ``models.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..text import is_chinese, join_texts, to_simplified
from .base import AbortCheck, Aborted, EngineError, PriorityLock, ProgressCallback, Segment, Transcript
from .models import fsmn_vad_dir, whisper_model_dir
from .vad import FsmnVad, SpeechSpan, merge_spans

__all__ = ["OfflineEngine"]

log = logging.getLogger(__name__)

_CHUNK_S = 30.0
_ZH_PROMPT = "以下是普通话的句子。"
# Short-context decoding of live sentences: the encoder sees the sentence plus SHORT_PAD_S of
# silence, at least SHORT_MIN_WINDOW_S in all, instead of Whisper's fixed 30 s window (windows
# much shorter than that make Whisper repeat itself on 1–2 s sentences); longer sentences use the
# full window.
SHORT_PAD_S = 3.0
SHORT_MIN_WINDOW_S = 8.0
SHORT_MAX_S = 25.0


@dataclasses.dataclass(frozen=True)
class ShortDecode:
    """One short-context decode: its text, language, and whether the 30 s window had to redo it."""

    text: str
    language: str | None
    language_probability: float
    fell_back: bool


def looks_degenerate(text: str, duration_s: float) -> bool:
    """Whether a decode looks like Whisper's known failure modes: loops, or more text than speech allows.

    Whisper with a shortened encoder window sometimes repeats itself; these checks (a repeated run
    covering much of the text, too many characters or words per second, a high compression ratio,
    as Whisper's own fallback uses) send such a sentence back through the 30 s window.
    """
    compact = "".join(text.split())
    if not compact:
        return False
    cjk = sum(1 for c in compact if "\u3400" <= c <= "\u9fff")
    words = len(text.split()) if cjk < len(compact) / 2 else cjk
    if words > 4 + duration_s * (9 if cjk >= len(compact) / 2 else 6):
        return True
    n = len(compact)
    for size in range(max(3, n // 5), n // 2 + 1):
        for i in range(0, n - 2 * size + 1):
            if compact[i : i + size] == compact[i + size : i + 2 * size]:
                return True
    raw = text.encode()
    return len(raw) > 60 and len(raw) / len(zlib.compress(raw)) > 2.4


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
        short_context: bool = True,
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
        self.short_context = short_context
        self.multilingual = bool(self.whisper.model.is_multilingual)
        self.models = {"asr": self.model_name, "vad": "fsmn-vad", "asr_path": str(model_dir), "vad_path": str(vad_dir)}
        self.lock = PriorityLock()  # live partials and finals go before batch chunks

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

    # -- live sentences ---------------------------------------------------------------------

    def decode_short(
        self,
        samples: np.ndarray,
        *,
        language: str | None,
        beam_size: int | None = None,
        hotwords: str = "",
    ) -> ShortDecode:
        """Decode one short utterance (a live sentence or its open part). Call with ``lock`` held.

        Whisper pads every input to 30 s, so a 3 s sentence costs as much as 30 s of audio. Here
        the encoder sees the utterance plus ``SHORT_PAD_S`` of silence, at least
        ``SHORT_MIN_WINDOW_S`` (CTranslate2 accepts a shorter mel input): 2–3× less work on CPU.
        A result that looks degenerate is decoded again with the full window. Utterances over
        ``SHORT_MAX_S``, or with ``short_context`` off, use the window directly. No timestamps:
        the caller knows the utterance's span.
        """
        from faster_whisper.tokenizer import Tokenizer

        duration = len(samples) / SAMPLE_RATE
        if not self.multilingual:
            language = "en"
        beam = beam_size or self.beam_size
        wm = self.whisper
        if self.short_context and duration <= SHORT_MAX_S:
            window_s = max(duration + SHORT_PAD_S, SHORT_MIN_WINDOW_S)
            pad = np.zeros(int((window_s - duration) * SAMPLE_RATE), np.float32)
            audio = np.concatenate([np.asarray(samples, np.float32), pad])
            features = wm.feature_extractor(audio)
            frames = min(features.shape[-1] - features.shape[-1] % 2, wm.feature_extractor.nb_max_frames)
            encoder_output = wm.encode(np.ascontiguousarray(features[:, :frames]))
            probability = 1.0
            if language is None:
                lang_token, probability = wm.model.detect_language(encoder_output)[0][0]
                language = lang_token[2:-2]
            tokenizer = Tokenizer(wm.hf_tokenizer, self.multilingual, task="transcribe", language=language)
            previous = tokenizer.encode(" " + _ZH_PROMPT) if is_chinese(language) else []
            prompt = wm.get_prompt(tokenizer, previous, without_timestamps=True, hotwords=hotwords or None)
            budget = min(wm.max_length - len(prompt), int(12 + 15 * duration))
            result = wm.model.generate(
                encoder_output,
                [prompt],
                beam_size=beam,
                max_length=len(prompt) + budget,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=_suppressed(tokenizer),
            )[0]
            tokens = result.sequences_ids[0]
            text = tokenizer.decode(tokens).strip()
            if len(tokens) < budget and not looks_degenerate(text, duration):
                if result.no_speech_prob > 0.6 and len(tokens) <= 2:
                    text = ""
                if is_chinese(language):
                    text = to_simplified(text)
                return ShortDecode(text, language, float(probability), False)
            log.info("Short-context decode of %.1f s looked degenerate (%r): using the 30 s window", duration, text)
            fell_back = True
        else:
            fell_back = False
        pieces, info = wm.transcribe(
            np.ascontiguousarray(samples, dtype=np.float32),
            language=language,
            beam_size=beam,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            initial_prompt=_ZH_PROMPT if is_chinese(language) else None,
            hotwords=hotwords or None,
        )
        text = join_texts([p.text.strip() for p in pieces])
        language = language or info.language
        if is_chinese(language):
            text = to_simplified(text)
        return ShortDecode(text, language, float(info.language_probability or 1.0), fell_back)

    def transcribe_sentence(
        self, samples: np.ndarray, *, language: str | None = None, hotwords: str = ""
    ) -> Transcript:
        """A live sentence's final: one decode of the whole sentence (the live VAD already cut it)."""
        t0 = time.perf_counter()
        duration = len(samples) / SAMPLE_RATE
        with self.lock.urgent():
            out = self.decode_short(samples, language=language, hotwords=hotwords)
        segments = [Segment(0.0, round(duration, 3), out.text)] if out.text else []
        return Transcript(
            text=out.text,
            segments=segments,
            language=out.language,
            duration_s=duration,
            engine=self.name,
            model=self.model_name,
            engine_s=time.perf_counter() - t0,
        )


def _suppressed(tokenizer) -> list[int]:
    from faster_whisper.transcribe import get_suppressed_tokens

    return list(get_suppressed_tokens(tokenizer, [-1]))
