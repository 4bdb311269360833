"""Speech spans merge into ≤30 s chunks; transcripts carry sane sentence timestamps."""

from __future__ import annotations

import pytest

from asr_worker.engines.base import Segment, Transcript
from asr_worker.engines.vad import SpeechSpan, merge_spans


def test_merge_close_spans_up_to_30s():
    spans = [SpeechSpan(0.0, 2.3), SpeechSpan(3.0, 4.6), SpeechSpan(5.1, 11.0)]
    assert merge_spans(spans) == [SpeechSpan(0.0, 11.0)]


def test_merge_respects_max_len_and_gap():
    spans = [SpeechSpan(i * 10.0, i * 10.0 + 9.0) for i in range(7)]
    chunks = merge_spans(spans, max_len=30.0, max_gap=2.0)
    assert all(c.duration <= 30.0 for c in chunks)
    assert chunks[0] == SpeechSpan(0.0, 29.0)
    assert merge_spans([SpeechSpan(0, 1), SpeechSpan(5, 6)], max_gap=2.0) == [SpeechSpan(0, 1), SpeechSpan(5, 6)]


def test_long_span_is_cut():
    chunks = merge_spans([SpeechSpan(1.0, 71.0)], max_len=30.0)
    assert [c.duration for c in chunks] == pytest.approx([30.0, 30.0, 10.0])
    assert chunks[0].start == 1.0 and chunks[-1].end == 71.0


def test_empty():
    assert merge_spans([]) == []


def test_rtf():
    t = Transcript(
        text="x",
        segments=[Segment(0, 1, "x")],
        language="en",
        duration_s=10.0,
        engine="offline",
        model="whisper-base",
        engine_s=2.5,
    )
    assert t.rtf == pytest.approx(0.25)
    assert Transcript("", [], None, 0.0, "offline", "m", 1.0).rtf is None
