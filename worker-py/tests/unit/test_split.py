"""Long files in pieces: piece counts, cut points at silences, range decoding, and the merge."""

from __future__ import annotations

import numpy as np
import pytest

from asr_worker.audio import SAMPLE_RATE, decode_audio, decode_range
from asr_worker.split import (
    Gap,
    PieceResult,
    SilenceFinder,
    choose_cut,
    gaps_from_energy,
    gaps_from_speech,
    merge_pieces,
    piece_count,
    pieces_from_cuts,
    plan_cuts,
)

from ..conftest import encode

SR = SAMPLE_RATE


# --- how many pieces -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "split_s", "workers", "expected"),
    [
        (1800, 600, 1, 3),  # one per ASR_SPLIT_MINUTES
        (1800, 600, 2, 4),  # rounded up to a multiple of the workers: no half-idle last round
        (1800, 600, 3, 3),
        (1800, 600, 4, 4),
        (660, 600, 2, 2),
        (660, 600, 20, 11),  # but never shorter than a minute
        (150, 30, 2, 5),  # fractional ASR_SPLIT_MINUTES (0.5): pieces of at least split_s
        (0, 600, 2, 1),
    ],
)
def test_piece_count(duration, split_s, workers, expected):
    assert piece_count(duration, split_s, workers) == expected


# --- where to cut --------------------------------------------------------------------------------


def test_gaps_from_speech_are_the_complement_inside_the_window():
    speech = [(12.0, 15.0), (1.0, 3.0), (2.5, 4.0), (20.0, 30.0)]
    assert gaps_from_speech(speech, 0.0, 25.0) == [Gap(0.0, 1.0), Gap(4.0, 12.0), Gap(15.0, 20.0)]
    assert gaps_from_speech([], 5.0, 6.0) == [Gap(5.0, 6.0)]
    assert gaps_from_speech([(0.0, 10.0)], 2.0, 8.0) == []


def test_choose_cut_prefers_a_real_silence_near_the_target():
    gaps = [Gap(9.0, 9.2), Gap(11.0, 12.0), Gap(30.0, 40.0)]
    # The 0.2 s pause is nearest, but the 1 s silence is a proper one: cut in its middle.
    assert choose_cut(gaps, 9.1, 0.0, 20.0) == pytest.approx(11.5)
    # Only short pauses: the nearest one will do.
    assert choose_cut([Gap(9.0, 9.2), Gap(2.0, 2.2)], 8.0, 0.0, 20.0) == pytest.approx(9.1)
    # Gaps are clipped to the window; nothing of 0.15 s or more: no cut.
    assert choose_cut([Gap(0.0, 0.1), Gap(19.95, 25.0)], 10.0, 0.0, 20.0) is None
    assert choose_cut([], 10.0, 0.0, 20.0) is None


def test_plan_cuts_lands_every_cut_in_a_silence_near_its_place():
    silences = [Gap(k * 10.0 - 0.6, k * 10.0 + 0.6) for k in range(1, 60)]  # a pause every 10 s

    def find(lo, hi):
        return [g for g in silences if g.end > lo and g.start < hi]

    cuts, blind = plan_cuts(600.0, 4, find)
    assert blind == 0 and len(cuts) == 3
    for k, cut in enumerate(cuts, start=1):
        assert abs(cut - k * 150.0) <= 5.0
        assert any(g.start < cut < g.end for g in silences), cut
    assert cuts == sorted(cuts)


def test_plan_cuts_without_silence_cuts_at_the_ideal_place_and_says_so():
    cuts, blind = plan_cuts(90.0, 3, lambda lo, hi: [])
    assert cuts == [30.0, 60.0] and blind == 2
    assert plan_cuts(90.0, 1, lambda lo, hi: []) == ([], 0)


def test_pieces_from_cuts_tile_the_audio():
    pieces = pieces_from_cuts([10.0, 25.5], 40 * SR)
    assert [(p.idx, p.start, p.end) for p in pieces] == [(0, 0, 160000), (1, 160000, 408000), (2, 408000, 640000)]
    assert pieces[1].start_s == 10.0 and pieces[2].end_s == 40.0
    with pytest.raises(ValueError):
        pieces_from_cuts([25.0, 10.0], 40 * SR)
    with pytest.raises(ValueError):
        pieces_from_cuts([45.0], 40 * SR)


def _bursts(layout):
    """A tone for each (start, end) in ``layout`` (seconds), silence elsewhere, plus faint noise."""
    total = max(e for _, e in layout) + 1.0
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(int(total * SR)) * 1e-4).astype(np.float32)
    for s, e in layout:
        t = np.arange(int((e - s) * SR)) / SR
        x[int(s * SR) : int(s * SR) + t.size] += 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    return x


def test_energy_finds_the_silences_between_tone_bursts():
    x = _bursts([(0.5, 3.0), (4.0, 7.5), (9.0, 10.0)])
    gaps = [g for g in gaps_from_energy(x[SR * 2 :], 2.0) if g.length >= 0.15]
    # Silences: 3.0-4.0 and 7.5-9.0 (and the tail after 10.0), to within a frame or two.
    assert len(gaps) == 3
    assert gaps[0].start == pytest.approx(3.0, abs=0.05) and gaps[0].end == pytest.approx(4.0, abs=0.05)
    assert gaps[1].start == pytest.approx(7.5, abs=0.05) and gaps[1].end == pytest.approx(9.0, abs=0.05)
    finder = SilenceFinder(None)
    assert finder.method == "energy"
    cut = choose_cut(finder.gaps(x, 5.0, 10.5), 8.0, 5.0, 10.5)
    assert 7.5 < cut < 9.0


@pytest.mark.models
def test_fsmn_vad_cuts_in_the_silence_between_two_utterances(speech_dir):
    from asr_worker.engines.models import fsmn_vad_dir
    from asr_worker.engines.vad import FsmnVad

    a = decode_audio(speech_dir / "jfk_en.wav").samples
    b = decode_audio(speech_dir / "librispeech_1995-1837-0001_en.wav").samples
    gap = np.zeros(int(1.5 * SR), np.float32)
    x = np.concatenate([a, gap, b])
    silence = (len(a) / SR, (len(a) + len(gap)) / SR)
    finder = SilenceFinder(FsmnVad(fsmn_vad_dir(), threads=1))
    assert finder.method == "fsmn-vad"
    # Aim a little into the first utterance: the cut still lands in the silence after it.
    target = silence[0] - 1.0
    lo, hi = target - 4.0, target + 4.0
    cut = choose_cut(finder.gaps(x, lo, hi), target, lo, hi)
    assert cut is not None and silence[0] - 0.3 <= cut <= silence[1] + 0.3, (cut, silence)


# --- decoding one piece --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_signal():
    rng = np.random.default_rng(3)
    return (0.2 * rng.standard_normal(SR * 40)).astype(np.float32)


@pytest.mark.parametrize(("suffix", "codec"), [("wav", "pcm_s16le"), ("flac", "flac"), ("mp3", "libmp3lame")])
def test_decode_range_gives_the_same_samples_as_slicing_the_whole_file(tmp_path, long_signal, suffix, codec):
    path = encode(long_signal, SR, tmp_path / f"long.{suffix}", codec=codec)
    whole = decode_audio(path).samples
    for a, b in ((0, 5 * SR), (12 * SR + 77, 27 * SR + 5), (30 * SR, len(whole))):
        with open(path, "rb") as f:
            got = decode_range(f, a, b).samples
        assert got.shape == (b - a,)
        np.testing.assert_allclose(got, whole[a:b], atol=1e-4)


def test_decode_range_pads_past_the_end_and_rejects_empty_ranges(tmp_path, long_signal):
    path = encode(long_signal[: SR * 3], SR, tmp_path / "short.wav", codec="pcm_s16le")
    got = decode_range(str(path), 2 * SR, 4 * SR).samples
    assert got.shape == (2 * SR,) and not got[SR + 10 :].any() and got[: SR - 10].any()
    with pytest.raises(ValueError):
        decode_range(str(path), 5, 5)


# --- merging the pieces --------------------------------------------------------------------------


def _piece(idx, start_s, end_s, segments, **kw):
    return PieceResult(idx=idx, start=int(start_s * SR), end=int(end_s * SR), segments=segments, **kw)


def test_merge_offsets_each_piece_and_keeps_order():
    pieces = [
        _piece(
            1,
            100.0,
            200.0,
            [(0.5, 4.0, "second piece one"), (50.0, 60.0, "second piece two")],
            language="en",
            model="m",
            engine="offline",
            engine_s=8.0,
            worker="w2",
        ),
        _piece(
            0,
            0.0,
            100.0,
            [(1.0, 5.0, "first one"), (90.0, 99.5, "first two")],
            language="en",
            model="m",
            engine="offline",
            engine_s=9.0,
            worker="w1",
        ),
        _piece(
            2,
            200.0,
            250.5,
            [(0.0, 3.0, "third")],
            language="en",
            model="m",
            engine="offline",
            engine_s=4.0,
            worker="w1",
        ),
    ]
    m = merge_pieces(pieces)
    assert m.segments == [
        (1.0, 5.0, "first one"),
        (90.0, 99.5, "first two"),
        (100.5, 104.0, "second piece one"),
        (150.0, 160.0, "second piece two"),
        (200.0, 203.0, "third"),
    ]
    assert m.text == "first one first two second piece one second piece two third"
    assert m.duration_s == 250.5 and m.engine_s == 21.0 and m.rtf == pytest.approx(21.0 / 250.5)
    assert m.workers == ["w1", "w2"] and m.pieces == 3
    assert (m.language, m.model, m.engine) == ("en", "m", "offline")


def test_merge_never_overlaps_or_crosses_a_seam():
    # An engine may stamp a segment a little past its piece's end (or before its start): the merge
    # keeps each segment inside its piece and after the one before it.
    pieces = [
        _piece(0, 0.0, 10.0, [(0.0, 6.0, "a"), (5.0, 10.4, "b")]),
        _piece(1, 10.0, 20.0, [(-0.2, 3.0, "c"), (2.0, 2.5, "d"), (9.0, 12.0, "e"), (1.0, 2.0, "   ")]),
    ]
    segs = merge_pieces(pieces).segments
    assert [t for *_, t in segs] == ["a", "b", "c", "d", "e"]
    for s, e, _ in segs:
        assert 0.0 <= s <= e <= 20.0
    for (s1, e1, _), (s2, _e2, _) in zip(segs, segs[1:], strict=False):
        assert e1 <= s2 and s1 <= s2
    assert segs[1] == (6.0, 10.0, "b") and segs[2] == (10.0, 13.0, "c") and segs[3] == (13.0, 13.0, "d")


def test_merge_language_is_the_one_spoken_longest_and_chinese_joins_without_spaces():
    pieces = [
        _piece(0, 0.0, 10.0, [(0.0, 2.0, "你好。")], language="zh"),
        _piece(1, 10.0, 100.0, [(0.0, 2.0, "世界。")], language="zh"),
        _piece(2, 100.0, 130.0, [(0.0, 2.0, "hello")], language="en"),
    ]
    m = merge_pieces(pieces)
    assert m.language == "zh"
    assert m.text == "你好。世界。 hello"


@pytest.mark.parametrize(
    "bounds",
    [
        [(0, 0.0, 10.0), (2, 10.0, 20.0)],  # piece 1 missing
        [(0, 0.0, 10.0), (1, 10.0, 20.0), (1, 10.0, 20.0)],  # piece 1 twice
        [(0, 0.0, 10.0), (1, 11.0, 20.0)],  # a hole between pieces
        [(0, 0.0, 10.0), (1, 9.0, 20.0)],  # pieces overlap
        [(0, 1.0, 10.0)],  # does not start at 0
    ],
)
def test_merge_refuses_pieces_that_do_not_tile_the_audio(bounds):
    with pytest.raises(ValueError):
        merge_pieces([_piece(i, s, e, [(0.0, 1.0, "x")]) for i, s, e in bounds])
    with pytest.raises(ValueError):
        merge_pieces([])


# --- the setting ---------------------------------------------------------------------------------


def test_split_minutes_setting_takes_fractions_and_refuses_nonsense():
    from asr_worker.config import ConfigError, load_settings
    from asr_worker.pieces import needs_split

    assert load_settings({}, env_file="/nonexistent").split_minutes == 10.0
    s = load_settings({"ASR_SPLIT_MINUTES": "0.5"}, env_file="/nonexistent")
    assert s.split_minutes == 0.5
    assert needs_split(s, 30.5) and not needs_split(s, 30.0)
    off = load_settings({"ASR_SPLIT_MINUTES": "0"}, env_file="/nonexistent")
    assert not needs_split(off, 10_000.0)
    for bad in ("-1", "nan", "inf", "ten"):
        with pytest.raises(ConfigError, match="ASR_SPLIT_MINUTES"):
            load_settings({"ASR_SPLIT_MINUTES": bad}, env_file="/nonexistent")
