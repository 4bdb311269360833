"""Property tests (hypothesis) for audio decoding, resampling and the live text helpers.

Each property is checked against audio that hypothesis generates: WAV files at every common
sample rate, channel count and sample width, of random length and content, plus arbitrary bytes.
"""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from asr_worker.audio import SAMPLE_RATE, AudioDecodeError, decode_audio, decode_range
from asr_worker.engines.streaming import text_delta
from asr_worker.live import _pcm_to_float

RATES = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000]
PROPS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """``samples`` (float in [-1, 1], mono) as a WAV file, the same signal in every channel."""
    if width == 1:
        data = np.round((samples + 1.0) * 127.5).clip(0, 255).astype(np.uint8)  # 8-bit WAV is unsigned
    elif width == 2:
        data = np.round(samples * 32767).astype("<i2")
    else:
        data = np.round(samples * 2147483647.0).astype("<i4")
    data = np.repeat(data[:, None], channels, axis=1).reshape(-1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(data.tobytes())
    return buf.getvalue()


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@PROPS
@given(
    rate=st.sampled_from(RATES),
    channels=st.integers(1, 2),
    width=st.sampled_from([1, 2, 4]),
    seconds=st.floats(0.05, 3.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_wav_decodes_to_16k_mono_of_the_same_duration(rate, channels, width, seconds, seed):
    rng = np.random.default_rng(seed)
    samples = rng.uniform(-1, 1, int(seconds * rate)).astype(np.float32)
    assume(len(samples) > 0)
    audio = decode_audio(wav_bytes(samples, rate, channels, width))
    assert audio.sample_rate == SAMPLE_RATE and audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    # The resampler may hold back or pad up to a few ms at the end; never more.
    assert abs(len(audio.samples) - len(samples) * SAMPLE_RATE / rate) <= SAMPLE_RATE * 0.005 + 2
    assert np.all(np.isfinite(audio.samples)) and np.max(np.abs(audio.samples)) <= 1.0


@PROPS
@given(rate=st.sampled_from(RATES), freq=st.floats(100.0, 3500.0), channels=st.integers(1, 2))
def test_resampling_keeps_a_tone_at_its_frequency_and_level(rate, freq, channels):
    audio = decode_audio(wav_bytes(tone(freq, 1.0, rate), rate, channels))
    x = audio.samples[1600:-1600]  # away from the resampler's edges
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(x)
    assert abs(peak_hz - freq) <= 2 * SAMPLE_RATE / len(x) + 1
    rms = float(np.sqrt(np.mean(x**2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


@PROPS
@given(rate=st.sampled_from([16000, 44100, 48000]), freq=st.floats(8500.0, 20000.0))
def test_content_above_8khz_is_filtered_out_not_aliased(rate, freq):
    assume(freq < rate / 2 - 500)
    audio = decode_audio(wav_bytes(tone(freq, 0.5, rate), rate))
    if rate == SAMPLE_RATE:
        return  # no resampling: nothing above 8 kHz can exist at 16 kHz
    x = audio.samples[800:-800]
    assert float(np.sqrt(np.mean(x**2))) < 0.05  # a 0.35 RMS tone, attenuated well below it


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=0, max_size=4096))
def test_arbitrary_bytes_either_decode_or_fail_with_a_readable_error(data):
    try:
        audio = decode_audio(data)
    except AudioDecodeError as exc:
        assert str(exc) and str(exc)[0].isupper() and str(exc).endswith(".")
    else:
        assert audio.samples.dtype == np.float32 and len(audio.samples) > 0


@PROPS
@given(
    body=st.binary(min_size=1, max_size=2048),
    rate=st.sampled_from(RATES),
    channels=st.integers(1, 2),
)
def test_a_valid_header_with_garbage_after_it_never_crashes(body, rate, channels):
    header = wav_bytes(np.zeros(0, np.float32), rate, channels)[:44]
    try:
        decode_audio(header + body)
    except AudioDecodeError:
        pass


@PROPS
@given(
    rate=st.sampled_from([8000, 16000, 44100, 48000]),
    seconds=st.floats(1.0, 6.0),
    bounds=st.tuples(st.floats(0.0, 1.0), st.floats(0.0, 1.0)),
    seed=st.integers(0, 2**32 - 1),
)
def test_decode_range_matches_a_slice_of_the_whole_file(tmp_path_factory, rate, seconds, bounds, seed):
    rng = np.random.default_rng(seed)
    # Band-limited content (a few tones) so resampler start-up differences stay small.
    t = np.arange(int(seconds * rate)) / rate
    samples = sum(0.2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in rng.uniform(100, 3000, 3))
    path = tmp_path_factory.mktemp("range") / "a.wav"
    path.write_bytes(wav_bytes(samples.astype(np.float32), rate))
    whole = decode_audio(path).samples
    a, b = sorted(int(x * len(whole)) for x in bounds)
    assume(b - a >= 160)
    piece = decode_range(path, a, b).samples
    assert len(piece) == b - a
    if rate == SAMPLE_RATE:
        np.testing.assert_array_equal(piece, whole[a:b])
    else:
        # Resampled: a seek lands on a source frame whose 16 kHz position is rounded, so the piece
        # may sit up to half an output sample (31 µs) off; within that, the same audio.
        step = float(np.max(np.abs(np.diff(whole[a:b])))) if b - a > 1 else 0.0
        assert float(np.max(np.abs(piece - whole[a:b]))) <= 0.6 * step + 2e-3


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_live_pcm_to_float_accepts_any_length(pcm):
    x = _pcm_to_float(pcm)
    assert x.dtype == np.float32 and len(x) == len(pcm) // 2
    assert np.all(x >= -1.0) and np.all(x < 1.0)


words = st.lists(st.sampled_from(["ask", "not", "what", "your", "country", "can", "do"]), max_size=12)


@settings(max_examples=300, deadline=None)
@given(previous=words, extra=words)
def test_text_delta_extends_what_an_append_only_client_shows(previous, extra):
    prev, cur = " ".join(previous), " ".join(previous + extra)
    delta = text_delta(prev, cur)
    shown = prev + delta
    if cur.startswith(prev):
        assert shown == cur
    # Never shrinks, and never shows more words than the current hypothesis has.
    assert len(shown.split()) >= len(prev.split())
    assert len(shown.split()) <= max(len(prev.split()), len(cur.split()))


@settings(max_examples=300, deadline=None)
@given(
    previous=st.text("广州市房地产中介协会分析", max_size=10),
    current=st.text("广州市房地产中介协会分析", max_size=14),
)
def test_text_delta_for_chinese_appends_characters_only_when_the_hypothesis_grows(previous, current):
    delta = text_delta(previous, current)
    if current.startswith(previous):
        assert previous + delta == current
    elif len(current) <= len(previous):
        assert delta == ""
    else:
        assert delta == current[len(previous) :]
