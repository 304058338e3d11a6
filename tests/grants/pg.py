"""PostgreSQL servers for the grant broker tests.

- :func:`shared_admin`: the machine's server (127.0.0.1:5432, database ``test``, trust
  auth). Every test names its roles and tables with its own random suffix and drops
  them after, as other suites share that server.
- :class:`ScramCluster`: a private server started for the module in a temporary folder,
  whose ``pg_hba.conf`` requires scram-sha-256 on 127.0.0.1 (the admin connects through
  its Unix socket with trust): there, passwords and ``VALID UNTIL`` are really checked,
  as in production. Needs Debian's ``initdb`` and a ``postgres`` system user.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest

SHARED_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _unavailable(why: str) -> None:
    """These tests need the real PostgreSQL: its absence is a failure, never a skip."""
    pytest.fail(f"PostgreSQL is needed by the grant tests (.ci/run starts it): {why}")


def shared_admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(SHARED_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as err:
        _unavailable(f"no PostgreSQL at {SHARED_URL}: {err}")
        raise


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ScramCluster:
    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found or os.geteuid() != 0 or shutil.which("runuser") is None:
            _unavailable("a private PostgreSQL needs Debian's initdb, root and runuser")
        self.bin = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="zl-pg-"))
        shutil.chown(self.dir, "postgres")
        self.port = _free_port()
        self._as_postgres(
            str(self.bin / "initdb"),
            "-D",
            str(self.dir / "data"),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-U",
            "postgres",
            "--no-sync",
            "--no-instructions",
            "-E",
            "UTF8",
        )
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c password_encryption=scram-sha-256"
        )
        self._as_postgres(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.dir / "data"),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )
        #: the broker's admin URL: the Unix socket, trust (no password needed)
        self.admin_url = f"postgresql://postgres@/postgres?host={self.dir}&port={self.port}"
        #: what agents are told: TCP on loopback, where scram-sha-256 is required
        self.agent_url = f"postgresql://127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def stop(self) -> None:
        try:
            self._as_postgres(
                str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop"
            )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
