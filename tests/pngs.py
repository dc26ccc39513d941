"""Real PNG files of any size, built in memory (strict mode reads every image's header)."""

from __future__ import annotations

import base64
import random
import struct
import zlib


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A grayscale PNG: blank, or of random (barely compressible) pixels."""
    rows = b"".join(
        b"\x00" + (random.Random(y).randbytes(width) if noise else bytes(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(rows))
        + _chunk(b"IEND", b"")
    )


def png_base64(width: int, height: int, *, noise: bool = False) -> str:
    return base64.b64encode(png(width, height, noise=noise)).decode()


def _chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)
