"""A throwaway PostgreSQL server for the SQL engine's tests and benchmark: initdb in a temporary folder, started
on a free port, password authentication over TCP, stopped and removed afterwards.

PostgreSQL refuses to run as root; as root the server runs as the ``postgres`` user the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD, DATABASE = "bayes", "s3cret'pw", "experiments"


@dataclass
class Server:
    """A running server: its folder, port and a SQLAlchemy URL for the test role."""

    folder: Path
    port: int
    bindir: Path
    run_as: str | None

    @property
    def url(self) -> str:
        from urllib.parse import quote

        return f"postgresql+psycopg://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def dsn(self) -> str:
        """libpq connection string (for psycopg and psql)."""
        return f"host=127.0.0.1 port={self.port} user={USER} dbname={DATABASE}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for psql: the password without putting it on a command line."""
        return {**os.environ, "PGPASSWORD": PASSWORD}

    def psql(self) -> str:
        return str(self.bindir / "psql") if (self.bindir / "psql").exists() else "psql"

    def stop(self) -> None:
        _run(self.run_as, [str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "-w",
                           "stop"], check=False)
        shutil.rmtree(self.folder, ignore_errors=True)


def binaries() -> Path | None:
    """The folder of initdb and pg_ctl (PATH first, then Debian's versioned folders, newest first)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]), reverse=True)
    return Path(versions[0]).parent if versions else None


def unavailable() -> str | None:
    """Why no server can be started here, or None."""
    if binaries() is None:
        return "PostgreSQL is not installed (scripts/install-postgres.sh installs it)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
    return None


def start() -> Server:
    """Start a server with the role ``bayes`` (password ``PASSWORD``) owning database ``experiments``."""
    bindir = binaries()
    run_as = "postgres" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="bayes-ab-pg-"))
    if run_as:
        account = pwd.getpwnam(run_as)
        os.chown(folder, account.pw_uid, account.pw_gid)
    port = _free_port()
    _run(run_as, [str(bindir / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C"])
    _run(run_as, [str(bindir / "pg_ctl"), "-D", str(folder / "data"), "-w", "-l", str(folder / "log"), "-o",
                  f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
    server = Server(folder, port, bindir, run_as)
    escaped = PASSWORD.replace("'", "''")
    for statement in (f"CREATE ROLE {USER} LOGIN PASSWORD '{escaped}'", f"CREATE DATABASE {DATABASE} OWNER {USER}"):
        _run(run_as, [server.psql(), "-h", str(folder), "-p", str(port), "-U", "postgres", "-d", "postgres",
                      "-v", "ON_ERROR_STOP=1", "-q", "-c", statement])
    return server


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(user: str | None, command: list[str], check: bool = True) -> None:
    if user:
        command = ["runuser", "-u", user, "--", *command]
    subprocess.run(command, check=check, capture_output=True, cwd="/")
