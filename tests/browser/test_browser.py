"""Browser acceptance test: Debian's Chromium (playwright-core) against the real gateway and worker.

The flow itself is tests/browser/flow.mjs (Node): upload jfk_en.wav and read "fellow Americans";
live captions from Chromium's fake microphone fed by the same file (a partial, then a final with
"country"); find the session by searching the history; download its SRT and parse it; see the
worker on the System page; switch to Chinese; check the phone width. Screenshots go to
tests/artifacts/browser/; with UPDATE_SCREENSHOTS=1 the README's ones in docs/screenshots/ are
replaced too.

Needs /usr/bin/chromium (scripts/ensure-chromium.sh installs it), frontend/node_modules
(`make frontend`) and a gateway binary with the current UI embedded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ARTIFACTS, GATEWAY_BIN, ROOT, SPEECH, Stack, free_port, scrubbed_env

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
FLOW = Path(__file__).with_name("flow.mjs")
SHOTS = ARTIFACTS / "browser"
DOCS_SHOTS = ROOT / "docs" / "screenshots"


UI_DIR = ROOT / "gateway-go" / "ui" / "dist"


@pytest.fixture
def ui_stack(database: str, tmp_path: Path):
    """Like conftest's `stack`, but the gateway serves the current frontend build (ASR_UI_DIR), so
    the test never runs against a UI embedded in an older binary."""
    logs = ARTIFACTS / "browser-stack"
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    store = tmp_path / "audio"
    store.mkdir()
    s = Stack(db_url=database, store=store, logs=logs)
    extra = {"ASR_UI_DIR": str(UI_DIR)} if (UI_DIR / "index.html").exists() else {}
    env = scrubbed_env(DATABASE_URL=s.db_url, ASR_HTTP_ADDR=f"127.0.0.1:{s.port}",
                       ASR_STORAGE_DIR=str(s.store), ASR_MAX_UPLOAD_MB="32", **extra)
    s._spawn("gateway", [str(GATEWAY_BIN), "serve"], env)
    s.wait_http()
    yield s
    s.stop()


def test_browser_flow(ui_stack: Stack) -> None:
    stack = ui_stack
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: run scripts/ensure-chromium.sh as root "
                    "(apt-get install chromium fonts-noto-cjk)")
    node = shutil.which("node")
    if not node:
        pytest.fail("node is not on PATH")
    if not (ROOT / "frontend" / "node_modules" / "playwright-core").exists():
        pytest.fail("frontend/node_modules is missing: run `make frontend` (npm ci)")

    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_") and k != "DATABASE_URL"}
    env.update(BASE=stack.base + "/", SPEECH=str(SPEECH), ARTIFACTS=str(SHOTS), CHROMIUM=CHROMIUM)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        env["DOCS_SHOTS"] = str(DOCS_SHOTS)

    def flow(mode: str) -> None:
        proc = subprocess.run([node, str(FLOW)], env={**env, "MODE": mode}, cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
        (SHOTS / f"flow-{mode}.log").write_text(proc.stdout + proc.stderr)
        print(proc.stdout)
        assert proc.returncode == 0, (
            f"browser flow '{mode}' failed (screenshots and logs in {SHOTS}, stack logs in {stack.logs}):\n"
            + proc.stdout[-6000:] + proc.stderr[-3000:]
        )

    # Before any worker runs: the live page explains that no worker serves live sessions, and a
    # refused microphone reads as such.
    flow("errors")

    stack.start_worker("browser-worker")
    stack.wait_ready(timeout=240)
    flow("main")

    # A second gateway on the same database with ASR_API_TOKEN set: the page asks for the token.
    token = "lan-" + os.urandom(6).hex()
    port = free_port()
    tenv = scrubbed_env(DATABASE_URL=stack.db_url, ASR_HTTP_ADDR=f"127.0.0.1:{port}",
                        ASR_STORAGE_DIR=str(stack.store), ASR_API_TOKEN=token, ASR_MIGRATE="false",
                        **({"ASR_UI_DIR": str(UI_DIR)} if (UI_DIR / "index.html").exists() else {}))
    stack._spawn("gateway-token", [str(GATEWAY_BIN), "serve"], tenv)
    Stack(db_url=stack.db_url, store=stack.store, logs=stack.logs, port=port).wait_http()
    env.update(BASE=f"http://127.0.0.1:{port}/", TOKEN=token)
    flow("token")
