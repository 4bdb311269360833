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


def _vad_sentences(engine, path):
    samples = decode_audio(path).samples
    return [samples[int(s.start * 16000) : int(s.end * 16000)] for s in engine.vad(samples)]


@pytest.mark.parametrize(
    "name,language,expected",
    [
        ("jfk_en.wav", "en", ["and so my fellow americans", "ask not", "what your country can do for you"]),
        ("librispeech_1995-1837-0001_en.wav", None, ["it was the first great sorrow of his life"]),
        ("funasr_example_zh.wav", None, ["欢迎大家来体验"]),
    ],
)
def test_short_context_decodes_live_sentences_like_the_full_window(base_engine, speech_dir, name, language, expected):
    """Live finals decode with the encoder window cut to the sentence: same words, no loops, no fall back."""
    sentences = _vad_sentences(base_engine, speech_dir / name)
    assert len(sentences) == len(expected)
    base_engine.short_context = True
    for samples, want in zip(sentences, expected, strict=True):
        with base_engine.lock:
            out = base_engine.decode_short(samples, language=language)
        assert not out.fell_back, out
        assert want in out.text.lower().replace(",", "").replace("!", "").replace(".", ""), out
        if want[0] >= "\u3400":
            assert out.language == "zh"


def test_short_context_final_is_one_segment_spanning_the_sentence(base_engine, speech_dir):
    sentence = _vad_sentences(base_engine, speech_dir / "jfk_en.wav")[-1]
    t = base_engine.transcribe_sentence(sentence, language="en")
    assert t.segments == [type(t.segments[0])(0.0, round(len(sentence) / 16000, 3), t.text)]
    assert "your country" in t.text and t.engine == "offline"


def test_silence_sentence_gives_no_text(base_engine):
    t = base_engine.transcribe_sentence(np.zeros(16000 * 2, np.float32), language="en")
    assert t.text == "" and t.segments == []
