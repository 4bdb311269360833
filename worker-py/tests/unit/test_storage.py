"""Audio keys resolve inside the store root, never outside it."""

from __future__ import annotations

import pytest

from asr_worker.storage import AudioNotFoundError, InvalidKeyError, Storage, StorageError, validate_key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../secret.wav",
        "uploads/../../etc/passwd",
        "uploads/./a.wav",
        "uploads//a.wav",
        "uploads/a.wav/",
        "C:/audio/a.wav",
        "c:a.wav",
        "uploads\\a.wav",
        "file:///etc/passwd",
        "smb://host/share/a.wav",
        " uploads/a.wav",
        "uploads/a\x00.wav",
        "..",
        ".",
    ],
)
def test_unsafe_keys_are_rejected(key):
    with pytest.raises(InvalidKeyError):
        validate_key(key)


@pytest.mark.parametrize("key", ["a.wav", "uploads/2026/01/02/0b6f.wav", "x/y/z..wav"])
def test_safe_keys(key):
    assert validate_key(key) == key


def test_reads_file_store(tmp_path):
    (tmp_path / "uploads" / "2026").mkdir(parents=True)
    (tmp_path / "uploads" / "2026" / "a.wav").write_bytes(b"RIFF1234")
    store = Storage(tmp_path.as_uri())
    assert store.location("uploads/2026/a.wav").endswith("/uploads/2026/a.wav")
    with store.open("uploads/2026/a.wav") as f:
        assert f.read() == b"RIFF1234"
    assert "readable" in store.check()


def test_missing_file_and_store(tmp_path):
    store = Storage(tmp_path.as_uri() + "/")
    with pytest.raises(AudioNotFoundError):
        with store.open("nope.wav"):
            pass
    with pytest.raises(StorageError):
        Storage((tmp_path / "absent").as_uri()).check()


def test_symlink_escape_is_not_a_key_problem_but_traversal_is(tmp_path):
    store = Storage(tmp_path.as_uri())
    with pytest.raises(InvalidKeyError):
        store.location("../x.wav")


def test_gateway_url_uses_task_id():
    store = Storage("http://master:8080/")
    assert store.is_gateway
    assert store.location("uploads/a.wav", "abc") == "http://master:8080/api/v1/asr/audio/abc"
    with pytest.raises(StorageError):
        store.location("uploads/a.wav")
    with pytest.raises(InvalidKeyError):
        store.location("../a.wav", "abc")


def test_reads_through_the_gateway_http_endpoint(tmp_path):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/api/v1/asr/audio/t1":
                body = b"RIFFdata" * 1000
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_error(404)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        store = Storage(f"http://127.0.0.1:{server.server_port}", timeout_s=5)
        with store.open("uploads/a.wav", "t1") as f:
            assert f.read() == b"RIFFdata" * 1000
            f.seek(0)
            assert f.read(4) == b"RIFF"
        with pytest.raises(AudioNotFoundError):
            with store.open("uploads/a.wav", "t2"):
                pass
    finally:
        server.shutdown()
    with pytest.raises(StorageError):
        with Storage("http://127.0.0.1:1", timeout_s=2).open("uploads/a.wav", "t1"):
            pass
