"""A throw-away PostgreSQL cluster for the team-store tests, and a fresh catalog database per test.

The cluster runs on 127.0.0.1 on a free port, as an unprivileged user when the tests run as
root (PostgreSQL refuses root), with password authentication. The tests skip, saying why, when
PostgreSQL's binaries or the ``team`` extra (DuckLake and PostgreSQL extensions matching the
installed DuckDB) are missing.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

PASSWORD = "atif-test-pw"
USER = "atif"
_counter = itertools.count()


def _pg_bin() -> Path | None:
    for name in ("initdb",):
        found = shutil.which(name)
        if found:
            return Path(os.path.realpath(found)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(dirs[-1]) if dirs else None


def _team_extra_missing() -> str | None:
    try:
        import duckdb_extension_ducklake
        import duckdb_extension_postgres  # noqa: F401
    except ImportError:
        return "the team extra is not installed (pip install -e '.[team]')"
    base = Path(duckdb_extension_ducklake.__file__).parent / "extensions"
    if not (base / f"v{duckdb.__version__}").is_dir():
        return f"the installed DuckLake extension does not match DuckDB {duckdb.__version__} (pip install -e '.[team]')"
    return None


@dataclass(frozen=True)
class Cluster:
    """A running PostgreSQL cluster."""

    bin: Path
    port: int
    run_as: str | None
    env: dict[str, str]

    def createdb(self, name: str) -> None:
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name],
                       check=True, env=self.env, capture_output=True)

    def target(self, dbname: str, *, password: str = PASSWORD, port: int | None = None) -> str:
        return (f"ducklake:postgres:dbname={dbname} host=127.0.0.1 port={port or self.port} "
                f"user={USER} password={password}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(run_as: str | None, args: list[str]) -> list[str]:
    return ["runuser", "-u", run_as, "--", *args] if run_as else args


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """Start a PostgreSQL cluster for the session (skip when PostgreSQL or the team extra is missing)."""
    missing = _team_extra_missing()
    if missing:
        pytest.skip(missing)
    pg_bin = _pg_bin()
    if pg_bin is None or not (pg_bin / "pg_ctl").exists():
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl not found; Debian: apt-get install postgresql)")
    run_as = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                pwd.getpwnam(name)
                run_as = name
                break
            except KeyError:
                continue
        if run_as is None or shutil.which("runuser") is None:
            pytest.skip("running as root without an unprivileged user (postgres, nobody) to run PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="atif-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        pw = pwd.getpwnam(run_as)
        for p in (root, sock, pwfile):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    env = dict(os.environ, PGPASSWORD=PASSWORD, LC_ALL="C")
    subprocess.run(_as_user(run_as, [str(pg_bin / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                                     "-A", "scram-sha-256", "-E", "UTF8"]),
                   check=True, capture_output=True, env=env)
    opts = f"-h 127.0.0.1 -p {port} -k {sock} -c max_connections=200 -c fsync=off"
    subprocess.run(_as_user(run_as, [str(pg_bin / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
                                     "-w", "start"]),
                   check=True, capture_output=True, env=env)
    try:
        yield Cluster(pg_bin, port, run_as, env)
    finally:
        subprocess.run(_as_user(run_as, [str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]), check=False,
                       capture_output=True, env=env)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class TeamDB:
    """A fresh catalog database and data folder."""

    target: str
    data_path: Path
    cluster: Cluster
    dbname: str


@pytest.fixture
def team_db(pg_cluster: Cluster, tmp_path: Path) -> TeamDB:
    """A new, empty team store target (its own PostgreSQL database and data folder)."""
    name = f"atif_{os.getpid()}_{next(_counter)}"
    pg_cluster.createdb(name)
    return TeamDB(pg_cluster.target(name), tmp_path / "lake", pg_cluster, name)
