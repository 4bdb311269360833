"""The offline profile on real speech: timestamps, progress, abort, silence, Simplified output."""

from __future__ import annotations

import numpy as np
import pytest

from asr_worker.audio import decode_audio
from asr_worker.engines.base import Aborted

pytestmark = pytest.mark.models


def test_sentences_progress_and_timestamps(tiny_engine, jfk_wav):
    audio = decode_audio(jfk_wav)
    seen: list[float] = []
    t = tiny_engine.transcribe(audio.samples, progress=seen.append)
    assert "ask not what your country can do for you" in t.text.lower()
    assert t.language == "en" and t.engine == "offline" and t.model == "whisper-tiny.en"
    assert t.segments and all(0 <= s.start <= s.end <= audio.duration_s for s in t.segments)
    assert all(a.end <= b.start + 1e-6 for a, b in zip(t.segments, t.segments[1:], strict=False))
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert 0 < t.rtf < 1


def test_silence_gives_nothing(tiny_engine):
    t = tiny_engine.transcribe(np.zeros(16000 * 3, np.float32))
    assert t.text == "" and t.segments == [] and t.duration_s == 3.0


def test_abort_stops_between_sentences(tiny_engine, jfk_wav):
    audio = decode_audio(jfk_wav)
    with pytest.raises(Aborted):
        tiny_engine.transcribe(audio.samples, should_abort=lambda: True)


def test_chinese_comes_out_simplified(base_engine, speech_dir):
    audio = decode_audio(speech_dir / "funasr_example_zh.wav")
    t = base_engine.transcribe(audio.samples)
    assert t.language == "zh"
    from asr_worker.text import to_simplified

    assert t.text == to_simplified(t.text)
    assert "欢迎大家" in t.text
