"""How trajectory bytes are kept in ``trajectory_data.raw``: zstd frames, given back verbatim."""

from __future__ import annotations

import threading

import zstandard

from atif.errors import StoreError

__all__ = ["RAW_ENCODING", "decode_raw", "encode_one", "encode_raw"]

RAW_ENCODING = "zstd"
"""How upload stores a trajectory's bytes (``raw_encoding``).

Trajectories are mostly text and shrink about eight times: that much less to write, to keep in
memory until DuckDB checkpoints, and to rewrite at every checkpoint.
"""

LEVEL = 1
"""zstd's level: on the benchmark's trajectories level 1 compresses 8.30 times at 69 us per 51 KB,
level 3 8.43 times at 95 us; compression is a tenth of an upload's CPU, the size difference 1.5%.
Frames of any level decode alike, so stores written with another level read the same."""


def encode_raw(raws: list[bytes | bytearray | memoryview]) -> list[bytes]:
    """Compress many byte strings at once (as :data:`RAW_ENCODING`).

    One call for the whole list: the GIL is released once, not once per trajectory (each
    re-acquisition can wait a whole switch interval while the reading thread runs).
    """
    if not raws:
        return []
    frames = zstandard.ZstdCompressor(level=LEVEL).multi_compress_to_buffer(raws, threads=1)
    return [frames[i].tobytes() for i in range(len(frames))]


_local = threading.local()


def encode_one(raw: bytes) -> bytes:
    """One byte string compressed (as :data:`RAW_ENCODING`), the same frame :func:`encode_raw` makes.

    For a worker process that hands the upload its trajectories compressed: a sixth of the bytes
    to send back, and the compression off the uploading process. The compressor is kept per
    thread (making one costs as much as compressing a 30 KB trajectory).
    """
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=LEVEL)
    return compressor.compress(raw)


def decode_raw(raw: bytes, encoding: str | None) -> bytes:
    """The trajectory bytes as uploaded, from a stored ``raw`` and its ``raw_encoding``."""
    if encoding is None:
        return bytes(raw)
    if encoding == "zstd":
        try:
            return zstandard.ZstdDecompressor().decompress(raw)
        except zstandard.ZstdError as exc:
            raise StoreError(f"a stored trajectory is damaged: {exc}") from None
    raise StoreError(f"a stored trajectory has an unknown encoding {encoding!r}; upgrade atif")
