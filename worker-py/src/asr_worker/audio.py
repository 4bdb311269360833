"""Decode any common audio or video file to 16 kHz mono float32 with PyAV."""

from __future__ import annotations

import dataclasses
import io
import os
from typing import BinaryIO

import av
import numpy as np

__all__ = ["SAMPLE_RATE", "Audio", "AudioDecodeError", "decode_audio", "decode_range"]

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

    container, stream = _open(source)
    with container:
        declared_s = _declared_duration(container, stream)
        resampler = _resampler()
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                frame.pts = None
                for out in resampler.resample(frame):
                    chunks.append(_mono(out))
            for out in resampler.resample(None):
                chunks.append(_mono(out))
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


def decode_range(source: str | os.PathLike | BinaryIO, start_sample: int, end_sample: int) -> Audio:
    """Decode only samples ``[start_sample, end_sample)`` of ``source`` (16 kHz mono positions).

    PCM audio (WAV and the like, where a seek lands exactly) is decoded from a little before the
    range, so a piece of a long file costs about its own length to decode; compressed audio is
    decoded from the start up to the range's end, because container timestamps after a seek are not
    trustworthy for every encoder (a mis-stamped Ogg file would hand back the wrong audio), and the
    same path as ``decode_audio`` gives the same sample positions the file was split at. The result is exactly
    ``end_sample - start_sample`` samples long (zero-padded past the end of the audio, which only
    happens when the file is shorter than the range). Raises AudioDecodeError as ``decode_audio``.
    """
    if start_sample < 0 or end_sample <= start_sample:
        raise ValueError(f"bad sample range [{start_sample}, {end_sample})")
    container, stream = _open(source)
    with container:
        try:
            exact_seek = (stream.codec_context.name or "").startswith("pcm_")
            got = _decode_from(container, stream, start_sample, end_sample, seek=exact_seek and start_sample > 0)
            if got is None:  # the seek landed after the range's start: decode from the beginning
                container.seek(0)
                got = _decode_from(container, stream, start_sample, end_sample, seek=False)
        except (av.FFmpegError, ValueError) as exc:
            raise AudioDecodeError(f"The audio is corrupt or truncated ({_reason(exc)}).") from exc
    first, samples = got
    out = np.zeros(end_sample - start_sample, dtype=np.float32)
    a = start_sample - first
    piece = samples[a : a + len(out)] if a < len(samples) else samples[:0]
    out[: len(piece)] = piece
    np.clip(out, -1.0, 1.0, out=out)
    return Audio(samples=out)


# How far before the range a seek aims: decoders need a little run-in (and seeks land on packets).
_SEEK_MARGIN_S = 1.0


def _decode_from(container, stream, start_sample: int, end_sample: int, *, seek: bool):
    """(position of the first returned sample, samples) covering the range, or None if the seek overshot."""
    if seek and stream.time_base is not None:
        target = max(0.0, start_sample / SAMPLE_RATE - _SEEK_MARGIN_S)
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
    resampler = _resampler()
    chunks: list[np.ndarray] = []
    first: int | None = None
    pos = 0
    for frame in container.decode(stream):
        if first is None:
            t = frame.time if (seek and frame.time is not None) else 0.0
            first = pos = max(0, round(t * SAMPLE_RATE))
            if first > start_sample:
                return None
        frame.pts = None
        for out in resampler.resample(frame):
            arr = _mono(out)
            chunks.append(arr)
            pos += arr.size
        if pos >= end_sample:
            break
    else:
        for out in resampler.resample(None):
            chunks.append(_mono(out))
    if first is None:
        raise AudioDecodeError("The file contains no audio samples.")
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    return first, samples


def _open(source):
    """The container and its first audio stream; AudioDecodeError when there is none to read."""
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise AudioDecodeError(f"The file is not a readable audio or video file ({_reason(exc)}).") from exc
    if not container.streams.audio:
        container.close()
        raise AudioDecodeError("The file contains no audio stream.")
    return container, container.streams.audio[0]


def _resampler() -> av.AudioResampler:
    """To 16 kHz float, keeping the channels: ``_mono`` averages them.

    (Letting the resampler down-mix to mono adds the channels at -3 dB each, so a stereo file
    came out 3 dB louder than either channel and clipped when loud.)
    """
    return av.AudioResampler(format="fltp", rate=SAMPLE_RATE)


def _mono(frame: av.AudioFrame) -> np.ndarray:
    planes = frame.to_ndarray()  # (channels, samples) for a planar format
    return planes[0] if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)


def _declared_duration(container, stream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.rstrip(".")
