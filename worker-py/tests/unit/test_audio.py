"""Decoding every common format, any rate and channel count, to 16 kHz mono float32."""

from __future__ import annotations

import io

import numpy as np
import pytest

from asr_worker.audio import SAMPLE_RATE, AudioDecodeError, decode_audio

from ..conftest import encode, resample

FORMATS = [
    # (suffix, codec, container format, video)
    ("mp3", "libmp3lame", None, False),
    ("flac", "flac", None, False),
    ("ogg", "libvorbis", None, False),
    ("opus.ogg", "libopus", "ogg", False),
    ("m4a", "aac", "ipod", False),
    ("webm", "libopus", "webm", False),
    ("mp4", "aac", "mp4", True),
    ("wav", "pcm_s16le", None, False),
]


@pytest.fixture(scope="module")
def jfk(jfk_wav):
    return decode_audio(jfk_wav)


def test_wav_is_16k_mono_float32(jfk):
    assert jfk.sample_rate == SAMPLE_RATE
    assert jfk.samples.dtype == np.float32
    assert jfk.samples.ndim == 1
    assert jfk.duration_s == pytest.approx(11.0, abs=0.01)
    assert 0.1 < np.abs(jfk.samples).max() <= 1.0


@pytest.mark.parametrize("suffix,codec,fmt,video", FORMATS, ids=[f[0] for f in FORMATS])
def test_decodes_common_formats(tmp_path, jfk, suffix, codec, fmt, video):
    rate = 48000 if codec == "libopus" else 44100
    src = resample(jfk.samples[: 4 * SAMPLE_RATE], SAMPLE_RATE, rate)
    path = encode(src, rate, tmp_path / f"a.{suffix}", codec=codec, layout="stereo", container_format=fmt, video=video)
    out = decode_audio(path)
    assert out.samples.dtype == np.float32
    assert out.duration_s == pytest.approx(4.0, abs=0.15)
    # The content survives: correlate the envelope with the original's.
    n = min(len(out.samples), 4 * SAMPLE_RATE)
    env_a = np.abs(jfk.samples[:n]).reshape(-1, 400).mean(axis=1)
    shift = _best_shift(env_a, np.abs(out.samples[:n]).reshape(-1, 400).mean(axis=1))
    assert shift > 0.8


def _best_shift(a: np.ndarray, b: np.ndarray) -> float:
    best = -1.0
    for s in range(0, 6):
        x, y = a[: len(a) - s], b[s:]
        best = max(best, float(np.corrcoef(x, y)[0, 1]))
    return best


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 32000, 44100, 48000, 96000])
@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_resamples_any_rate_and_channels(tmp_path, jfk, rate, layout):
    src = resample(jfk.samples[: 2 * SAMPLE_RATE], SAMPLE_RATE, rate)
    path = encode(src, rate, tmp_path / "a.wav", codec="pcm_s16le", layout=layout)
    out = decode_audio(path)
    assert out.sample_rate == SAMPLE_RATE
    assert len(out.samples) == pytest.approx(2 * SAMPLE_RATE, abs=SAMPLE_RATE * 0.01)


def test_decodes_bytes_and_file_objects(jfk_wav):
    data = jfk_wav.read_bytes()
    a = decode_audio(data)
    b = decode_audio(io.BytesIO(data))
    assert np.array_equal(a.samples, b.samples)


@pytest.mark.parametrize(
    "payload",
    [b"", b"not audio at all " * 64, bytes(range(256)) * 40, b"\x89PNG\r\n\x1a\n" + b"\0" * 2048],
    ids=["empty", "text", "random", "png"],
)
def test_garbage_is_a_clear_error(tmp_path, payload):
    p = tmp_path / "x.wav"
    p.write_bytes(payload)
    with pytest.raises(AudioDecodeError) as info:
        decode_audio(p)
    assert str(info.value).endswith(".")
    with pytest.raises(AudioDecodeError):
        decode_audio(payload)


def test_truncated_wav_is_an_error(jfk_wav):
    data = jfk_wav.read_bytes()
    with pytest.raises(AudioDecodeError, match="truncated"):
        decode_audio(data[: len(data) // 2])


@pytest.mark.parametrize("suffix,codec,fmt", [("m4a", "aac", "ipod"), ("flac", "flac", None)])
def test_truncated_compressed_is_an_error(tmp_path, jfk, suffix, codec, fmt):
    path = encode(jfk.samples, SAMPLE_RATE, tmp_path / f"a.{suffix}", codec=codec, container_format=fmt)
    data = path.read_bytes()
    with pytest.raises(AudioDecodeError):
        decode_audio(data[: len(data) // 3])


def test_header_only_wav_is_an_error(jfk_wav):
    with pytest.raises(AudioDecodeError):
        decode_audio(jfk_wav.read_bytes()[:44])


def test_video_without_audio_is_an_error(tmp_path):
    import av

    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("mpeg4", rate=10)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        for k in range(10):
            img = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            img.pts = k
            for packet in v.encode(img):
                out.mux(packet)
        for packet in v.encode(None):
            out.mux(packet)
    with pytest.raises(AudioDecodeError, match="no audio"):
        decode_audio(path)
