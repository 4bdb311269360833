"""Read audio from the store through fsspec, by key, relative to the worker's ``ASR_STORAGE_URL``.

The database holds only server-generated keys (``uploads/2026/01/02/<uuid>.wav``); each worker
resolves them against its own root: ``file:///mnt/asr``, ``smb://user@host[:port]/share[/dir]``
(the ``smb`` extra: fsspec's SMBFileSystem over smbprotocol; the password comes from
``ASR_SMB_PASSWORD``), or the gateway itself, ``http(s)://host:port``, whose audio endpoint serves
by task id.

Credentials never leave this module: every message and ``repr`` shows :func:`redact_url`'s form
of the URL, and SMB files are opened read-only with full sharing (``share_access="rwd"``), so a
worker reading a file never stops the gateway (or anyone) from reading, replacing or deleting it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import re
import shutil
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import unquote, urlsplit, urlunsplit

import fsspec

__all__ = [
    "Storage",
    "StorageError",
    "InvalidKeyError",
    "AudioNotFoundError",
    "validate_key",
    "redact_url",
    "SMB_PASSWORD_ENV",
    "PROBE_NAME",
]

SMB_PASSWORD_ENV = "ASR_SMB_PASSWORD"
# A small file that shared-storage/setup-master.sh puts at the top of the store: `check` reads it
# to prove read access (else it reads the newest audio file it finds).
PROBE_NAME = ".lanasr-probe"
SMB_SHARE_ACCESS = "rwd"  # others may read, write and delete while we read
SMB_BLOCK_SIZE = 1 << 20  # read in 1 MiB requests: few round trips over the LAN


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


def redact_url(url: str) -> str:
    """``url`` with any password in it replaced by ``***`` (the user name stays: it is no secret)."""
    try:
        u = urlsplit(url)
        if u.password is None:
            return url
        host = u.netloc.rpartition("@")[2]
        return urlunsplit((u.scheme, f"{u.username}:***@{host}", u.path, u.query, u.fragment))
    except ValueError:
        return "<unparseable URL>"


@dataclasses.dataclass(frozen=True)
class _SMBTarget:
    host: str
    port: int
    username: str | None
    password: str | None = dataclasses.field(repr=False)
    root: str  # /share[/dir]


def _smb_target(url: str, display: str, password: str | None) -> _SMBTarget:
    try:
        u = urlsplit(url)
        port = u.port or 445
    except ValueError as exc:
        raise StorageError(f"The audio store {display} is not a valid smb:// URL: {exc}.") from None
    if not u.hostname:
        raise StorageError(f"The audio store {display} names no server: use smb://user@host/share.")
    parts = [unquote(p) for p in u.path.split("/") if p]
    if not parts:
        raise StorageError(f"The audio store {display} names no share: use smb://user@host/share.")
    username = unquote(u.username) if u.username else None
    if username and ";" in username:  # smb://WORKGROUP;user@host/share (the smb URI convention)
        domain, _, user = username.partition(";")
        username = f"{domain}\\{user}"
    if password is None:
        password = unquote(u.password) if u.password is not None else os.environ.get(SMB_PASSWORD_ENV)
    if username and password is None:
        raise StorageError(f"The audio store {display} needs the password of {username}: set {SMB_PASSWORD_ENV}.")
    return _SMBTarget(u.hostname, port, username, password, "/" + "/".join(parts))


# STATUS_BAD_NETWORK_NAME, and STATUS_NOT_FOUND (what Samba answers a tree connect to a missing share)
_NO_SHARE_STATUS = (0xC00000CC, 0xC0000225)


def _is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOENT, errno.ENOTDIR)


def _is_auth_error(exc: BaseException) -> bool:
    try:
        from smbprotocol.exceptions import LogonFailure, SMBAuthenticationError
    except ImportError:  # pragma: no cover - the smb extra is missing
        return False
    if isinstance(exc, (LogonFailure, SMBAuthenticationError)):
        return True
    return isinstance(exc, OSError) and exc.errno == errno.EACCES


@dataclasses.dataclass
class Storage:
    """The audio store at ``url`` (``password``: the SMB password; default ``$ASR_SMB_PASSWORD``)."""

    url: str = dataclasses.field(repr=False)
    timeout_s: float = 60.0
    password: str | None = dataclasses.field(default=None, repr=False)
    connect_timeout_s: float = 10.0

    def __post_init__(self):
        self.url = self.url.rstrip("/")
        self.protocol = self.url.split("://", 1)[0].lower() if "://" in self.url else "file"
        self.display_url = redact_url(self.url)
        self._fs = None
        self._root = ""
        self._smb: _SMBTarget | None = None
        # This store's own smbclient connection pool: smbclient's global one would hand a second
        # Storage (another user or password) the first one's authenticated session.
        self._smb_cache: dict = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Storage({self.display_url!r})"

    def close(self) -> None:
        """Close this store's SMB connections (nothing to do for file:// and http)."""
        if self._smb_cache:
            import smbclient

            smbclient.reset_connection_cache(fail_on_error=False, connection_cache=self._smb_cache)

    @property
    def is_gateway(self) -> bool:
        return self.protocol in ("http", "https")

    @property
    def is_smb(self) -> bool:
        return self.protocol == "smb"

    def _filesystem(self):
        if self._fs is None:
            if self.is_smb:
                self._fs, self._root = self._smb_filesystem()
                return self._fs, self._root
            try:
                self._fs, self._root = fsspec.core.url_to_fs(self.url)
            except (ImportError, ValueError) as exc:
                raise StorageError(f"The audio store {self.display_url} cannot be used: {exc}") from exc
        return self._fs, self._root

    # -- SMB ----------------------------------------------------------------------------------

    def _smb_filesystem(self):
        target = _smb_target(self.url, self.display_url, self.password)
        try:
            from fsspec.implementations.smb import SMBFileSystem
        except ImportError as exc:
            raise StorageError(
                f"The audio store {self.display_url} needs smbprotocol: install the worker's `smb` extra."
            ) from exc
        self._smb = target
        # register_session_retries=-1: no session at construction; _smb_session registers it with
        # our credentials before every operation (and again after a broken connection), because
        # smbclient's later calls carry no credentials to reconnect with.
        fs = SMBFileSystem(
            host=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            timeout=self.connect_timeout_s,
            share_access=SMB_SHARE_ACCESS,
            register_session_retries=-1,
            skip_instance_cache=True,
        )
        return fs, target.root

    def _smb_session(self, fresh: bool) -> None:
        import smbclient

        t = self._smb
        assert t is not None
        if fresh:
            try:
                smbclient.delete_session(
                    t.host, port=t.port, connection_cache=self._smb_cache, timeout=self.connect_timeout_s
                )
            except Exception:  # already gone: we only want a clean slate
                pass
        try:
            smbclient.register_session(
                t.host,
                username=t.username,
                password=t.password,
                port=t.port,
                connection_timeout=self.connect_timeout_s,
                connection_cache=self._smb_cache,
            )
        except Exception as exc:
            raise self._smb_error(exc, "cannot be reached") from None

    def _smb_error(self, exc: BaseException, what: str) -> StorageError:
        t = self._smb
        where = f"{t.host}:{t.port}" if t else self.display_url
        if _is_auth_error(exc):
            who = t.username if t and t.username else "the anonymous user"
            return StorageError(
                f"The SMB server {where} refused {who} for {self.display_url}: check the user name, "
                f"{SMB_PASSWORD_ENV} and the share's `valid users`."
            )
        if getattr(exc, "status", None) in _NO_SHARE_STATUS:
            share = t.root.split("/")[1] if t else "?"
            return StorageError(
                f"The audio store {self.display_url} cannot be reached: the SMB server {where} has no share "
                f"named {share!r}."
            )
        detail = str(exc) or type(exc).__name__
        return StorageError(f"The audio store {self.display_url} {what}: {detail}")

    def _smb_call(self, fn, what: str):
        """Run ``fn()`` on a registered session; once more on a fresh connection if it broke."""
        for attempt in (0, 1):
            with self._lock:
                self._smb_session(fresh=attempt > 0)
            try:
                return fn()
            except StorageError:
                raise
            except Exception as exc:
                if _is_not_found(exc):
                    raise
                if _is_auth_error(exc) or attempt == 1:
                    raise self._smb_error(exc, what) from None
        raise AssertionError("unreachable")

    # -- reading ------------------------------------------------------------------------------

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
            if self.is_smb:
                f = self._smb_call(
                    lambda: fs.open(where, "rb", block_size=SMB_BLOCK_SIZE, **self._open_kwargs()),
                    f"could not be read (audio file {key})",
                )
            else:
                f = fs.open(where, "rb")
        except StorageError:
            raise
        except Exception as exc:
            if _is_not_found(exc):
                raise AudioNotFoundError(f"The audio file {key} is not in the store {self.display_url}.") from exc
            if isinstance(exc, OSError):
                raise StorageError(f"The audio file {key} could not be read from {self.display_url}: {exc}") from exc
            raise
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
                raise AudioNotFoundError(f"The gateway at {self.display_url} has no audio for {key}.") from exc
            raise StorageError(
                f"The gateway at {self.display_url} answered {exc.code} for the audio of {key}."
            ) from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise StorageError(f"The gateway at {self.display_url} cannot be reached: {exc}") from exc

    # -- check --------------------------------------------------------------------------------

    def check(self) -> str:
        """Verify the store is reachable and readable; return a short description. Raises StorageError.

        Reads a few bytes of a probe object: ``.lanasr-probe`` at the top of the store when it is
        there, else the newest audio file found (an empty store is reported, not an error).
        """
        if self.is_gateway:
            return self._check_gateway()
        fs, root = self._filesystem()
        top = root or "/"

        def probe():
            # info, not exists(): fsspec's exists() turns a broken connection into False.
            try:
                info = fs.info(top, **self._smb_kwargs())
            except Exception as exc:
                if _is_not_found(exc):
                    raise StorageError(f"The audio store {self.display_url} does not exist.") from None
                raise
            if info.get("type") != "directory":
                raise StorageError(f"The audio store {self.display_url} is not a directory.")
            path = self._find_probe(self._lister(fs), top)
            if path is None:
                return "readable: listed; it holds no file yet to test a read"
            with fs.open(path, "rb", **self._open_kwargs()) as f:
                data = f.read(64)
            rel = path[len(top.rstrip("/")) + 1 :]
            return f"readable: read {len(data)} bytes of {rel}"

        try:
            if self.is_smb:
                what = self._smb_call(probe, "cannot be reached")
            else:
                what = probe()
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"The audio store {self.display_url} cannot be read: {exc}") from exc
        return f"{self.display_url} ({what})"

    def _smb_kwargs(self) -> dict:
        return {"connection_cache": self._smb_cache} if self.is_smb else {}

    def _open_kwargs(self) -> dict:
        return {"share_access": SMB_SHARE_ACCESS, **self._smb_kwargs()} if self.is_smb else {}

    def _lister(self, fs):
        """``ls(path)`` with details, on this store's own SMB connections (fsspec's SMB ``ls``
        drops its keyword arguments when it fetches the details)."""
        if not self.is_smb:
            return lambda path: fs.ls(path, detail=True)
        kw = self._smb_kwargs()
        return lambda path: [fs.info(p, **kw) for p in fs.ls(path, detail=False, **kw)]

    @staticmethod
    def _find_probe(ls, top: str, max_depth: int = 6, max_listings: int = 40) -> str | None:
        """The probe file, else the newest-looking audio file (keys are dated: descend newest first)."""
        top = top.rstrip("/") or "/"
        listings = 0

        def names(path):
            nonlocal listings
            listings += 1
            entries = ls(path)
            files, dirs = [], []
            for e in entries:
                name = e["name"].rstrip("/")
                base = name.rsplit("/", 1)[-1]
                if e.get("type") == "directory":
                    if not base.startswith("."):
                        dirs.append(name)
                elif e.get("type") == "file":
                    files.append((base, name))
            return files, dirs

        files, dirs = names(top)
        for base, name in files:
            if base == PROBE_NAME:
                return name

        def walk(path_files, path_dirs, depth):
            visible = sorted((n for b, n in path_files if not b.startswith(".")), reverse=True)
            if visible:
                return visible[0]
            if depth >= max_depth:
                return None
            for d in sorted(path_dirs, reverse=True):
                if listings >= max_listings:
                    return None
                found = walk(*names(d), depth + 1)
                if found:
                    return found
            return None

        return walk(files, dirs, 0)

    def _check_gateway(self) -> str:
        request = urllib.request.Request(f"{self.url}/api/v1/health", headers={"User-Agent": "asr-worker"})
        try:
            with urllib.request.urlopen(request, timeout=min(self.timeout_s, 10)):
                pass
        except urllib.error.HTTPError:
            pass  # 503 (no worker yet) still means the gateway answers
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise StorageError(f"The gateway at {self.display_url} cannot be reached: {exc}") from exc
        return f"{self.display_url} (the gateway's HTTP audio endpoint; it answers)"
