"""The OpenAI-compatible endpoint with the official `openai` client, over the real processes."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from conftest import SPEECH, Stack, load_transcripts, scrubbed_env, GATEWAY_BIN
from speech import error_rate

JFK = SPEECH / "jfk_en.wav"
TIMING = re.compile(r"\d\d:\d\d:\d\d[,.]\d\d\d --> \d\d:\d\d:\d\d[,.]\d\d\d")


def reference() -> str:
    return load_transcripts()["jfk_en.wav"]["text"]


def assert_close(text: str) -> None:
    rate = error_rate(reference(), text, "en")
    assert rate <= 0.10, f"error rate {rate:.2%}: {text!r}"


def transcribe(client: OpenAI, **kwargs):
    with open(JFK, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


def test_openai_client_every_response_format(stack):
    """The official client transcribes jfk_en.wav in json, text, srt, vtt and verbose_json."""
    stack.start_worker()
    stack.wait_ready()
    client = OpenAI(base_url=stack.base + "/v1", api_key="x", timeout=300, max_retries=0)

    models = [m.id for m in client.models.list()]
    assert "whisper-1" in models and len(models) >= 2, models

    res = transcribe(client, response_format="json", language="en", prompt="Americans", temperature=0.0)
    assert_close(res.text)

    text = transcribe(client, response_format="text")
    assert isinstance(text, str)
    assert_close(text)

    srt = transcribe(client, response_format="srt")
    assert isinstance(srt, str) and srt.lstrip().startswith("1\n"), srt
    assert TIMING.search(srt) and "," in TIMING.search(srt).group(0), srt
    assert_close(" ".join(l for l in srt.splitlines() if l.strip() and not l.strip().isdigit() and "-->" not in l))

    vtt = transcribe(client, response_format="vtt")
    assert isinstance(vtt, str) and vtt.startswith("WEBVTT"), vtt
    assert TIMING.search(vtt)

    verbose = transcribe(client, response_format="verbose_json", timestamp_granularities=["segment", "word"])
    assert verbose.task == "transcribe"
    assert verbose.language in ("english", "en")
    assert 10 < verbose.duration < 12, verbose.duration
    assert_close(verbose.text)
    assert verbose.segments, verbose
    starts = [s.start for s in verbose.segments]
    assert starts == sorted(starts)
    for i, seg in enumerate(verbose.segments):
        assert seg.id == i and seg.end >= seg.start and seg.text.strip()
        assert seg.tokens == [] and seg.temperature == 0 and seg.no_speech_prob == 0

    # Every request became a normal transcription, listed in history; the prompt became hotwords.
    hist = httpx.get(f"{stack.base}/api/v1/asr/history", params={"limit": 50}).json()
    assert hist["total"] == 5 and all(r["status"] == "done" for r in hist["records"]), hist
    assert sorted(r["hotwords"] for r in hist["records"]) == ["", "", "", "", "Americans"]
    assert stack.sql("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")[0][0] == 5

    # /metrics, read by Prometheus' own parser, counted the uploads and the finished jobs.
    def scrape() -> dict[str, list]:
        out: dict[str, list] = {}
        for fam in text_string_to_metric_families(httpx.get(f"{stack.base}/metrics").text):
            for sample in fam.samples:
                out.setdefault(sample.name, []).append(sample)
        return out

    deadline = time.monotonic() + 10
    while True:  # the job histograms are fed from task events, a moment after the answers
        metrics = scrape()
        jobs = sum(s.value for s in metrics.get("asr_job_real_time_factor_count", []))
        if jobs == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert jobs == 5, metrics.get("asr_job_real_time_factor_count")
    assert metrics["asr_uploads_total"][0].value == 5
    assert {s.labels["queue"] for s in metrics["asr_queue_depth"]} >= {"batch", "live"}
    routes = {(s.labels["route"], s.labels["status"]) for s in metrics["asr_http_requests_total"]}
    assert ("POST /v1/audio/transcriptions", "200") in routes

    # Errors come in OpenAI's shape with the right statuses.
    with pytest.raises(openai.APIStatusError) as exc:
        client.audio.transcriptions.create(model="whisper-1", file=("x.wav", b"not audio at all" * 8), response_format="json")
    assert exc.value.status_code == 415
    assert exc.value.body["type"] == "invalid_request_error" and exc.value.body["param"] == "file"
    with pytest.raises(openai.BadRequestError) as exc:
        transcribe(client, response_format="xml")
    assert exc.value.status_code == 400 and exc.value.body["param"] == "response_format"
    r = httpx.post(f"{stack.base}/v1/audio/transcriptions", data={"model": "whisper-1"}, files={"other": ("a", b"a")})
    assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_openai_client_with_api_token(stack):
    """With ASR_API_TOKEN set the client works with the token as its api_key and fails with another."""
    token = "s3cret-token-for-tests"
    guarded = Stack(db_url=stack.db_url, store=stack.store, logs=stack.logs)
    env = scrubbed_env(DATABASE_URL=stack.db_url, ASR_HTTP_ADDR=f"127.0.0.1:{guarded.port}",
                       ASR_STORAGE_DIR=str(stack.store), ASR_MAX_UPLOAD_MB="8", ASR_API_TOKEN=token,
                       ASR_MIGRATE="false")
    guarded._spawn("gateway-token", [str(GATEWAY_BIN), "serve"], env)
    try:
        guarded.wait_http()
        stack.start_worker()
        guarded.wait_ready()  # the health check needs no token

        good = OpenAI(base_url=guarded.base + "/v1", api_key=token, timeout=300, max_retries=0)
        assert_close(transcribe(good, response_format="json").text)
        assert "whisper-1" in [m.id for m in good.models.list()]

        bad = OpenAI(base_url=guarded.base + "/v1", api_key="wrong", timeout=30, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as exc:
            transcribe(bad, response_format="json")
        assert exc.value.status_code == 401 and exc.value.body["code"] == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()

        # The rest of the API, and /metrics, need the token too: header or query parameter.
        assert httpx.get(f"{guarded.base}/api/v1/asr/history").status_code == 401
        assert httpx.get(f"{guarded.base}/metrics").status_code == 401
        assert httpx.get(f"{guarded.base}/api/v1/asr/history", params={"token": token}).status_code == 200
        r = httpx.get(f"{guarded.base}/api/v1/asr/history", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["total"] == 1
        # No token ever reaches the log.
        assert token not in (stack.logs / "gateway-token.log").read_text()
    finally:
        guarded.stop()
