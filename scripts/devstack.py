"""Run the whole stack in the foreground: `make run` and `make worker` call this.

run     PostgreSQL (the embedded cluster under .data/pg unless DATABASE_URL is set), migrations,
        the gateway and one worker; prints the URL once /api/v1/health is ready. Ctrl-C stops
        all of it, the cluster too, and a second run reuses .data.
        With the embedded cluster the gateway runs as the owner role (it applies the migrations)
        and the worker as a login of the group asr_worker (`worker_local`, made on first run, its
        URL kept in .data/worker-db-url, mode 0600), so every run exercises least privilege.
worker  one more worker against the running stack (DATABASE_URL, else .data/worker-db-url, else
        .data/db-url).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import devdb  # noqa: E402
import lan_credentials  # noqa: E402

DATA = ROOT / ".data"
GATEWAY = Path(os.environ.get("ASR_GATEWAY_BIN", ROOT / "bin" / "asr-gateway"))
WORKER = ROOT / ".venv" / "bin" / "asr-worker"
WORKER_URL_FILE = DATA / "worker-db-url"
WORKER_LOGIN = "local"  # the login worker_local in group asr_worker
READY_TIMEOUT_S = float(os.environ.get("ASR_READY_TIMEOUT_S", "900"))


def log(msg: str) -> None:
    print(f"\033[1m[stack]\033[0m {msg}", flush=True)


def base_env() -> tuple[dict[str, str], bool]:
    """Environment for the children, and whether we started the embedded cluster."""
    env = dict(os.environ)
    started = False
    if not env.get("DATABASE_URL"):
        port = int(env.get("ASR_PG_PORT", "54329"))
        log(f"DATABASE_URL is unset: using the embedded PostgreSQL cluster in {DATA / 'pg'} (port {port})")
        env["DATABASE_URL"] = devdb.start(DATA / "pg", port, env.get("ASR_PG_LISTEN", "127.0.0.1"), trust=False)
        started = True
    audio = DATA / "audio"
    env.setdefault("ASR_STORAGE_DIR", str(audio))
    env.setdefault("ASR_STORAGE_URL", Path(env["ASR_STORAGE_DIR"]).resolve().as_uri())
    env.setdefault("ASR_HTTP_ADDR", "127.0.0.1:8080")
    env.setdefault("PYTHONUNBUFFERED", "1")
    Path(env["ASR_STORAGE_DIR"]).mkdir(parents=True, exist_ok=True)
    return env, started


def pump(name: str, proc: subprocess.Popen) -> None:
    colour = {"gateway": "36", "worker": "33"}.get(name.split("-")[0], "35")
    for line in proc.stdout:  # type: ignore[union-attr]
        sys.stdout.write(f"\033[{colour}m[{name}]\033[0m {line}")
        sys.stdout.flush()


def spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    threading.Thread(target=pump, args=(name, proc), daemon=True).start()
    return proc


def health(addr: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://{addr}/api/v1/health", timeout=2) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.load(e)
        except ValueError:
            return e.code, {}
    except (OSError, ValueError):
        return 0, {}


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run() -> int:
    env, started_db = base_env()
    procs: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    code = 0
    try:
        log("applying migrations")
        subprocess.run([str(GATEWAY), "migrate"], env=env, check=True)
        worker_env = env
        if started_db:
            worker_env = {**env, "DATABASE_URL": lan_credentials.ensure(
                env["DATABASE_URL"], "worker", WORKER_LOGIN, WORKER_URL_FILE)}
            log(f"the worker logs in as {lan_credentials.login_name('worker', WORKER_LOGIN)} "
                f"(group asr_worker; URL in {WORKER_URL_FILE.relative_to(ROOT)})")
        procs.append(spawn("gateway", [str(GATEWAY), "serve"], env))
        procs.append(spawn("worker", [str(WORKER), "run"], worker_env))
        addr = env["ASR_HTTP_ADDR"]
        log(f"waiting for http://{addr}/api/v1/health (the first start prepares the models)")
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = False
        while not stopping:
            for p in procs:
                if p.poll() is not None:
                    log(f"a process exited unexpectedly (pid {p.pid}, code {p.returncode}); stopping")
                    code = p.returncode or 1
                    stopping = True
            if stopping:
                break
            if not ready:
                status, body = health(addr)
                if status == 200:
                    ready = True
                    log(f"ready: open http://{addr}  (database: `make db-url`; Ctrl-C stops everything)")
                elif time.monotonic() > deadline:
                    log(f"not ready after {READY_TIMEOUT_S:.0f} s: {body.get('reason', body)}")
                    deadline = float("inf")
            time.sleep(0.5)
    except subprocess.CalledProcessError as e:
        log(f"failed: {e}")
        code = e.returncode or 1
    finally:
        log("stopping")
        stop_all(procs)
        if started_db:
            devdb.stop(DATA / "pg")
        log("stopped")
    return code


def worker() -> int:
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        # The least-privileged login `make run` made; stacks from before it have only the owner's.
        url_file = WORKER_URL_FILE if WORKER_URL_FILE.exists() else DATA / "db-url"
        if not url_file.exists():
            log("no running stack found (.data/db-url is missing): start one with `make run`, or set DATABASE_URL")
            return 1
        env["DATABASE_URL"] = url_file.read_text().strip()
    env.setdefault("ASR_STORAGE_URL", (DATA / "audio").resolve().as_uri())
    env.setdefault("PYTHONUNBUFFERED", "1")
    os.execve(str(WORKER), [str(WORKER), "run"], env)
    return 0


def main() -> int:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "run"
    if cmd == "run":
        return run()
    if cmd == "worker":
        return worker()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
