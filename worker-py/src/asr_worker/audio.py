"""Decode any common audio or video file to 16 kHz mono float32 with PyAV."""

from __future__ import annotations

import dataclasses
import io
import os
from typing import BinaryIO

import av
import numpy as np

__all__ = ["SAMPLE_RATE", "Audio", "AudioDecodeError", "decode_audio"]

SAMPLE_RATE = 16000

# A decoded stream shorter than this fraction of what its container declares is truncated.
_TRUNCATION_RATIO = 0.9
_TRUNCATION_MIN_GAP_S = 0.5


class AudioDecodeError(ValueError):
    """The input is not decodable audio: empty, not a media file, no audio stream, or truncated.

    Its message is a readable sentence, stored as the transcription's ``error``.
    """


@dataclasses.dataclass(frozen=True)
class Audio:
    """Decoded audio: 16 kHz mono float32 samples in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode_audio(source: str | os.PathLike | bytes | BinaryIO) -> Audio:
    """Decode ``source`` (a path, bytes, or a seekable binary file) to 16 kHz mono float32.

    Raises AudioDecodeError when the input is empty, is not media, has no audio stream, is cut
    short (truncated), or is corrupt.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise AudioDecodeError("The audio file is empty.")
        source = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        if os.path.getsize(source) == 0:
            raise AudioDecodeError("The audio file is empty.")
    else:
        pos = source.tell()
        if not source.read(1):
            raise AudioDecodeError("The audio file is empty.")
        source.seek(pos)

    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise AudioDecodeError(f"The file is not a readable audio or video file ({_reason(exc)}).") from exc

    with container:
        if not container.streams.audio:
            raise AudioDecodeError("The file contains no audio stream.")
        stream = container.streams.audio[0]
        declared_s = _declared_duration(container, stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(f"The audio is corrupt or truncated ({_reason(exc)}).") from exc

    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioDecodeError("The file contains no audio samples.")
    decoded_s = samples.size / SAMPLE_RATE
    if declared_s and decoded_s < declared_s * _TRUNCATION_RATIO and declared_s - decoded_s > _TRUNCATION_MIN_GAP_S:
        raise AudioDecodeError(
            f"The audio file is truncated: it declares {declared_s:.1f} s but only {decoded_s:.1f} s could be decoded."
        )
    np.clip(samples, -1.0, 1.0, out=samples)
    return Audio(samples=samples)


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")
