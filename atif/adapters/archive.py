"""Reading zip archives (Inspect ``.eval`` logs) member by member, within limits.

A small archive can hold a huge member (a zip bomb), so members are decompressed as a
stream and given up as soon as one exceeds a limit:

* a member's decompressed size: the input size limit, ``ATIF_MAX_FILE_MB`` (default 100 MiB);
* all members read from one archive: ``TOTAL_FACTOR`` times that limit;
* a member's compression ratio: ``MAX_RATIO`` (decompressed over compressed size), checked
  once a member has produced ``RATIO_FLOOR`` bytes, so small members that compress well pass.

Members are stored, deflated, or compressed with Zstandard (method 93, which ``zipfile``
reads only from Python 3.14; the ``zstandard`` package does it here).
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Self

from atif.adapters.jsonio import parse, read_error
from atif.errors import AdapterError, ParseError
from atif.schema.jsonio import max_file_bytes, too_large

__all__ = ["MAX_RATIO", "RATIO_FLOOR", "TOTAL_FACTOR", "Archive"]

MAX_RATIO = 200
RATIO_FLOOR = 8 * 1024 * 1024
TOTAL_FACTOR = 10
_CHUNK = 1024 * 1024
_STORED, _DEFLATED, _ZSTD = 0, 8, 93


class Archive:
    """An open zip archive whose members are read with the limits above."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ParseError(f"not a readable .eval archive: {exc}", path=str(path)) from exc
        self.members = {i.filename: i for i in self.zip.infolist()}
        self.member_limit = max_file_bytes()
        self.total_limit = TOTAL_FACTOR * self.member_limit
        self.total = 0

    def close(self) -> None:
        """Close the archive file."""
        self.zip.close()

    def read(self, name: str) -> bytes:
        """The decompressed bytes of one member; :class:`ParseError` (one line) when a limit is hit."""
        info = self.members[name]
        out = bytearray()
        with self._open(info) as stream:
            while chunk := stream.read(_CHUNK):
                out += chunk
                self.total += len(chunk)
                self._check(info, len(out))
        if info.compress_type == _ZSTD and zlib.crc32(out) != info.CRC:
            raise ParseError(f"{name} fails its CRC check (the archive is corrupt)", path=str(self.path))
        return bytes(out)

    def json(self, name: str) -> object:
        """One member parsed as JSON (the schema layer's JSON policy)."""
        return parse(self.read(name), self.path, f"{name}: ")

    def _check(self, info: zipfile.ZipInfo, size: int) -> None:
        where = str(self.path)
        if size > self.member_limit:
            raise ParseError(read_error(too_large(None, self.member_limit, f"{info.filename} decompressed")),
                             path=where)
        if self.total > self.total_limit:
            raise ParseError(read_error(too_large(None, self.total_limit, "the archive decompressed")), path=where)
        if size > RATIO_FLOOR and size > MAX_RATIO * max(info.compress_size, 1):
            raise ParseError(f"[archive.ratio] {info.filename} decompresses to over {MAX_RATIO} times its "
                             f"compressed size ({info.compress_size} bytes); refused as a zip bomb", path=where)

    def _open(self, info: zipfile.ZipInfo) -> _Guarded:
        if info.compress_type in (_STORED, _DEFLATED):
            return _Guarded(self.zip.open(info), self.path, info.filename)
        if info.compress_type != _ZSTD:
            raise AdapterError(f"{self.path}: {info.filename}: unsupported zip compression method {info.compress_type}")
        import zstandard

        # zipfile refuses methods it does not know, so the raw bytes are read from the local header.
        fp = self.zip.fp
        assert fp is not None
        fp.seek(info.header_offset)
        header = fp.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise ParseError(f"bad local header for {info.filename}", path=str(self.path))
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        fp.seek(info.header_offset + 30 + name_len + extra_len)
        raw = fp.read(info.compress_size)
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
        return _Guarded(reader, self.path, info.filename)


class _Guarded:
    """A member stream whose read errors become a :class:`ParseError` naming the member."""

    def __init__(self, stream: IO[bytes], path: Path, name: str) -> None:
        self.stream, self.path, self.name = stream, path, name

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()

    def read(self, size: int) -> bytes:
        try:
            return self.stream.read(size)
        except Exception as exc:  # zipfile, zlib and zstandard each raise their own kinds
            raise ParseError(f"cannot read {self.name}: {exc}", path=str(self.path)) from exc

