"""smb:// audio stores against a real Samba server (a private smbd on a free loopback port).

Needs root and Samba (`scripts/ensure-samba.sh`, run by `make samba`, which `make test` depends on).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from asr_worker.storage import PROBE_NAME, AudioNotFoundError, InvalidKeyError, Storage, StorageError

from ..conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from private_smbd import PrivateSmbd, smbd_binary  # noqa: E402

PASSWORD = "Smb-test-pw-7f3!q"  # a test-only secret: asserted never to appear in any output
USER = "lanasr-smbtest"
KEY = "uploads/2026/01/02/jfk_en.wav"


def _need_samba() -> None:
    if os.geteuid() != 0:
        pytest.skip("a private smbd needs root (it switches to the share user to read files)")
    if not smbd_binary():
        pytest.fail("Samba's smbd is not installed: run scripts/ensure-samba.sh (make samba)")


@pytest.fixture(scope="module")
def share(speech_dir):
    """A store with the test speech under gateway-style keys, exported by a private smbd."""
    _need_samba()
    root = Path(tempfile.mkdtemp(prefix="lanasr-smbstore-"))
    root.chmod(0o755)  # the share user must traverse it (gateway stores are 0755 dirs, 0644 files)
    store = root / "store"
    day = store / "uploads" / "2026" / "01" / "02"
    day.mkdir(parents=True)
    for f in speech_dir.glob("*.wav"):
        shutil.copyfile(f, day / f.name)
    for p in [store, *store.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    server = PrivateSmbd(store, user=USER, password=PASSWORD)
    server.start()
    try:
        yield server, store
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_reads_audio_by_key_and_decodes_it(share, jfk_wav):
    from asr_worker.audio import decode_audio

    server, _ = share
    store = Storage(server.url(), password=PASSWORD)
    try:
        assert store.location(KEY) == f"/asr/{KEY}"
        with store.open(KEY) as f:
            assert f.seekable()
            assert f.read() == jfk_wav.read_bytes()
            f.seek(0)
            audio = decode_audio(f)
        assert audio.samples.shape[0] / 16000 == pytest.approx(11.0, abs=0.05)
        with pytest.raises(AudioNotFoundError, match="not in the store"):
            with store.open("uploads/2026/01/02/missing.wav"):
                pass
        with pytest.raises(InvalidKeyError):
            store.location("../etc/passwd")
    finally:
        store.close()


def test_password_comes_from_the_environment(share, monkeypatch):
    server, _ = share
    monkeypatch.setenv("ASR_SMB_PASSWORD", PASSWORD)
    store = Storage(server.url())
    try:
        with store.open(KEY) as f:
            assert f.read(4) == b"RIFF"
    finally:
        store.close()
    monkeypatch.delenv("ASR_SMB_PASSWORD")
    with pytest.raises(StorageError, match="set ASR_SMB_PASSWORD"):
        Storage(server.url()).check()


@pytest.mark.parametrize(
    "url_user, password, expect",
    [
        (USER, "wrong-password", "refused lanasr-smbtest"),
        ("nobody-here", PASSWORD, "refused nobody-here"),
    ],
)
def test_bad_credentials_are_refused_and_never_shown(share, url_user, password, expect):
    server, _ = share
    url = server.url().replace(f"{USER}@", f"{url_user}@")
    store = Storage(url, password=password)
    with pytest.raises(StorageError) as err:
        store.check()
    assert expect in str(err.value) and "ASR_SMB_PASSWORD" in str(err.value)
    assert password not in str(err.value) and password not in repr(store)
    with pytest.raises(StorageError):
        with store.open(KEY):
            pass
    store.close()


def test_missing_share_and_unreachable_server(share):
    server, _ = share
    with pytest.raises(StorageError, match="has no share named 'nope'"):
        Storage(server.url().rsplit("/", 1)[0] + "/nope", password=PASSWORD).check()
    with pytest.raises(StorageError, match="does not exist"):
        Storage(server.url() + "/no/such/dir", password=PASSWORD).check()
    closed = PrivateSmbd(Path("/"), user=USER, password=PASSWORD)  # only for a free port: never started
    with pytest.raises(StorageError, match="cannot be reached"):
        Storage(f"smb://{USER}@127.0.0.1:{closed.port}/asr", password=PASSWORD).check()
    shutil.rmtree(closed.work, ignore_errors=True)


def test_check_reads_a_probe_object(share):
    server, store_dir = share
    store = Storage(server.url(), password=PASSWORD)
    try:
        # No probe file: the newest audio file (dated keys, newest first) is read instead.
        assert "readable: read 64 bytes of uploads/2026/01/02/" in store.check()
        (store_dir / PROBE_NAME).write_text("lanasr audio store\n")
        (store_dir / PROBE_NAME).chmod(0o644)
        assert f"readable: read 19 bytes of {PROBE_NAME}" in store.check()
        assert PASSWORD not in store.check()
    finally:
        (store_dir / PROBE_NAME).unlink(missing_ok=True)
        store.close()


def test_readers_share_the_file_and_the_server_enforces_share_modes(share):
    """A worker's open handle lets everyone else open the file too (share_access 'rwd'); the
    control shows the server really enforces share modes: an exclusive handle keeps us out."""
    import smbclient

    server, _ = share
    store = Storage(server.url(), password=PASSWORD)
    unc = rf"\\127.0.0.1\asr\{KEY.replace('/', chr(92))}"
    cache: dict = {}
    smbclient.register_session("127.0.0.1", username=USER, password=PASSWORD, port=server.port, connection_cache=cache)
    kw = {"port": server.port, "connection_cache": cache}
    try:
        with store.open(KEY) as ours:
            ours.read(16)
            # Another reader that allows only readers beside it: fine, we hold no write/delete access.
            with smbclient.open_file(unc, "rb", share_access="r", **kw) as other:
                assert other.read(4) == b"RIFF"
            # Another reader that allows read, write and delete: fine too.
            with smbclient.open_file(unc, "rb", share_access="rwd", **kw) as other:
                assert other.read(4) == b"RIFF"
        # Control: an exclusive handle (smbclient's default, share_access=None) shuts others out.
        with smbclient.open_file(unc, "rb", **kw):
            with pytest.raises(StorageError, match="could not be read"):
                with store.open(KEY):
                    pass
        with store.open(KEY) as ours:  # and once it is closed, we read again
            assert ours.read(4) == b"RIFF"
    finally:
        smbclient.reset_connection_cache(fail_on_error=False, connection_cache=cache)
        store.close()


def test_reconnects_after_the_server_restarts(share):
    server, store_dir = share
    store = Storage(server.url(), password=PASSWORD)
    try:
        with store.open(KEY) as f:
            first = f.read()
        server.stop()  # every connection drops
        again = PrivateSmbd(store_dir, user=USER, password=PASSWORD, port=server.port)
        again.start()
        try:
            with store.open(KEY) as f:  # the broken pooled connection is replaced, with our credentials
                assert f.read() == first
        finally:
            again.stop()
    finally:
        store.close()
        server.work.mkdir(exist_ok=True)
        server.start()  # the module's server again, for the tests after this one


@pytest.mark.models
def test_worker_check_reports_smb_read_access_without_the_password(share, tmp_path):
    server, _ = share
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "ASR_STORAGE_URL": server.url(),
        "ASR_SMB_PASSWORD": PASSWORD,
        "ASR_WORKER_QUEUES": "batch",
        "ASR_ENGINE": "offline",
        "ASR_OFFLINE_MODEL": "tiny.en",
        "ASR_LOG_LEVEL": "debug",
    }
    worker = str(REPO / ".venv" / "bin" / "asr-worker")
    ok = subprocess.run([worker, "check"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    out = ok.stdout + ok.stderr
    assert f"storage: ok {server.url()} (readable: read 64 bytes of uploads/2026/01/02/" in ok.stdout, out
    assert PASSWORD not in out
    bad = subprocess.run(
        [worker, "check"],
        env={**env, "ASR_SMB_PASSWORD": "not-" + PASSWORD[::-1]},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = bad.stdout + bad.stderr
    assert "storage: UNAVAILABLE (The SMB server" in bad.stdout and "refused lanasr-smbtest" in bad.stdout, out
    assert PASSWORD[::-1] not in out and bad.returncode != 0
