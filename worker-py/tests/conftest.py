"""Fixtures shared by every tier: test speech, encoded audio files, loaded offline models."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SPEECH_DIR = Path(os.environ.get("ASR_TEST_SPEECH_DIR", REPO.parent / "shared" / "testdata" / "speech"))
if not SPEECH_DIR.is_dir():
    SPEECH_DIR = Path("/work/shared/testdata/speech")


def pytest_configure(config):
    # Tests never see the developer's ASR_* settings (procrastinate's convention: scrub the prefix).
    for key in list(os.environ):
        if key.startswith("ASR_") and not key.startswith("ASR_TEST_") and key != "ASR_GATEWAY_BIN":
            del os.environ[key]


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    if not SPEECH_DIR.is_dir():
        pytest.skip(f"test speech not found at {SPEECH_DIR}")
    return SPEECH_DIR


@pytest.fixture(scope="session")
def transcripts(speech_dir) -> dict:
    return json.loads((speech_dir / "transcripts.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def jfk_wav(speech_dir) -> Path:
    return speech_dir / "jfk_en.wav"


def encode(
    samples: np.ndarray,
    rate: int,
    path: Path,
    *,
    codec: str,
    layout: str = "mono",
    container_format: str | None = None,
    video: bool = False,
) -> Path:
    """Write ``samples`` (float32, mono) to ``path`` with PyAV: the same library the worker decodes with."""
    channels = 2 if layout == "stereo" else 1
    with av.open(str(path), "w", format=container_format) as out:
        if video:
            v = out.add_stream("mpeg4", rate=10)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame_size = stream.codec_context.frame_size or 1024
        data = np.repeat(samples[None, :], channels, axis=0)
        pts = 0
        for i in range(0, data.shape[1], frame_size):
            block = data[:, i : i + frame_size]
            frame = _frame(block, fmt, layout, rate)
            frame.pts = pts
            pts += block.shape[1]
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
        if video:
            n = max(1, int(len(samples) / rate * 10))
            for k in range(n):
                img = av.VideoFrame.from_ndarray(np.full((48, 64, 3), k % 255, np.uint8), format="rgb24")
                img.pts = k
                for packet in v.encode(img):
                    out.mux(packet)
            for packet in v.encode(None):
                out.mux(packet)
    return path


def _frame(block: np.ndarray, fmt: str, layout: str, rate: int) -> av.AudioFrame:
    planar = fmt.endswith("p")
    if fmt.startswith("s16"):
        arr = (np.clip(block, -1, 1) * 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        arr = (np.clip(block, -1, 1) * 2147483647).astype(np.int32)
    else:
        arr = block.astype(np.float32)
    if not planar:
        arr = arr.T.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
    frame.sample_rate = rate
    return frame


def resample(samples: np.ndarray, src: int, dst: int) -> np.ndarray:
    n = int(round(len(samples) * dst / src))
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_engine():
    """The offline profile with Whisper tiny.en, loaded once for the whole session."""
    pytest.importorskip("faster_whisper")
    from asr_worker.engines.offline import OfflineEngine

    return OfflineEngine(model="tiny.en", cpu_threads=2)


@pytest.fixture(scope="session")
def base_engine():
    """The offline profile with multilingual Whisper base (the default), loaded once."""
    pytest.importorskip("faster_whisper")
    from asr_worker.engines.offline import OfflineEngine

    return OfflineEngine(model="base", cpu_threads=2)
