"""Parsing a team-store target (no PostgreSQL needed): host and port for messages, no password shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from atif.errors import StoreError
from atif.store.team import is_team_target, parse_target


@pytest.mark.parametrize(("target", "host", "port", "label"), [
    ("ducklake:postgres:dbname=atif host=db.internal user=atif password=s3cret",
     "db.internal", "5432", "ducklake:postgres:dbname=atif host=db.internal user=atif password=***"),
    ("ducklake:postgres:dbname=atif host=10.0.0.5 port=6543 password='a b'",
     "10.0.0.5", "6543", "ducklake:postgres:dbname=atif host=10.0.0.5 port=6543 password=***"),
    ("ducklake:postgres:postgresql://atif:s3cret@db.internal:6000/atif",
     "db.internal", "6000", "ducklake:postgres:postgresql://atif:***@db.internal:6000/atif"),
])
def test_targets_are_parsed_and_redacted(tmp_path: Path, target: str, host: str, port: str, label: str) -> None:
    t = parse_target(target, tmp_path / "lake")
    assert (t.host, t.port, t.label) == (host, port, label)
    assert "connect_timeout=10" in t.dsn
    assert t.data_path == str(tmp_path / "lake") + "/"


def test_an_object_store_data_path_is_taken_as_it_is() -> None:
    assert parse_target("ducklake:postgres:dbname=a", "s3://bucket/prefix").data_path == "s3://bucket/prefix/"


@pytest.mark.parametrize(("target", "message"), [
    ("ducklake:sqlite:x.db", "a team store is named ducklake:postgres:<connection string>"),
    ("ducklake:postgres:", "needs a connection string"),
])
def test_bad_targets(tmp_path: Path, target: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        parse_target(target, tmp_path)


def test_only_ducklake_targets_are_team_stores() -> None:
    assert is_team_target("ducklake:postgres:dbname=a")
    assert not is_team_target("atif.duckdb") and not is_team_target(Path("ducklake:x"))
