"""Run a command against a throwaway PostgreSQL cluster.

    python scripts/testdb.py -- make test-go test-py

Starts a fresh cluster (trust on loopback) in a temporary directory on a free port, exports
ASR_TEST_DATABASE_URL (a superuser URL) to the command, and removes the cluster afterwards,
whatever the command's outcome. If ASR_TEST_DATABASE_URL is already set, it is used as is.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import devdb  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    if os.environ.get("ASR_TEST_DATABASE_URL"):
        return subprocess.call(argv)
    root = Path(tempfile.mkdtemp(prefix="lanasr-testdb-", dir=Path(".data").resolve() if Path(".data").is_dir() else None))
    data = root / "cluster"
    try:
        url = devdb.start(data, free_port(), "127.0.0.1", trust=True)
        print(f"testdb: throwaway PostgreSQL at {url}", file=sys.stderr)
        env = {**os.environ, "ASR_TEST_DATABASE_URL": url}
        return subprocess.call(argv, env=env)
    finally:
        try:
            devdb.stop(data)
        finally:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
