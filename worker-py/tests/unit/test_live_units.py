"""Streaming VAD sentence cutting on real speech, partial deltas, caption payloads."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr_worker.audio import decode_audio
from asr_worker.db import NOTIFY_LIMIT, caption_payload
from asr_worker.engines.streaming import text_delta


@pytest.fixture(scope="module")
def vad():
    pytest.importorskip("funasr_onnx")
    from asr_worker.engines.models import fsmn_vad_dir
    from asr_worker.engines.streaming import StreamingVad

    return StreamingVad(fsmn_vad_dir(), end_silence_ms=500, max_sentence_ms=15000)


def _cut(vad, samples, chunk=9600):
    cutter = vad.new_cutter()
    events = []
    for i in range(0, len(samples), chunk):
        events += cutter.feed(samples[i : i + chunk], is_final=i + chunk >= len(samples))
    return events


def _sentences(events):
    out, start = [], None
    for e in events:
        if e.kind == "start":
            assert start is None, events
            start = e.ms
        else:
            assert start is not None and e.ms >= start, events
            out.append((start, e.ms))
            start = None
    assert start is None
    return out


def test_silences_inserted_in_real_speech_become_sentence_boundaries(vad, speech_dir):
    speech = decode_audio(speech_dir / "librispeech_1995-1837-0001_en.wav").samples
    zh = decode_audio(speech_dir / "aishell_BAC009S0724W0121_zh.wav").samples
    gap = np.zeros(16000 * 2, np.float32)
    audio = np.concatenate([gap[:8000], speech, gap, zh, gap, speech[: 16000 * 3], gap[:16000]])
    sentences = _sentences(_cut(vad, audio))
    # Each inserted 2 s silence separates sentences: none spans a gap.
    gaps = []
    t = 500 + len(speech) // 16
    gaps.append((t, t + 2000))
    t += 2000 + len(zh) // 16
    gaps.append((t, t + 2000))
    for a, b in gaps:
        assert not any(s < a + 100 and e > b - 100 for s, e in sentences), (sentences, gaps)
        assert any(abs(e - a) < 900 for _, e in sentences), (sentences, a)  # a sentence ends at each gap
        assert any(abs(s - b) < 400 for s, _ in sentences), (sentences, b)  # and one starts after it
    assert sentences[0][0] < 800 and sentences[-1][1] <= len(audio) // 16
    assert 3 <= len(sentences) <= 12, sentences


def test_cutting_does_not_depend_on_silence_padding_at_the_end(vad, speech_dir):
    speech = decode_audio(speech_dir / "jfk_en.wav").samples
    # The session ends mid-speech: the open sentence is closed at the end of the audio.
    events = _cut(vad, speech[: 16000 * 5])
    assert events[-1].kind == "end" and abs(events[-1].ms - 5000) <= 600


def test_long_speech_is_cut_at_the_maximum_sentence_length(speech_dir):
    pytest.importorskip("funasr_onnx")
    from asr_worker.engines.models import fsmn_vad_dir
    from asr_worker.engines.streaming import StreamingVad

    vad = StreamingVad(fsmn_vad_dir(), end_silence_ms=3000, max_sentence_ms=4000)
    speech = decode_audio(speech_dir / "jfk_en.wav").samples
    sentences = _sentences(_cut(vad, speech))
    assert all(e - s <= 4100 for s, e in sentences), sentences


def test_silence_gives_no_sentence(vad):
    assert _cut(vad, np.zeros(16000 * 5, np.float32)) == []


@pytest.mark.parametrize(
    "previous,current,delta",
    [
        ("", "hello", "hello"),
        ("hello", "hello world", " world"),
        ("hello world", "hello world", ""),
        ("ask not what", "Ask not what your country", " your country"),  # rewritten start: append new words only
        ("ask not what your", "ask not", ""),  # shorter: clients cannot retract
        ("欢迎大家", "欢迎大家来体验", "来体验"),
        ("欢迎大佳", "欢迎大家来体验", "来体验"),
        ("", "", ""),
    ],
)
def test_partial_delta(previous, current, delta):
    assert text_delta(previous, current) == delta


def test_caption_payload_fits_a_notify():
    msg = {
        "mode": "2pass-offline",
        "text": "字" * 2000,
        "stamp_sents": [{"text_seg": "x" * 100}] * 100,
        "timestamp": "[[0,1]]" * 500,
    }
    payload = caption_payload("00000000-0000-0000-0000-000000000000", msg)
    assert len(payload.encode()) <= NOTIFY_LIMIT
    body = json.loads(payload)
    assert body["msg"]["mode"] == "2pass-offline" and "stamp_sents" not in body["msg"]
    small = json.loads(caption_payload("s", {"text": "hi", "is_final": False}))
    assert small == {"session_id": "s", "msg": {"text": "hi", "is_final": False}}


@pytest.mark.parametrize(
    "text,seconds,bad",
    [
        ("And so my fellow Americans.", 2.3, False),
        ("And so my fellow Americans. And so my fellow Americans. And so my fellow Americans.", 2.3, True),
        ("It's not. It's not. It's not.", 1.6, True),
        ("广州市佛地产中间协会分析", 4.1, False),
        ("广州市 佛地产 中介协会分析广州市 佛地产 中介协会分析", 4.1, True),
        ("谢谢" * 40, 3.0, True),
        ("ask not what your country can do for you, ask what you can do for", 1.0, True),  # 15 words in 1 s
        ("", 1.0, False),
    ],
)
def test_degenerate_decodes_are_recognised(text, seconds, bad):
    from asr_worker.engines.offline import looks_degenerate

    assert looks_degenerate(text, seconds) is bad


def test_priority_lock_lets_live_callers_go_before_waiting_batch_chunks():
    import threading
    import time

    from asr_worker.engines.base import PriorityLock

    lock = PriorityLock()
    order: list[str] = []
    lock.acquire()  # a batch chunk is being decoded

    def batch():
        with lock:
            order.append("batch")

    def live():
        with lock.urgent():
            order.append("live")

    b = threading.Thread(target=batch)
    b.start()
    time.sleep(0.1)  # the next batch chunk waits first ...
    u = threading.Thread(target=live)
    u.start()
    time.sleep(0.1)  # ... then a live partial arrives
    lock.release()
    b.join(5)
    u.join(5)
    assert order == ["live", "batch"]
    # An urgent caller that gives up does not block batch callers afterwards.
    lock.acquire()
    assert lock.acquire(timeout=0.05, urgent=True) is False
    lock.release()
    assert lock.acquire(timeout=1) is True
    lock.release()
    assert not lock.locked()
