"""The ONNX engine on FunASR's own ONNX exports of tiny random paraformers, with the real fsmn-vad.

The exports are made here (``asr_worker.engines.onnx_export``, i.e. ``AutoModel.export``), which needs
torch and funasr; the engine itself then runs on onnxruntime alone. Random weights: the tests check
shapes, times, int8 selection, state isolation and that the ONNX graph decodes like the torch model.
"""

from __future__ import annotations

import difflib
import logging

import numpy as np
import pytest

from asr_worker.config import Settings
from asr_worker.engines import load_engine, load_live
from asr_worker.engines.models import fsmn_vad_dir

from .conftest import Harness, key, row, segments, submit

pytestmark = pytest.mark.funasr


@pytest.fixture(scope="session")
def onnx_dirs(tmp_path_factory):
    """Tiny paraformer (plain and BiCif, with timestamps), ct-punc and paraformer-streaming, exported."""
    pytest.importorskip("torch")
    pytest.importorskip("funasr")
    pytest.importorskip("onnx")
    from asr_worker.engines.onnx_export import export_onnx

    from ..support.tiny_paraformer import (
        build_tiny_bicif_paraformer,
        build_tiny_ct_punc,
        build_tiny_paraformer,
        build_tiny_paraformer_streaming,
    )

    root = tmp_path_factory.mktemp("onnx-models")
    src = {
        "bicif": build_tiny_bicif_paraformer(root / "src" / "tiny-bicif"),
        "plain": build_tiny_paraformer(root / "src" / "tiny-paraformer"),
        "punc": build_tiny_ct_punc(root / "src" / "tiny-ct-punc"),
        "streaming": build_tiny_paraformer_streaming(root / "src" / "tiny-paraformer-streaming"),
    }
    out = {name: export_onnx(str(path), root / "onnx" / path.name) for name, path in src.items()}
    out["src"] = src
    return out


@pytest.fixture(scope="session")
def onnx_engine(onnx_dirs):
    return load_engine(
        Settings(
            engine="onnx",
            onnx_model=str(onnx_dirs["bicif"]),
            onnx_punc_model=str(onnx_dirs["punc"]),
            onnx_streaming_model=str(onnx_dirs["streaming"]),
            cpu_threads=2,
        )
    )


def test_export_writes_fp32_and_int8_graphs(onnx_dirs):
    for name, graphs in (("bicif", ["model"]), ("punc", ["model"]), ("streaming", ["model", "decoder"])):
        d = onnx_dirs[name]
        for g in graphs:
            assert (d / f"{g}.onnx").stat().st_size > 0 and (d / f"{g}_quant.onnx").stat().st_size > 0
        assert (d / "config.yaml").is_file() and (d / "tokens.json").is_file()
        assert not (d / "model.pt").exists()  # the laptop gets graphs, not the torch checkpoint


def test_onnx_engine_transcribes_real_audio(onnx_engine, speech_dir):
    from asr_worker.audio import decode_audio
    from asr_worker.engines.vad import FsmnVad

    e = onnx_engine
    assert (e.name, e.device, e.kind, e.timestamps) == ("onnx", "cpu", "paraformer", True)
    assert e.model_name == "tiny-bicif-int8" and e.models["precision"] == "int8"
    assert (e.models["asr"], e.models["punc"], e.models["vad"]) == ("tiny-bicif", "tiny-ct-punc", "fsmn-vad")
    audio = decode_audio(speech_dir / "jfk_en.wav")
    seen = []
    t = e.transcribe(audio.samples, progress=seen.append)
    assert t.engine == "onnx" and t.model == "tiny-bicif-int8"
    assert t.duration_s == pytest.approx(audio.duration_s) and t.rtf is not None and t.engine_s > 0
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    # Sentences cut at punctuation (ct-punc), timed by the paraformer's token timestamps, inside the speech.
    spans = FsmnVad(fsmn_vad_dir(), threads=1)(audio.samples)
    assert len(t.segments) >= len(spans)
    punct = set("，。？、,.?")
    for s in t.segments:
        assert s.text and s.text[-1] in punct, s
        assert 0 <= s.start <= s.end <= audio.duration_s
        # A sentence may run across a pause, but it starts and ends in speech.
        assert any(sp.start - 0.3 <= s.start <= sp.end + 0.3 for sp in spans), s
        assert any(sp.start - 0.3 <= s.end <= sp.end + 0.3 for sp in spans), s
    starts = [s.start for s in t.segments]
    assert starts == sorted(starts)
    assert t.segments[0].start >= spans[0].start - 0.3 and t.segments[-1].end <= spans[-1].end + 0.3
    assert t.text == "".join(s.text for s in t.segments)  # CJK vocabulary: no spaces between sentences
    # Silence: no text, no segments, no error.
    quiet = e.transcribe(np.zeros(16000 * 2, np.float32))
    assert quiet.segments == [] and quiet.text == ""


def test_plain_paraformer_without_timestamps_gives_one_sentence_per_vad_segment(onnx_dirs, speech_dir):
    from asr_worker.audio import decode_audio
    from asr_worker.engines.vad import FsmnVad

    e = load_engine(
        Settings(
            engine="onnx",
            onnx_model=str(onnx_dirs["plain"]),
            onnx_punc_model="none",
            onnx_quantize="false",
            worker_queues=("batch",),
            cpu_threads=2,
        )
    )
    assert e.timestamps is False and e.model_name == "tiny-paraformer" and e.models["precision"] == "fp32"
    assert e.punc is None and e.streaming is None
    audio = decode_audio(speech_dir / "jfk_en.wav")
    t = e.transcribe(audio.samples)
    spans = FsmnVad(fsmn_vad_dir(), threads=1, max_segment_s=30.0)(audio.samples)
    assert [(s.start, s.end) for s in t.segments] == [
        (round(sp.start, 3), round(min(sp.end, audio.duration_s), 3)) for sp in spans
    ]


def test_onnx_graph_decodes_like_the_torch_model(onnx_dirs, speech_dir):
    """Same weights, two runtimes: the fp32 export's tokens match torch's (random weights, so a real check)."""
    from funasr import AutoModel

    from asr_worker.audio import decode_audio
    from asr_worker.engines.onnx_engine import OnnxEngine

    clip = decode_audio(speech_dir / "funasr_example_zh.wav").samples[: 16000 * 4]
    # Both runtimes without dither (kaldi fbank's default adds random noise: with random weights
    # that flips near-tied tokens from run to run). Set at build time: AutoModel restores its
    # kwargs before each call, so changing the frontend afterwards does not always hold.
    torch_model = AutoModel(
        model=str(onnx_dirs["src"]["plain"]),
        device="cpu",
        disable_update=True,
        disable_pbar=True,
        disable_log=True,
        frontend_conf={"dither": 0.0},
    )
    want = torch_model.generate(input=clip)[0]["text"].replace(" ", "")
    e = OnnxEngine(model=onnx_dirs["plain"], quantize="false", cpu_threads=2)
    got, stamps = e._paraformer(clip, "")
    got = got.replace(" ", "")
    assert want and stamps is None
    assert difflib.SequenceMatcher(None, want, got).ratio() >= 0.9, (want, got)
    # int8 is a different graph of the same model: close, not necessarily equal.
    q = OnnxEngine(model=onnx_dirs["plain"], quantize="true", cpu_threads=2)
    assert q.model_name == "tiny-paraformer-int8"
    assert difflib.SequenceMatcher(None, want, q._paraformer(clip, "")[0].replace(" ", "")).ratio() >= 0.5


def test_auto_takes_onnx_when_funasr_is_unavailable_and_says_why(onnx_dirs, tmp_path, caplog):
    settings = Settings(
        engine="auto",
        funasr_model=str(tmp_path / "no-such-model"),
        onnx_model=str(onnx_dirs["bicif"]),
        onnx_punc_model=str(onnx_dirs["punc"]),
        worker_queues=("batch",),
        cpu_threads=2,
    )
    with caplog.at_level(logging.INFO, logger="asr_worker"):
        engine = load_engine(settings)
    assert engine.name == "onnx"
    msgs = [r.getMessage() for r in caplog.records]
    assert any("took engine=onnx" in m and "no-such-model" in m for m in msgs), msgs
    assert any(m.startswith("Engine onnx on cpu") and "precision=int8" in m for m in msgs), msgs


def test_onnx_streaming_partials_keep_each_session_apart(onnx_engine, speech_dir):
    """One shared paraformer-online: two interleaved sessions get exactly what each would get alone."""
    from asr_worker.audio import decode_audio
    from asr_worker.engines.onnx_engine import OnnxStreamingPartials

    live = load_live(Settings(cpu_threads=2), onnx_engine)
    assert live.streaming_model_name == "tiny-paraformer-streaming"
    zh = decode_audio(speech_dir / "funasr_example_zh.wav").samples
    en = decode_audio(speech_dir / "jfk_en.wav").samples[: len(zh)]

    def chunks(x):
        return [x[i : i + 9600] for i in range(0, len(x), 9600)]

    def alone(x):
        p = live.new_partials()
        for i, c in enumerate(chunks(x)):
            p.feed(c, is_final=i == len(chunks(x)) - 1)
        return p.text

    a, b = live.new_partials(), live.new_partials()
    assert isinstance(a, OnnxStreamingPartials) and a.model is not b.model
    assert a.model.frontend is not b.model.frontend
    texts = []
    for i, (ca, cb) in enumerate(zip(chunks(zh), chunks(en), strict=False)):
        last = i == len(chunks(zh)) - 1
        a.feed(ca, is_final=last)
        b.feed(cb, is_final=last)
        got = a.poll(zh, language=None, pending=False)
        if got is not None:
            texts.append(got[0])
    assert a.text and b.text
    assert (a.text, b.text) == (alone(zh), alone(en))
    assert texts and all(t2.startswith(t1) for t1, t2 in zip(texts, texts[1:], strict=False))  # partials grow
    a.reset()
    assert a.cache == {} and a.text == ""


async def test_onnx_worker_reports_its_engine(database_url, conn, store, onnx_engine):
    task_id = submit(conn, key("aishell_BAC009S0724W0121_zh.wav"), language="zh")
    async with Harness(database_url, onnx_engine, store) as h:
        await h.run_until_empty()
        name = h.settings.worker_name
    r = row(conn, task_id)
    assert r["status"] == "done", r["error"]
    assert (r["engine"], r["model"], r["language"]) == ("onnx", "tiny-bicif-int8", "zh")
    segs = segments(conn, task_id)
    assert segs and all(0 <= s[1] <= s[2] <= r["duration_s"] + 0.01 for s in segs)
    w = conn.execute(
        "SELECT engine, device, models->>'asr', models->>'precision' FROM workers WHERE id = %s", (name,)
    ).fetchone()
    assert w == ("onnx", "cpu", "tiny-bicif", "int8")
