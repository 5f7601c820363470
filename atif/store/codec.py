"""How trajectory bytes are kept in ``trajectory_data.raw``: zstd frames, given back verbatim."""

from __future__ import annotations

import zstandard

from atif.errors import StoreError

__all__ = ["RAW_ENCODING", "decode_raw", "encode_raw"]

RAW_ENCODING = "zstd"
"""How upload stores a trajectory's bytes (``raw_encoding``).

Trajectories are mostly text and shrink about six times: that much less to write, to keep in
memory until DuckDB checkpoints, and to rewrite at every checkpoint.
"""


def encode_raw(raws: list[bytes | bytearray | memoryview]) -> list[bytes]:
    """Compress many byte strings at once (as :data:`RAW_ENCODING`).

    One call for the whole list: the GIL is released once, not once per trajectory (each
    re-acquisition can wait a whole switch interval while the reading thread runs).
    """
    if not raws:
        return []
    frames = zstandard.ZstdCompressor(level=3).multi_compress_to_buffer(raws, threads=1)
    return [frames[i].tobytes() for i in range(len(frames))]


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
