"""Multi-host acceptance: a "laptop" in its own network namespace joins the master over a veth link.

The master is the root namespace: its own PostgreSQL cluster (scripts/devdb.py, listening on
127.0.0.1 and the master's veth address, scram-sha-256 for everyone off loopback), the real gateway
(bin/asr-gateway) and a private Samba server (scripts/private_smbd.py) exporting the audio store
read-only. The laptop is a network namespace whose only way out is its veth peer: it reaches the
master at MASTER_IP and nothing else (its 127.0.0.1 is its own). Its worker (.venv/bin/asr-worker,
started with `ip netns exec`) logs in with a worker login made as scripts/lan_credentials.py makes
them, and sees no local copy of the audio store: a tmpfs is mounted over the store's directory in
the worker's own mount namespace, so every file it transcribes came over SMB or HTTP.

Scenarios (issue 5 acceptance): (a) the master's own worker stopped, an upload is transcribed by the
laptop reading it over smb://; (b) the same over the gateway's HTTP audio endpoint; (c) a laptop
without the store serves live and final jobs and never takes a batch job; (d) the laptop's link is
cut mid-file and the master's worker recovers the job: one result, attempts = 2.

Needs root (network namespaces, mounts, smbd) and Samba (`make samba`); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from conftest import ARTIFACTS, GATEWAY_BIN, ROOT, SPEECH, WSCLIENT, Stack, scrubbed_env
from speech import error_rate, long_recording

sys.path.insert(0, str(ROOT / "scripts"))
import devdb  # noqa: E402
import lan_credentials  # noqa: E402
from private_smbd import PrivateSmbd, free_port, smbd_binary  # noqa: E402

JFK = SPEECH / "jfk_en.wav"
JFK_REF = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
SMB_PASSWORD = "lan-" + uuid.uuid4().hex  # asserted never to appear in a log
SMB_USER = "lanasr-smbtest"
# Fast recovery, the small English model, no splitting (scenario d is about one job), no metrics port.
WORKER_ENV = {
    "ASR_HEARTBEAT_S": "1",
    "ASR_STALLED_AFTER_S": "5",
    "ASR_RECOVERY_INTERVAL_S": "1",
    "ASR_ENGINE": "offline",
    "ASR_OFFLINE_MODEL": "tiny.en",
    "ASR_SPLIT_MINUTES": "0",
    "ASR_METRICS_ADDR": "off",
}


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)


class Lan:
    """The veth link between the root namespace (master) and the laptop's namespace."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.ns = f"lanasr-lap-{tag}"
        self.master_if, self.laptop_if = f"lm{tag}", f"ll{tag}"
        octet = random.randint(100, 250)
        self.master_ip, self.laptop_ip = f"10.77.{octet}.1", f"10.77.{octet}.2"

    def up(self) -> None:
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.master_if, "type", "veth", "peer", "name", self.laptop_if)
        sh("ip", "link", "set", self.laptop_if, "netns", self.ns)
        sh("ip", "addr", "add", f"{self.master_ip}/24", "dev", self.master_if)
        sh("ip", "link", "set", self.master_if, "up")
        self.exec("ip", "addr", "add", f"{self.laptop_ip}/24", "dev", self.laptop_if)
        self.exec("ip", "link", "set", self.laptop_if, "up")
        self.exec("ip", "link", "set", "lo", "up")

    def exec(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.ns, *argv, check=check)

    def link(self, state: str) -> None:
        self.exec("ip", "link", "set", self.laptop_if, state)

    def down(self) -> None:
        sh("ip", "netns", "del", self.ns, check=False)  # takes the laptop's end of the veth with it
        sh("ip", "link", "del", self.master_if, check=False)

    def laptop_can_connect(self, host: str, port: int) -> bool:
        code = f"import socket; socket.create_connection(({host!r}, {port}), timeout=2).close()"
        return self.exec(sys.executable, "-c", code, check=False).returncode == 0


@pytest.fixture(scope="module")
def lan():
    if os.geteuid() != 0:
        pytest.skip("the multi-host test needs root: network namespaces, veth links, mounts and smbd")
    probe = f"lanasr-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"network namespaces are unavailable here (`ip netns add` failed: {made.stderr.strip()})")
    sh("ip", "netns", "del", probe)
    if not smbd_binary():
        pytest.fail("Samba's smbd is not installed: run scripts/ensure-samba.sh (make samba)")
    net = Lan()
    try:
        net.up()
        yield net
    finally:
        net.down()


class Master:
    """The master's PostgreSQL cluster, audio share and logins, for every test of the module."""

    def __init__(self, lan: Lan):
        self.lan = lan
        self.root = Path(tempfile.mkdtemp(prefix="lanasr-lan-"))
        self.root.chmod(0o755)  # the share user and the postgres user traverse it
        self.pg_port = free_port()
        self.share_dir = self.root / "share"
        self.share_dir.mkdir(mode=0o755)
        self.smbd: PrivateSmbd | None = None

    def start(self) -> None:
        owner = devdb.start(self.root / "pg", self.pg_port, f"127.0.0.1,{self.lan.master_ip}", trust=False)
        self.owner_url = owner.rsplit("/", 1)[0]  # postgresql://lanasr:…@127.0.0.1:port
        self.super_url = f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"
        # A migrated template (the migration creates the group roles), then one login per machine.
        self.admin("CREATE DATABASE lan_tpl OWNER lanasr")
        subprocess.run([str(GATEWAY_BIN), "migrate"], check=True, capture_output=True,
                       env=scrubbed_env(DATABASE_URL=f"{self.owner_url}/lan_tpl"))
        tag = uuid.uuid4().hex[:6]
        self.logins = {}
        for machine, host in (("master", "127.0.0.1"), ("laptop", self.lan.master_ip)):
            url = lan_credentials.create(f"{self.owner_url}/lan_tpl", "worker", f"{machine}-{tag}", host)
            self.logins[machine] = url.rsplit("/", 1)[0]
        self.smbd = PrivateSmbd(self.share_dir, user=SMB_USER, password=SMB_PASSWORD,
                                addresses=(self.lan.master_ip, "127.0.0.1"),
                                log_path=ARTIFACTS / "lan-smbd.log")
        self.smbd.start()

    def admin(self, sql: str) -> None:
        with psycopg.connect(self.super_url, autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        if self.smbd:
            self.smbd.stop()
        try:
            devdb.stop(self.root / "pg")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def master(lan: Lan):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    m = Master(lan)
    try:
        m.start()
        yield m
    finally:
        m.stop()


class LanStack(Stack):
    """conftest's Stack on the master, plus a laptop worker started inside the namespace."""

    master: Master
    dbname: str

    def laptop_url(self) -> str:
        return f"{self.master.logins['laptop']}/{self.dbname}"

    def start_master_worker(self, name: str = "master", **extra: str) -> None:
        self.start_worker(name, DATABASE_URL=f"{self.master.logins['master']}/{self.dbname}",
                          **{**WORKER_ENV, **extra})

    def start_laptop_worker(self, name: str = "laptop", **extra: str) -> None:
        # In the laptop's namespace, with a tmpfs over the master's audio directory in the worker's
        # own mount namespace (ip netns exec makes one): the files are not there for it to cheat with.
        hide = f'mount -t tmpfs -o size=1m,mode=0755 lanasr-not-here "{self.master.root}" && exec "$@"'
        prefix = ("ip", "netns", "exec", self.master.lan.ns, "sh", "-c", hide, "sh")
        self.start_worker(name, prefix=prefix, DATABASE_URL=self.laptop_url(), **{**WORKER_ENV, **extra})

    def wait_worker(self, name: str, timeout: float = 120) -> tuple:
        """Wait until the worker's registry row is idle (models loaded, queues final); return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"worker {name} exited with {proc.returncode}; see {self.logs}/{name}.log")
            rows = self.sql("SELECT state, queues FROM workers WHERE id = %s", name)
            if rows and rows[0][0] == "idle":
                return rows[0]
            time.sleep(0.3)
        raise AssertionError(f"worker {name} not ready within {timeout} s; see {self.logs}/{name}.log")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


@pytest.fixture
def lan_stack(master: Master, request):
    logs = ARTIFACTS / request.node.name
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    dbname = f"lan_{uuid.uuid4().hex[:10]}"
    master.admin(f'CREATE DATABASE "{dbname}" TEMPLATE lan_tpl OWNER lanasr')
    store = master.share_dir / request.node.name
    s = LanStack(db_url=f"{master.owner_url}/{dbname}", store=store, logs=logs)
    s.master, s.dbname = master, dbname
    # Listening on every address: the tests use 127.0.0.1, the laptop the master's veth address.
    s.start_gateway(ASR_HTTP_ADDR=f"0.0.0.0:{s.port}")
    try:
        yield s
    finally:
        s.stop()
        for name in s.procs:
            assert SMB_PASSWORD not in s.log(name), f"the SMB password leaked into {name}.log"
        master.admin(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def transcribe_one(s: LanStack, worker: str) -> dict:
    r = s.submit(JFK, language="en")
    assert r.status_code == 202, r.text
    res = s.wait_done(r.json()["task_id"], timeout=120)
    assert res["status"] == "done", res
    assert res["worker"] == worker, res
    assert error_rate(JFK_REF, res["text"], "en") <= 0.10, res["text"]
    assert res["segments"] and res["model"] == "whisper-tiny.en"
    return res


def test_laptop_transcribes_an_upload_over_smb(lan: Lan, lan_stack: LanStack):
    """(a) Only the laptop's worker runs; it reads the upload through smb:// on the master's address."""
    s = lan_stack
    m = s.master
    # The laptop reaches the master only at its veth address: not at its own loopback.
    assert lan.laptop_can_connect(lan.master_ip, s.port)
    assert not lan.laptop_can_connect("127.0.0.1", s.port)
    # PostgreSQL off loopback wants a password, even for the superuser (trusted only on 127.0.0.1).
    code = (f"import psycopg; psycopg.connect('postgresql://postgres@{lan.master_ip}:{m.pg_port}/postgres', "
            "connect_timeout=5)")
    refused = lan.exec(sys.executable, "-c", code, check=False)
    assert refused.returncode != 0 and "password" in refused.stderr, refused.stderr

    smb_url = f"{m.smbd.url(lan.master_ip)}/{s.store.name}"
    env = {"ASR_STORAGE_URL": smb_url, "ASR_SMB_PASSWORD": SMB_PASSWORD}
    # `asr-worker check` on the laptop: database, and read access over SMB (a probe object).
    s.submit(JFK, language="en")  # something in the store to read; the job waits (no worker yet)
    check = subprocess.run(
        ["ip", "netns", "exec", lan.ns, "sh", "-c", f'mount -t tmpfs none "{m.root}" && exec "$@"', "sh",
         str(ROOT / ".venv" / "bin" / "asr-worker"), "check"],
        env=scrubbed_env(DATABASE_URL=s.laptop_url(), **WORKER_ENV, **env),
        capture_output=True, text=True, timeout=180,
    )
    out = check.stdout + check.stderr
    assert check.returncode == 0, out
    assert "database: ok" in check.stdout and "queues: batch, live, final" in check.stdout, out
    assert f"storage: ok {smb_url} (readable: read 64 bytes of uploads/" in check.stdout, out
    assert SMB_PASSWORD not in out and s.laptop_url().split("@")[0] not in out

    s.start_laptop_worker(**env)
    assert "batch" in s.wait_worker("laptop")[1]
    first = s.sql("SELECT id::text FROM transcriptions")[0][0]
    res = s.wait_done(first, timeout=120)
    assert res["status"] == "done" and res["worker"] == "laptop", res
    res = transcribe_one(s, "laptop")
    assert "Audio store: smb://" in s.log("laptop")
    # The worker's database session really came from the laptop's address.
    with psycopg.connect(m.super_url) as conn:
        addrs = {r[0] for r in conn.execute(
            "SELECT host(client_addr) FROM pg_stat_activity WHERE usename = %s AND datname = %s",
            (urlsplit(s.laptop_url()).username, s.dbname)).fetchall()}
    assert addrs == {lan.laptop_ip}, addrs


def test_laptop_transcribes_an_upload_over_the_gateway_http(lan: Lan, lan_stack: LanStack):
    """(b) No share at all: the laptop fetches the audio from the gateway's HTTP endpoint."""
    s = lan_stack
    gateway = f"http://{lan.master_ip}:{s.port}"
    s.start_laptop_worker(ASR_STORAGE_URL=gateway)
    assert "batch" in s.wait_worker("laptop")[1]
    transcribe_one(s, "laptop")
    assert f"Audio store: {gateway}" in s.log("laptop")
    served = [line for line in s.log("gateway").splitlines()
              if "/api/v1/asr/audio/" in line and f"remote={lan.laptop_ip}:" in line]
    assert served, "the gateway served the audio to the laptop's address"


def test_laptop_without_storage_serves_live_and_final_only(lan: Lan, lan_stack: LanStack):
    """(c) A laptop that cannot read the store never takes a batch job, but serves live sessions."""
    s = lan_stack
    s.start_laptop_worker(ASR_STORAGE_URL="file:///mnt/asr-not-mounted")
    state, queues = s.wait_worker("laptop")
    assert sorted(queues) == ["final", "live"], queues
    assert "NOT SERVING THE batch QUEUE" in s.log("laptop")
    task = s.submit(JFK, language="en").json()["task_id"]

    def still_waiting():
        row = s.sql(
            "SELECT t.status, t.worker, t.attempts, j.status::text, j.worker_id FROM transcriptions t "
            "JOIN procrastinate_jobs j ON j.id = t.job_id WHERE t.id = %s", task)[0]
        assert row == ("queued", None, 0, "todo", None), row

    time.sleep(5)  # the laptop's batch fetch would have run several times by now
    still_waiting()
    # A live session through the laptop, while the batch upload waits.
    live = subprocess.run([str(WSCLIENT), "-url", f"ws://127.0.0.1:{s.port}/", "-speed", "2", "-mode", "2pass",
                           "-timeout", "90s", str(JFK)], capture_output=True, text=True, timeout=120)
    msgs = [json.loads(x)["msg"] for x in live.stdout.splitlines() if x.startswith("{")]
    assert msgs and not any("error" in m for m in msgs), live.stdout + live.stderr
    finals = " ".join(m["text"] for m in msgs if m.get("mode") == "2pass-offline" and m.get("text"))
    assert error_rate(JFK_REF, finals, "en") <= 0.2, finals
    sid = msgs[-1]["session_id"]
    assert s.sql("SELECT worker FROM transcriptions WHERE id = %s", sid)[0][0] == "laptop"
    still_waiting()
    assert s.sql("SELECT count(*) FROM transcriptions WHERE worker = 'laptop' AND kind <> 'live'")[0][0] == 0
    # The master's worker takes the file at once.
    s.start_master_worker()
    res = s.wait_done(task, timeout=120)
    assert res["status"] == "done" and res["worker"] == "master", res
    assert s.sql("SELECT attempts FROM transcriptions WHERE id = %s", task)[0][0] == 1


def test_link_cut_mid_file_is_recovered_by_the_master(lan: Lan, lan_stack: LanStack, tmp_path: Path):
    """(d) The laptop's link goes down mid-file: the master's worker finishes it, and only its
    result is stored; when the link comes back, the laptop's late result is discarded."""
    s = lan_stack
    m = s.master
    # One thread each: the two "machines" share this host's cores.
    s.start_laptop_worker(ASR_STORAGE_URL=f"{m.smbd.url(lan.master_ip)}/{s.store.name}",
                          ASR_SMB_PASSWORD=SMB_PASSWORD, ASR_CPU_THREADS="1")
    s.wait_worker("laptop")
    audio = long_recording(tmp_path / "long.wav", seconds=60)
    task = s.submit(audio, language="en").json()["task_id"]
    deadline = time.monotonic() + 120
    res: dict = {}
    while time.monotonic() < deadline:
        res = s.result(task)
        if res["status"] == "processing" and res["worker"] == "laptop" and res["progress"] > 0:
            break
        time.sleep(0.2)
    assert res["status"] == "processing" and res["worker"] == "laptop", res
    try:
        lan.link("down")
        cut = time.monotonic()
        assert not lan.laptop_can_connect(lan.master_ip, s.port)
        s.start_master_worker(ASR_CPU_THREADS="1")
        res = s.wait_done(task, timeout=150)
        elapsed = time.monotonic() - cut
        assert res["status"] == "done" and res["worker"] == "master", res
        assert elapsed < 150
        # The laptop comes back: its attempt is stale and must store nothing.
        lan.link("up")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "'status': 'stale'" not in s.log("laptop"):
            time.sleep(0.5)
        row = s.sql("SELECT status, attempts, worker, duration_s, text FROM transcriptions WHERE id = %s", task)[0]
        assert row[:3] == ("done", 2, "master"), row
        assert row[4] == res["text"]
        assert s.sql("SELECT count(*) FROM transcriptions")[0][0] == 1
        segs = s.sql("SELECT idx, start_s, end_s, text FROM segments WHERE transcription_id = %s ORDER BY idx", task)
        assert [r[0] for r in segs] == list(range(len(segs))) and len(segs) == len(res["segments"]) > 3
        assert all(0 <= a[1] <= a[2] <= row[3] + 0.01 for a in segs)
        assert all(a[2] <= b[1] + 0.01 for a, b in zip(segs, segs[1:]))
        assert " ".join(r[3] for r in segs) == res["text"]
        assert s.sql("SELECT count(*) FROM segments")[0][0] == len(segs)
        jobs = s.sql("SELECT status::text FROM procrastinate_jobs WHERE queue_name = 'batch'")
        assert jobs == [("succeeded",)], jobs
        # The master marked the silent laptop gone.
        assert "Workers gone (no heartbeat for 5 s): laptop" in s.log("master")
    finally:
        lan.link("up")
        if s.procs["laptop"].poll() is None:
            s.kill("laptop")  # cut off, it may wait on dead connections for minutes
