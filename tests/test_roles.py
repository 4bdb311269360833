"""Who may do what (migration 0004, scripts/lan_credentials.py): the three group roles, checked with
real logins, and a stack whose gateway and worker run as those logins.

Roles are cluster-wide: each test makes logins with unique names and drops them afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from psycopg import errors

from conftest import ARTIFACTS, GATEWAY_BIN, ROOT, SPEECH, WORKER_BIN, WSCLIENT, Stack, load_transcripts, scrubbed_env
from speech import error_rate, long_recording

sys.path.insert(0, str(ROOT / "scripts"))
import lan_credentials  # noqa: E402

JFK = SPEECH / "jfk_en.wav"
FAST_WORKER = {"ASR_HEARTBEAT_S": "1", "ASR_STALLED_AFTER_S": "5", "ASR_RECOVERY_INTERVAL_S": "1"}
DENIED = (errors.InsufficientPrivilege,)


@dataclass
class Logins:
    gateway: str
    worker: str
    reader: str


@pytest.fixture
def logins(database: str):
    # The template may predate migration 0004: bring this database up to date (a no-op otherwise).
    subprocess.run([str(GATEWAY_BIN), "migrate"], check=True, capture_output=True,
                   env=scrubbed_env(DATABASE_URL=database))
    tag = uuid.uuid4().hex[:8]
    names = {role: f"t-{tag}" for role in ("gateway", "worker", "reader")}
    made = []
    try:
        urls = {}
        for role, name in names.items():
            urls[role] = lan_credentials.create(database, role, name, "127.0.0.1")
            made.append(name)
        yield Logins(**urls)
    finally:
        for name in made:
            for _ in range(3):
                try:
                    lan_credentials.revoke(database, name)
                    break
                except (psycopg.Error, SystemExit):
                    time.sleep(1)


def denied(url: str, statement: str, params=None) -> bool:
    """Whether `statement` fails with a permission error (any other outcome is a test failure)."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement, params)
        except DENIED:
            return True
        return False


def scalar(url: str, query: str, params=None):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query, params).fetchone()[0]


def test_logins_are_scram_members_of_one_group(database, logins):
    for url, group in ((logins.gateway, "asr_gateway"), (logins.worker, "asr_worker"), (logins.reader, "asr_reader")):
        user = scalar(url, "SELECT current_user")
        assert scalar(database, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s",
                      (user,))
        groups = scalar(database, """
            SELECT array_agg(g.rolname ORDER BY g.rolname) FROM pg_auth_members m
              JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = %s""",
                        (user,))
        assert groups == [group]
        flags = scalar(database, "SELECT (rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls)::text "
                                 "FROM pg_roles WHERE rolname = %s", (user,))
        assert flags == "(f,f,f,f,f)"
    for group in ("asr_gateway", "asr_worker", "asr_reader"):
        assert scalar(database, "SELECT NOT rolcanlogin FROM pg_roles WHERE rolname = %s", (group,))
    # Nobody but the owner may create in the schema.
    assert not scalar(database, "SELECT has_schema_privilege('public', 'public', 'CREATE')")


@pytest.mark.parametrize("who", ["worker", "gateway", "reader"])
def test_no_login_changes_the_schema(logins, who):
    url = getattr(logins, who)
    for stmt in [
        "DROP TABLE segments",
        "DROP TABLE transcriptions CASCADE",
        "DROP VIEW history",
        "ALTER TABLE transcriptions ADD COLUMN pwned int",
        "ALTER TABLE workers DISABLE TRIGGER ALL",
        "ALTER TABLE procrastinate_jobs RENAME TO x",
        "TRUNCATE transcriptions",
        "TRUNCATE procrastinate_jobs CASCADE",
        "CREATE TABLE pwned (i int)",
        "CREATE TABLE public.pwned (i int)",
        "CREATE FUNCTION pwned() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE SCHEMA pwned",
        "CREATE INDEX pwned ON segments (text)",
        "DROP FUNCTION procrastinate_fetch_job_v2(character varying[], bigint)",
        "CREATE OR REPLACE FUNCTION asr_touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
        "DROP TRIGGER transcriptions_notify_update ON transcriptions",
        "SELECT * FROM schema_version",
        "UPDATE schema_version SET version = 0",
        "SELECT rolpassword FROM pg_authid",
        "SELECT passwd FROM pg_shadow",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_ls_dir('.')",
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "CREATE ROLE pwned LOGIN",
        "SET ROLE postgres",
        "SET ROLE asr_gateway" if who != "gateway" else "SET ROLE asr_worker",
    ]:
        assert denied(url, stmt), f"{who} may run: {stmt}"


def test_no_login_reads_other_sessions_queries(database, logins):
    with psycopg.connect(database, autocommit=True) as admin:
        admin.execute("SELECT 'a-secret-marker'")
        pid = admin.info.backend_pid
        for url in (logins.worker, logins.reader, logins.gateway):
            q = scalar(url, "SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
            assert q is None or "a-secret-marker" not in q


def test_worker_reaches_only_what_a_worker_needs(logins):
    w = logins.worker
    assert scalar(w, "SELECT count(*) FROM transcriptions") == 0
    assert scalar(w, "SELECT count(*) FROM procrastinate_jobs") == 0
    # Tasks are made and deleted by the gateway only; the registry is not the worker's to delete.
    assert denied(w, "INSERT INTO transcriptions (filename) VALUES ('x')")
    assert denied(w, "DELETE FROM transcriptions")
    assert denied(w, "DELETE FROM workers")
    assert denied(w, "INSERT INTO live_sessions (id, mode) VALUES (gen_random_uuid(), 'online')")
    assert denied(w, "INSERT INTO live_chunks (session_id, seq, pcm) VALUES (gen_random_uuid(), 0, '')")
    assert denied(w, "DELETE FROM procrastinate_events")
    assert denied(w, "UPDATE procrastinate_events SET type = NULL")
    # What Procrastinate's worker does, in its own words: register, heartbeat, fetch, prune, unregister.
    with psycopg.connect(w, autocommit=True) as conn:
        wid = conn.execute("SELECT procrastinate_register_worker_v1()").fetchone()[0]
        conn.execute("SELECT procrastinate_update_heartbeat_v1(%s)", (wid,))
        conn.execute("SELECT * FROM procrastinate_fetch_job_v2(ARRAY['batch']::varchar[], %s)", (wid,))
        conn.execute("SELECT procrastinate_prune_stalled_workers_v1(3600)")
        conn.execute("SELECT procrastinate_unregister_worker_v1(%s)", (wid,))


def test_gateway_cannot_write_the_registry_or_fetch_jobs(logins):
    g = logins.gateway
    assert scalar(g, "SELECT count(*) FROM workers") == 0
    assert denied(g, "INSERT INTO workers (id, host, pid, device, engine, queues) "
                     "VALUES ('x', 'h', 1, 'cpu', 'e', '{}')")
    assert denied(g, "UPDATE workers SET state = 'gone'")
    assert denied(g, "SELECT procrastinate_fetch_job_v2(ARRAY['batch']::varchar[], NULL)")
    assert denied(g, "SELECT procrastinate_register_worker_v1()")
    assert denied(g, "DELETE FROM procrastinate_workers")


def test_reader_sees_the_views_and_nothing_else(database, logins):
    r = logins.reader
    with psycopg.connect(database, autocommit=True) as admin:
        tid = admin.execute("INSERT INTO transcriptions (filename, status, text) VALUES ('a.wav', 'done', 'hello') "
                            "RETURNING id").fetchone()[0]
        admin.execute("INSERT INTO segments (transcription_id, idx, start_s, end_s, text) "
                      "VALUES (%s, 0, 0, 1, 'hello')", (tid,))
    assert scalar(r, "SELECT text FROM history WHERE task_id = %s", (tid,)) == "hello"
    assert scalar(r, "SELECT count(*) FROM history_segments WHERE task_id = %s", (tid,)) == 1
    for table in ["transcriptions", "segments", "transcription_pieces", "workers", "live_sessions", "live_chunks",
                  "live_sentences",
                  "procrastinate_jobs", "procrastinate_events", "procrastinate_workers",
                  "procrastinate_periodic_defers", "schema_version"]:
        assert denied(r, f"SELECT 1 FROM {table} LIMIT 1"), f"reader may read {table}"
    for stmt in [
        "INSERT INTO history (task_id) VALUES (gen_random_uuid())",
        "UPDATE history SET text = 'x'",
        "DELETE FROM history",
        "UPDATE history_segments SET text = 'x'",
        "DELETE FROM history_segments",
        "SELECT procrastinate_defer_jobs_v1(ARRAY[]::procrastinate_job_to_defer_v1[])",
        "SELECT procrastinate_cancel_job_v1(1, false, false)",
        "SELECT procrastinate_register_worker_v1()",
    ]:
        assert denied(r, stmt), f"reader may run: {stmt}"
    assert scalar(database, "SELECT text FROM transcriptions WHERE id = %s", (tid,)) == "hello"


class LoginStack(Stack):
    """A Stack whose gateway and workers log in as the given roles (self.db_url stays the superuser's,
    for the test's own checks)."""

    gateway_url: str = ""
    worker_url: str = ""

    def start_gateway(self) -> None:
        env = scrubbed_env(DATABASE_URL=self.gateway_url, ASR_MIGRATE="false",
                           ASR_HTTP_ADDR=f"127.0.0.1:{self.port}", ASR_STORAGE_DIR=str(self.store),
                           ASR_MAX_UPLOAD_MB="8")
        self._spawn("gateway", [str(GATEWAY_BIN), "serve"], env)
        self.wait_http()

    def start_worker(self, name: str = "worker-1", **extra: str) -> subprocess.Popen:
        env = scrubbed_env(DATABASE_URL=self.worker_url, ASR_STORAGE_URL=self.store.as_uri(),
                           ASR_WORKER_NAME=name, **extra)
        return self._spawn(name, [str(WORKER_BIN), "run"], env)


def stream_live(stack: Stack) -> list[dict]:
    import json

    out = subprocess.run([str(WSCLIENT), "-url", f"ws://127.0.0.1:{stack.port}/", "-speed", "2", "-mode", "2pass",
                          "-timeout", "120s", str(JFK)], capture_output=True, text=True, timeout=180)
    return [json.loads(line)["msg"] for line in out.stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def login_stack(database, logins, tmp_path, request):
    """Gateway as the asr_gateway login, workers as the asr_worker login. After the test, no
    process may have hit a permission error."""
    logs = ARTIFACTS / request.node.name
    logs.mkdir(parents=True, exist_ok=True)
    for f in logs.glob("*.log"):
        f.unlink()
    store = tmp_path / "audio"
    store.mkdir()
    s = LoginStack(db_url=database, store=store, logs=logs)
    s.gateway_url, s.worker_url = logins.gateway, logins.worker
    try:
        s.start_gateway()
        yield s
    finally:
        s.stop()
    for f in sorted(logs.glob("*.log")):
        text = f.read_text(errors="replace").lower()
        assert "permission denied" not in text and "insufficientprivilege" not in text, \
            f"{f.stem} hit a permission error; see {f}"


def test_stack_runs_with_least_privilege_logins(login_stack, logins):
    """A file and a live session go all the way through; the reader sees both; the gateway deletes."""
    s = login_stack
    s.start_worker(**FAST_WORKER)
    s.wait_ready(timeout=300)
    ref = load_transcripts()["jfk_en.wav"]["text"]

    r = s.submit(JFK)
    assert r.status_code == 202, r.text
    tid = r.json()["task_id"]
    res = s.wait_done(tid, timeout=300)
    assert res["status"] == "done", res
    assert error_rate(ref, res["text"], "en") <= 0.15, res["text"]
    assert res["segments"]

    live_msgs = stream_live(s)
    assert live_msgs and live_msgs[-1].get("is_final") and live_msgs[-1].get("is_end"), live_msgs[-3:]
    sid = live_msgs[-1]["session_id"]
    deadline = time.monotonic() + 60
    while (row := s.result(sid))["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert row["status"] == "done", row
    assert error_rate(ref, row["text"], "en") <= 0.15, row["text"]

    # The reader sees both through the views.
    with psycopg.connect(logins.reader) as conn:
        seen = {str(x) for (x,) in conn.execute("SELECT task_id FROM history").fetchall()}
    assert {tid, sid} <= seen
    # The processes ran as the logins, not as the superuser.
    users = {u for (u,) in s.sql("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")}
    assert users <= {scalar(logins.gateway, "SELECT current_user"), scalar(logins.worker, "SELECT current_user")}, users
    assert httpx.get(f"{s.base}/api/v1/workers", timeout=10).status_code == 200
    # The gateway deletes a task and its job (procrastinate_jobs' delete trigger runs as it).
    r = httpx.delete(f"{s.base}/api/v1/asr/task/{tid}", timeout=10)
    assert r.status_code < 300, r.text
    assert s.sql("SELECT count(*) FROM transcriptions WHERE id = %s", tid)[0][0] == 0
    time.sleep(2)  # a few recovery passes and heartbeats as the worker login


def test_killed_worker_job_is_recovered_under_the_worker_login(login_stack, tmp_path):
    """Stalled-job recovery (Procrastinate's stalled-job query, retry, prune; the registry's
    mark-gone) works with the worker's grants."""
    s = login_stack
    s.start_worker("worker-a", **FAST_WORKER)
    s.wait_ready(timeout=300)
    task = s.submit(long_recording(tmp_path / "long.wav", seconds=60)).json()["task_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        res = s.result(task)
        if res["status"] == "processing" and res["progress"] > 0:
            break
        time.sleep(0.2)
    assert res["status"] == "processing", res
    s.kill("worker-a")
    s.start_worker("worker-b", **FAST_WORKER)
    res = s.wait_done(task, timeout=180)
    assert res["status"] == "done" and res["worker"] == "worker-b", res
    assert s.sql("SELECT attempts FROM transcriptions")[0][0] == 2
    assert s.sql("SELECT state FROM workers WHERE id = 'worker-a'")[0][0] == "gone"
