"""Reading one input file: exactly its bytes, or one issue saying why not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atif.schema.jsonio import read_file


def test_a_file_is_read_whole(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    data = os.urandom(300_000)
    f.write_bytes(data)
    assert read_file(f) == (data, [])
    (tmp_path / "empty.json").write_bytes(b"")
    assert read_file(tmp_path / "empty.json") == (b"", [])


@pytest.mark.parametrize("name,code,message", [
    ("missing.json", "file.not-found", "no such file"),
    (".", "file.unreadable", "is a directory, not a file"),
])
def test_what_cannot_be_read_is_one_issue(tmp_path: Path, name: str, code: str, message: str) -> None:
    data, issues = read_file(tmp_path / name)
    assert data is None and [(i.path, i.code, i.message) for i in issues] == [("", code, message)]


def test_the_size_limit_holds_before_and_while_reading(tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_bytes(b"x" * 2048)
    assert [i.code for i in read_file(f, 1024)[1]] == ["file.too-large"]
    assert read_file(f, 2048) == (b"x" * 2048, [])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_file_whose_size_is_unknown_is_read_to_its_end() -> None:
    data, issues = read_file("/proc/self/status")  # stat() says 0 bytes
    assert not issues and data is not None and data.startswith(b"Name:") and data.endswith(b"\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_read_to_its_end(tmp_path: Path) -> None:
    import threading

    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    payload = b'{"a": 1}' * 20_000

    def write() -> None:
        with open(fifo, "wb") as fh:
            fh.write(payload)

    writer = threading.Thread(target=write)
    writer.start()
    data, issues = read_file(fifo)
    writer.join()
    assert (data, issues) == (payload, [])
