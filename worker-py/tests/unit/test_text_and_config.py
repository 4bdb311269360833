"""Simplified Chinese output, language codes, sentence joining, and settings from the environment."""

from __future__ import annotations

import pytest

from asr_worker.config import SETTINGS_HELP, ConfigError, Settings, load_settings, read_env_file
from asr_worker.text import join_texts, normalize_language, to_simplified


def test_traditional_becomes_simplified():
    assert to_simplified("歡迎大家來體驗達摩院推出的語音識別模型") == "欢迎大家来体验达摩院推出的语音识别模型"
    assert to_simplified("廣州市房地產中介協會分析") == "广州市房地产中介协会分析"
    assert to_simplified("already simplified 简体") == "already simplified 简体"
    assert to_simplified("") == ""


@pytest.mark.parametrize(
    "given,want",
    [
        (None, None),
        ("", None),
        ("auto", None),
        ("AUTO", None),
        ("zh", "zh"),
        ("zh-CN", "zh"),
        ("EN", "en"),
        ("en_US", "en"),
        ("cmn", "zh"),
    ],
)
def test_normalize_language(given, want):
    assert normalize_language(given) == want


def test_join_texts():
    assert join_texts(["Hello there.", " How are you?"]) == "Hello there. How are you?"
    assert join_texts(["欢迎大家。", "来体验。"]) == "欢迎大家。来体验。"
    assert join_texts(["", "a", "  "]) == "a"


def test_defaults_match_the_contract(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings({})
    assert s.worker_queues == ("batch", "live", "final")
    assert s.engine == "auto"
    assert s.offline_model == "base"
    assert s.device == "auto"
    assert s.concurrency == 1
    assert (s.heartbeat_s, s.stalled_after_s, s.recovery_interval_s) == (2, 10, 5)
    assert s.storage_url == (tmp_path / ".data" / "audio").as_uri()
    assert s.log_level == "info"


def test_env_overrides_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        "# comment\nexport ASR_WORKER_QUEUES=batch, final\nASR_CONCURRENCY='3'\nDATABASE_URL=\"postgresql:///x\"\n"
    )
    s = load_settings({"ASR_CONCURRENCY": "2"})
    assert s.worker_queues == ("batch", "final")
    assert s.concurrency == 2
    assert s.database_url == "postgresql:///x"
    assert read_env_file(tmp_path / "missing") == {}


@pytest.mark.parametrize(
    "env",
    [
        {"ASR_ENGINE": "gpu"},
        {"ASR_CONCURRENCY": "0"},
        {"ASR_HEARTBEAT_S": "fast"},
        {"ASR_WORKER_QUEUES": ","},
        {"ASR_LIVE_SHORT_CONTEXT": "maybe"},
    ],
)
def test_bad_settings(env, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError):
        load_settings(env)


@pytest.mark.parametrize("raw,want", [("true", True), ("1", True), ("On", True), ("false", False), ("0", False)])
def test_boolean_settings(raw, want, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings({"ASR_LIVE_SHORT_CONTEXT": raw}).live_short_context is want


def test_help_lists_every_setting():
    import dataclasses

    for f in dataclasses.fields(Settings):
        assert f.metadata["env"] in SETTINGS_HELP


def test_worker_name():
    assert Settings(worker_name="w1").resolved_worker_name() == "w1"
    a, b = Settings().resolved_worker_name(), Settings().resolved_worker_name()
    assert a != b and a.count("-") >= 2
