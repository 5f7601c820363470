"""Archive bombs: .eval members are streamed and given up at the size and ratio limits."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import orjson
import pytest
import zstandard
from click.testing import CliRunner

from atif.adapters.archive import Archive
from atif.cli import cli
from atif.errors import ParseError

HEADER = orjson.dumps({"eval": {"task": "bomb", "dataset": {"sample_ids": [1]}}, "status": "success"})


def _zstd_zeros(size: int) -> bytes:
    """``size`` zero bytes compressed with Zstandard, a chunk at a time (never held whole)."""
    out = io.BytesIO()
    with zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False) as w:
        chunk = bytes(1 << 20)
        for _ in range(size >> 20):
            w.write(chunk)
    return out.getvalue()


def write_eval(path: Path, members: dict[str, bytes], zstd: set[str] = frozenset()) -> Path:  # type: ignore[assignment]
    """A zip whose ``zstd`` members are already Zstandard bytes (method 93, written by hand)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    raw = bytearray(path.read_bytes())
    for name in zstd:  # switch the method of these members from stored (0) to zstd (93)
        encoded = name.encode()
        for sig, at in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
            pos = raw.find(sig)
            while pos >= 0:
                name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
                if raw[name_at:name_at + len(encoded)] == encoded:
                    raw[pos + at:pos + at + 2] = (93).to_bytes(2, "little")
                pos = raw.find(sig, pos + 4)
    path.write_bytes(bytes(raw))
    return path


def test_a_zstd_bomb_stops_at_the_ratio_limit_with_one_line(tmp_path: Path) -> None:
    bomb = _zstd_zeros(512 << 20)  # 512 MiB of zeros in well under 1 MiB
    assert len(bomb) < 1 << 20
    log = write_eval(tmp_path / "bomb.eval", {"header.json": HEADER, "samples/1_epoch_1.json": bomb},
                     zstd={"samples/1_epoch_1.json"})
    archive = Archive(log)
    with pytest.raises(ParseError, match=r"\[archive.ratio\] samples/1_epoch_1.json decompresses to over"):
        archive.read("samples/1_epoch_1.json")
    assert archive.total < 16 << 20  # given up after a few MiB, not 512
    r = CliRunner().invoke(cli, ["convert", str(log), "-o", str(tmp_path / "out")])
    assert r.exit_code == 1
    failed = [line for line in r.output.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "[archive.ratio]" in failed[0] and "Traceback" not in r.output


def test_a_bomb_is_converted_in_bounded_memory(tmp_path: Path) -> None:
    log = write_eval(tmp_path / "bomb.eval", {"header.json": HEADER,
                                              "samples/1_epoch_1.json": _zstd_zeros(1 << 30)},
                     zstd={"samples/1_epoch_1.json"})
    code = textwrap.dedent(f"""
        import resource, sys
        from atif.adapters.convert import convert
        result = convert([{str(log)!r}], None, dry_run=True)
        print(result.failures[0][1])
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    reason, maxrss_kib = p.stdout.strip().splitlines()
    assert "[archive.ratio]" in reason
    assert int(maxrss_kib) < 400 * 1024  # a 1 GiB member never held in memory


def test_per_member_and_total_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATIF_MAX_FILE_MB", "1")
    noise = orjson.dumps({"id": 1, "pad": list(range(200_000))})  # ~1.3 MiB, compresses poorly stored
    log = write_eval(tmp_path / "big.eval", {"header.json": HEADER, "samples/1_epoch_1.json": noise})
    with pytest.raises(ParseError, match=r"\[file.too-large\] samples/1_epoch_1.json decompressed is over "
                                         r"the 1 MiB limit \(raise it with ATIF_MAX_FILE_MB\)"):
        Archive(log).read("samples/1_epoch_1.json")
    small = orjson.dumps({"id": 1, "pad": list(range(100_000))})  # ~0.6 MiB each, 20 of them
    members = {"header.json": HEADER} | {f"samples/{i}_epoch_1.json": small for i in range(20)}
    many = write_eval(tmp_path / "many.eval", members)
    archive = Archive(many)
    with pytest.raises(ParseError, match=r"\[file.too-large\] the archive decompressed is over the 10 MiB"):
        for name in sorted(members):
            archive.read(name)


def test_a_good_zstd_member_still_reads(tmp_path: Path) -> None:
    sample = orjson.dumps({"id": 1, "epoch": 1, "messages": []})
    packed = zstandard.ZstdCompressor().compress(sample)
    log = tmp_path / "ok.eval"
    write_eval(log, {"header.json": HEADER, "samples/1_epoch_1.json": packed}, zstd={"samples/1_epoch_1.json"})
    # the stored CRC is of the compressed bytes, so a real member needs the right one
    archive = Archive(log)
    info = archive.members["samples/1_epoch_1.json"]
    object.__setattr__(info, "CRC", __import__("zlib").crc32(sample))
    assert archive.read("samples/1_epoch_1.json") == sample
