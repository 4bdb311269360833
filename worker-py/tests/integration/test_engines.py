"""Engine selection, and the FunASR engine loading a tiny random paraformer through AutoModel."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from asr_worker.config import Settings
from asr_worker.engines import EngineError, load_engine
from asr_worker.engines.models import fsmn_vad_dir

from .conftest import Harness, key, row, segments, submit


@pytest.fixture(scope="session")
def tiny_funasr_dirs(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("funasr")
    from ..support.tiny_paraformer import build_tiny_ct_punc, build_tiny_paraformer

    root = tmp_path_factory.mktemp("models")
    return build_tiny_paraformer(root / "tiny-paraformer"), build_tiny_ct_punc(root / "tiny-ct-punc")


@pytest.fixture(scope="session")
def funasr_engine(tiny_funasr_dirs):
    paraformer, punc = tiny_funasr_dirs
    settings = Settings(
        engine="funasr",
        funasr_model=str(paraformer),
        funasr_vad_model=str(fsmn_vad_dir()),
        funasr_punc_model=str(punc),
        device="auto",
        cpu_threads=2,
    )
    return load_engine(settings)


@pytest.mark.funasr
def test_funasr_engine_transcribes_real_audio(funasr_engine, speech_dir):
    from asr_worker.audio import decode_audio

    assert funasr_engine.name == "funasr"
    assert funasr_engine.device == "cpu"
    assert funasr_engine.model_name == "tiny-paraformer"
    assert funasr_engine.models["punc"].endswith("tiny-ct-punc")
    audio = decode_audio(speech_dir / "funasr_example_zh.wav")
    seen = []
    t = funasr_engine.transcribe(audio.samples, progress=seen.append)
    assert isinstance(t.text, str) and t.text  # random weights: gibberish, but characters from its vocabulary
    assert t.engine == "funasr" and t.model == "tiny-paraformer"
    assert t.duration_s == pytest.approx(audio.duration_s)
    assert t.engine_s > 0 and t.rtf is not None
    assert t.segments
    for s in t.segments:
        assert isinstance(s.text, str) and 0 <= s.start <= s.end <= audio.duration_s
    assert seen and seen[-1] == 1.0
    # Silence gives no text and no segments, not an error.
    quiet = funasr_engine.transcribe(np.zeros(16000 * 2, np.float32))
    assert quiet.segments == [] and quiet.text == ""


@pytest.mark.funasr
async def test_funasr_worker_reports_its_engine(database_url, conn, store, funasr_engine):
    task_id = submit(conn, key("aishell_BAC009S0724W0121_zh.wav"), language="zh")
    async with Harness(database_url, funasr_engine, store) as h:
        await h.run_until_empty()
        name = h.settings.worker_name
    r = row(conn, task_id)
    assert r["status"] == "done", r["error"]
    assert (r["engine"], r["model"], r["language"]) == ("funasr", "tiny-paraformer", "zh")
    assert segments(conn, task_id)
    w = conn.execute("SELECT engine, device, models->>'asr', jobs_done FROM workers WHERE id = %s", (name,)).fetchone()
    assert w[0] == "funasr" and w[1] == "cpu" and w[2].endswith("tiny-paraformer") and w[3] == 1


@pytest.mark.models
def test_auto_falls_back_to_offline_loudly(caplog, tmp_path):
    settings = Settings(
        engine="auto",
        funasr_model=str(tmp_path / "no-such-model"),
        onnx_model=str(tmp_path / "no-onnx-model"),
        offline_model="tiny.en",
        cpu_threads=2,
    )
    with caplog.at_level(logging.WARNING, logger="asr_worker"):
        engine = load_engine(settings)
    assert engine.name == "offline" and engine.model_name == "whisper-tiny.en"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "FALLING BACK" in r.getMessage()]
    assert warnings and "whisper-tiny.en" in warnings[0].getMessage()
    assert "no-onnx-model" in warnings[0].getMessage()  # why the ONNX engine was not taken either


def test_bad_offline_model_is_an_engine_error(tmp_path):
    with pytest.raises(EngineError, match="ASR_OFFLINE_MODEL"):
        load_engine(Settings(engine="offline", offline_model=str(tmp_path)))


@pytest.mark.funasr
def test_funasr_without_vad_and_punctuation(tiny_funasr_dirs, speech_dir):
    from asr_worker.audio import decode_audio

    paraformer, _ = tiny_funasr_dirs
    engine = load_engine(
        Settings(
            engine="funasr",
            funasr_model=str(paraformer),
            funasr_vad_model="none",
            funasr_punc_model="none",
            cpu_threads=2,
        )
    )
    assert engine.models == {"asr": str(paraformer), "vad": "", "punc": ""}
    audio = decode_audio(speech_dir / "jfk_en.wav")
    t = engine.transcribe(audio.samples)
    assert all(0 <= s.start <= s.end <= audio.duration_s for s in t.segments)
