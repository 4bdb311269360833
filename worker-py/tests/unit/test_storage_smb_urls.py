"""smb:// store URLs: parsing, credentials, redaction (no server needed; see
tests/integration/test_smb_storage.py for the real Samba server)."""

from __future__ import annotations

import pytest

from asr_worker.config import load_settings
from asr_worker.storage import Storage, StorageError, _smb_target, redact_url


def test_redact_url_hides_only_the_password():
    assert redact_url("smb://anna:s3cret@master:445/asr") == "smb://anna:***@master:445/asr"
    assert redact_url("smb://anna@master/asr") == "smb://anna@master/asr"
    assert redact_url("http://u:p@gw:8080") == "http://u:***@gw:8080"
    assert redact_url("file:///mnt/asr") == "file:///mnt/asr"


def test_target_from_url_and_password_sources(monkeypatch):
    monkeypatch.delenv("ASR_SMB_PASSWORD", raising=False)
    t = _smb_target("smb://anna@master.lan:4450/asr/sub%20dir", "shown", "pw")
    assert (t.host, t.port, t.username, t.password, t.root) == ("master.lan", 4450, "anna", "pw", "/asr/sub dir")
    t = _smb_target("smb://WORKGROUP;anna@master/asr", "shown", "pw")
    assert t.username == "WORKGROUP\\anna" and t.port == 445 and t.root == "/asr"
    monkeypatch.setenv("ASR_SMB_PASSWORD", "from-env")
    assert _smb_target("smb://anna@master/asr", "shown", None).password == "from-env"
    assert _smb_target("smb://anna:inline@master/asr", "shown", None).password == "inline"
    assert "pw" not in repr(_smb_target("smb://anna@master/asr", "shown", "pw"))


@pytest.mark.parametrize(
    "url, message",
    [
        ("smb:///asr", "names no server"),
        ("smb://anna@master", "names no share"),
        ("smb://anna@master:notaport/asr", "not a valid smb:// URL"),
        ("smb://anna@master/asr", "set ASR_SMB_PASSWORD"),
    ],
)
def test_bad_urls_say_what_is_wrong(monkeypatch, url, message):
    monkeypatch.delenv("ASR_SMB_PASSWORD", raising=False)
    with pytest.raises(StorageError, match=message):
        Storage(url).check()


def test_password_never_in_repr_or_messages(monkeypatch):
    monkeypatch.delenv("ASR_SMB_PASSWORD", raising=False)
    store = Storage("smb://anna:inline-secret@127.0.0.1:1/asr", password=None, connect_timeout_s=1)
    assert "inline-secret" not in repr(store) and "inline-secret" not in store.display_url
    with pytest.raises(StorageError) as err:
        store.check()  # nothing listens on port 1
    assert "inline-secret" not in str(err.value) and "anna:***@" in str(err.value)


def test_setting_is_read_and_hidden_from_repr(tmp_path):
    s = load_settings({"ASR_SMB_PASSWORD": "env-secret"}, env_file=str(tmp_path / "none.env"))
    assert s.smb_password == "env-secret" and "env-secret" not in repr(s)
