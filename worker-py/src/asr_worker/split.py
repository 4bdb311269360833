"""Long files in pieces: where to cut (at silences) and how to merge the pieces' results back.

Everything here is pure (numbers in, numbers out) except ``SilenceFinder``, which runs the VAD.
The tasks that use it are in ``pieces.py``; the flow is in docs/CONTRACT.md ("Long files").
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

from .audio import SAMPLE_RATE
from .text import join_texts

__all__ = [
    "Gap",
    "Piece",
    "PieceResult",
    "Merged",
    "piece_count",
    "gaps_from_speech",
    "gaps_from_energy",
    "choose_cut",
    "plan_cuts",
    "merge_pieces",
    "SilenceFinder",
]

log = logging.getLogger(__name__)

# No piece is planned shorter than this (or than ASR_SPLIT_MINUTES, when that is shorter).
MIN_PIECE_S = 60.0
# A cut is searched this far either side of its ideal place (at most a quarter of a piece).
SEARCH_S = 30.0
# Silences at least this long are preferred; shorter ones are taken only when there is nothing else.
GOOD_GAP_S = 0.5
MIN_GAP_S = 0.15


@dataclasses.dataclass(frozen=True)
class Gap:
    """A silence, in seconds from the start of the audio."""

    start: float
    end: float

    @property
    def length(self) -> float:
        return self.end - self.start

    @property
    def middle(self) -> float:
        return (self.start + self.end) / 2


@dataclasses.dataclass(frozen=True)
class Piece:
    """Samples [start, end) of the decoded 16 kHz audio."""

    idx: int
    start: int
    end: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE


def piece_count(duration_s: float, split_s: float, workers: int) -> int:
    """How many pieces a recording of ``duration_s`` is cut into.

    One piece per ``split_s`` (ASR_SPLIT_MINUTES) at least; then rounded up to a multiple of the
    batch workers active now, so the last round of pieces keeps every worker busy (3 pieces on 2
    workers would leave one idle for a third of the time: 4 do not); never pieces shorter than
    ``min(split_s, MIN_PIECE_S)``.
    """
    if duration_s <= 0 or split_s <= 0:
        return 1
    base = max(1, math.ceil(duration_s / split_s))
    workers = max(1, workers)
    n = math.ceil(base / workers) * workers
    shortest = min(split_s, MIN_PIECE_S)
    most = max(base, int(duration_s // shortest))
    return max(1, min(n, most))


def gaps_from_speech(speech: Sequence[tuple[float, float]], lo: float, hi: float) -> list[Gap]:
    """The silences of ``[lo, hi]`` between speech spans (seconds, any order, may overlap)."""
    gaps: list[Gap] = []
    pos = lo
    for s, e in sorted(speech):
        s, e = max(lo, s), min(hi, e)
        if e <= s:
            continue
        if s > pos:
            gaps.append(Gap(pos, s))
        pos = max(pos, e)
    if hi > pos:
        gaps.append(Gap(pos, hi))
    return gaps


def gaps_from_energy(samples: np.ndarray, offset_s: float = 0.0, *, frame_s: float = 0.02) -> list[Gap]:
    """Silences found by frame energy: frames far below the window's speech level (no model needed).

    ``samples`` is a window of the audio starting at ``offset_s``. A frame is silent when its RMS is
    under 10% of the window's loud (90th percentile) level, or under -60 dBFS.
    """
    n = int(frame_s * SAMPLE_RATE)
    frames = len(samples) // n
    if frames == 0:
        return []
    rms = np.sqrt(np.mean(np.square(samples[: frames * n].reshape(frames, n), dtype=np.float64), axis=1))
    threshold = max(1e-3, 0.1 * float(np.percentile(rms, 90)))
    quiet = rms < threshold
    gaps: list[Gap] = []
    i = 0
    while i < frames:
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < frames and quiet[j]:
            j += 1
        gaps.append(Gap(offset_s + i * frame_s, offset_s + j * frame_s))
        i = j
    return gaps


def choose_cut(gaps: Sequence[Gap], target: float, lo: float, hi: float) -> float | None:
    """The cut for ``target``: the middle of the nearest good silence in ``[lo, hi]``.

    Silences of ``GOOD_GAP_S`` or more win over shorter ones; among equals the nearest to
    ``target`` wins. None when the window holds no silence of ``MIN_GAP_S`` at all.
    """
    inside = [Gap(max(g.start, lo), min(g.end, hi)) for g in gaps]
    inside = [g for g in inside if g.length >= MIN_GAP_S]
    if not inside:
        return None
    good = [g for g in inside if g.length >= GOOD_GAP_S] or inside
    best = min(good, key=lambda g: (abs(g.middle - target), -g.length))
    return best.middle


def plan_cuts(
    duration_s: float,
    pieces: int,
    find_gaps: Callable[[float, float], list[Gap]],
    *,
    search_s: float = SEARCH_S,
) -> tuple[list[float], int]:
    """Cut points (seconds) for ``pieces`` pieces: near every ``duration/pieces``, in silence.

    ``find_gaps(lo, hi)`` returns the silences of that window. Where a window has none, the cut
    stays at its ideal place (counted in the second value returned, for the log).
    """
    if pieces <= 1:
        return [], 0
    length = duration_s / pieces
    half = min(search_s, length / 4)
    cuts: list[float] = []
    blind = 0
    for k in range(1, pieces):
        target = k * length
        lo, hi = max(0.0, target - half), min(duration_s, target + half)
        cut = choose_cut(find_gaps(lo, hi), target, lo, hi)
        if cut is None:
            cut = target
            blind += 1
        cuts.append(cut)
    return cuts, blind


def pieces_from_cuts(cuts: Sequence[float], total_samples: int) -> list[Piece]:
    """Contiguous pieces covering ``[0, total_samples)``, cut at ``cuts`` (seconds, increasing)."""
    bounds = [0] + [int(round(c * SAMPLE_RATE)) for c in cuts] + [total_samples]
    for a, b in zip(bounds, bounds[1:], strict=False):
        if b <= a:
            raise ValueError(f"cut points are not increasing inside the audio: {bounds}")
    return [Piece(i, a, b) for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))]


@dataclasses.dataclass(frozen=True)
class PieceResult:
    """One finished piece: where it lies (samples) and what its engine made of it."""

    idx: int
    start: int
    end: int
    segments: Sequence[tuple[float, float, str]]  # relative to the piece's start
    language: str | None = None
    model: str | None = None
    engine: str | None = None
    engine_s: float = 0.0
    worker: str | None = None


@dataclasses.dataclass(frozen=True)
class Merged:
    """The whole recording's result, merged from its pieces."""

    text: str
    segments: list[tuple[float, float, str]]
    language: str | None
    duration_s: float
    model: str | None
    engine: str | None
    engine_s: float
    workers: list[str]
    pieces: int

    @property
    def rtf(self) -> float | None:
        return self.engine_s / self.duration_s if self.duration_s > 0 else None


def merge_pieces(pieces: Sequence[PieceResult]) -> Merged:
    """Merge pieces into one result: segments in order, times offset by each piece's start.

    The pieces must tile the audio (idx 0..n-1, each starting where the previous ended): anything
    else means a piece is missing or doubled, and raises ValueError rather than store a transcript
    with a hole. Each segment is kept inside its own piece and after the previous segment, so the
    merged segments never overlap and never cross a cut.
    """
    if not pieces:
        raise ValueError("no pieces to merge")
    ordered = sorted(pieces, key=lambda p: p.idx)
    if [p.idx for p in ordered] != list(range(len(ordered))):
        raise ValueError(f"pieces are not numbered 0..{len(ordered) - 1}: {[p.idx for p in ordered]}")
    if ordered[0].start != 0:
        raise ValueError(f"the first piece starts at sample {ordered[0].start}, not 0")
    for a, b in zip(ordered, ordered[1:], strict=False):
        if b.start != a.end:
            raise ValueError(f"piece {b.idx} starts at sample {b.start} but piece {a.idx} ends at {a.end}")
    segments: list[tuple[float, float, str]] = []
    prev_end = 0.0
    seconds: dict[str, float] = {}
    workers: list[str] = []
    for p in ordered:
        lo, hi = p.start / SAMPLE_RATE, p.end / SAMPLE_RATE
        for s, e, text in p.segments:
            text = (text or "").strip()
            if not text:
                continue
            start = round(min(max(lo + float(s), lo, prev_end), hi), 3)
            end = round(min(max(lo + float(e), start), hi), 3)
            segments.append((start, end, text))
            prev_end = end
        if p.language:
            seconds[p.language] = seconds.get(p.language, 0.0) + (hi - lo)
        if p.worker and p.worker not in workers:
            workers.append(p.worker)
    language = max(seconds, key=seconds.get) if seconds else None
    first = ordered[0]
    return Merged(
        text=join_texts([t for _, _, t in segments]),
        segments=segments,
        language=language,
        duration_s=ordered[-1].end / SAMPLE_RATE,
        model=first.model,
        engine=first.engine,
        engine_s=sum(p.engine_s for p in ordered),
        workers=workers,
        pieces=len(ordered),
    )


class SilenceFinder:
    """Finds silences in a window of audio: the engine's fsmn-vad when it has one, else energy."""

    def __init__(self, vad=None):
        self.vad = vad
        self.method = "fsmn-vad" if vad is not None else "energy"

    @classmethod
    def for_engine(cls, engine, vad_model_dir: str = "") -> SilenceFinder:
        """The engine's own VAD (the offline profile's fsmn-vad), or the shipped fsmn-vad, or energy."""
        vad = getattr(engine, "vad", None)
        if vad is not None and callable(vad):
            return cls(vad)
        try:
            from .engines.models import fsmn_vad_dir
            from .engines.vad import FsmnVad

            return cls(FsmnVad(fsmn_vad_dir(vad_model_dir), threads=1))
        except Exception as exc:
            log.warning("No fsmn-vad for cutting long files (%s): cutting at low-energy stretches instead", exc)
            return cls(None)

    def gaps(self, samples: np.ndarray, lo: float, hi: float) -> list[Gap]:
        window = samples[int(lo * SAMPLE_RATE) : int(hi * SAMPLE_RATE)]
        if self.vad is not None:
            try:
                spans = self.vad(window)
                return gaps_from_speech([(lo + s.start, lo + s.end) for s in spans], lo, hi)
            except Exception as exc:
                log.warning("fsmn-vad failed on [%.1f, %.1f] s (%s): using energy there", lo, hi, exc)
        return gaps_from_energy(window, lo)
