"""Read audio from the store through fsspec, by key, relative to the worker's ``ASR_STORAGE_URL``.

The database holds only server-generated keys (``uploads/2026/01/02/<uuid>.wav``); each worker
resolves them against its own root: ``file:///mnt/asr``, ``smb://user@host/share`` (the ``smb``
extra), or the gateway itself, ``http(s)://host:port``, whose audio endpoint serves by task id.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import fsspec

__all__ = ["Storage", "StorageError", "InvalidKeyError", "AudioNotFoundError", "validate_key"]


class StorageError(OSError):
    """The audio store cannot be reached or read."""


class InvalidKeyError(StorageError, ValueError):
    """A key that could escape the store root: absolute, ``..``, backslashes, drive letters."""


class AudioNotFoundError(StorageError, FileNotFoundError):
    """No file at this key."""


_DRIVE = re.compile(r"^[A-Za-z]:")


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative path inside the store, else raise InvalidKeyError."""
    if not isinstance(key, str) or not key or key.strip() != key:
        raise InvalidKeyError(f"Invalid audio key {key!r}: it must be a non-empty relative path.")
    if "\x00" in key or "\\" in key or key.startswith("/") or _DRIVE.match(key) or "://" in key:
        raise InvalidKeyError(f"Invalid audio key {key!r}: it must be a relative path inside the store.")
    parts = key.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise InvalidKeyError(f"Invalid audio key {key!r}: empty, '.' or '..' components are not allowed.")
    if posixpath.normpath(key) != key:
        raise InvalidKeyError(f"Invalid audio key {key!r}: it is not normalised.")
    return key


@dataclasses.dataclass
class Storage:
    """The audio store at ``url``."""

    url: str
    timeout_s: float = 60.0

    def __post_init__(self):
        self.url = self.url.rstrip("/")
        self.protocol = self.url.split("://", 1)[0].lower() if "://" in self.url else "file"
        self._fs = None
        self._root = ""

    @property
    def is_gateway(self) -> bool:
        return self.protocol in ("http", "https")

    def _filesystem(self):
        if self._fs is None:
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise StorageError(f"The audio store {self.url} cannot be used: {exc}") from exc
        return self._fs, self._root

    def location(self, key: str, task_id: str | None = None) -> str:
        """Where ``key`` lives: a path in the store's filesystem, or the gateway URL for ``task_id``."""
        validate_key(key)
        if self.is_gateway:
            if not task_id:
                raise StorageError("Reading audio from the gateway needs the task id.")
            return f"{self.url}/api/v1/asr/audio/{task_id}"
        _, root = self._filesystem()
        return f"{root.rstrip('/')}/{key}" if root else key

    @contextmanager
    def open(self, key: str, task_id: str | None = None) -> Iterator[BinaryIO]:
        """Open the audio at ``key`` for reading (a seekable binary file)."""
        where = self.location(key, task_id)
        if self.is_gateway:
            with self._download(where, key) as f:
                yield f
            return
        fs, _ = self._filesystem()
        try:
            f = fs.open(where, "rb")
        except FileNotFoundError as exc:
            raise AudioNotFoundError(f"The audio file {key} is not in the store {self.url}.") from exc
        except OSError as exc:
            raise StorageError(f"The audio file {key} could not be read from {self.url}: {exc}") from exc
        with f:
            yield f

    @contextmanager
    def _download(self, url: str, key: str) -> Iterator[BinaryIO]:
        """Fetch from the gateway's audio endpoint into a (spooled) temporary file: PyAV needs to seek."""
        request = urllib.request.Request(url, headers={"User-Agent": "asr-worker"})
        try:
            with (
                urllib.request.urlopen(request, timeout=self.timeout_s) as resp,
                tempfile.SpooledTemporaryFile(max_size=64 << 20) as tmp,
            ):
                shutil.copyfileobj(resp, tmp, 1 << 20)
                tmp.seek(0)
                yield tmp
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise AudioNotFoundError(f"The gateway at {self.url} has no audio for {key}.") from exc
            raise StorageError(f"The gateway at {self.url} answered {exc.code} for the audio of {key}.") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise StorageError(f"The gateway at {self.url} cannot be reached: {exc}") from exc

    def check(self) -> str:
        """Verify the store is reachable; return a short description. Raises StorageError."""
        if self.is_gateway:
            return f"{self.url} (gateway HTTP; checked per file)"
        fs, root = self._filesystem()
        try:
            if not fs.exists(root or "/"):
                raise StorageError(f"The audio store {self.url} does not exist.")
            if not fs.isdir(root or "/"):
                raise StorageError(f"The audio store {self.url} is not a directory.")
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"The audio store {self.url} cannot be reached: {exc}") from exc
        return f"{self.url} (readable)"
