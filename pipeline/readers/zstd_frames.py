"""Whether a `.zst` file ends where its last frame ends: zstandard's stream reader stops quietly
at a cut (mid-frame or mid-block), so a truncated `.jsonl.zst` would pass for a whole one.
This walks the frames' headers and block headers (RFC 8878), seeking past every block without
decompressing it, and says where the data stops short.

    problem = cut_short(f)   # None, or "frame at byte 0 is cut short (block at byte 1234)"
"""

from __future__ import annotations

from typing import IO

ZSTD_MAGIC = 0xFD2FB528
SKIPPABLE = range(0x184D2A50, 0x184D2A60)


def cut_short(f: IO[bytes]) -> str | None:
    """Why the zstd data in `f` (seekable, at its start) is not a run of whole frames, or None."""
    f.seek(0, 2)
    size = f.tell()
    position = 0
    while position < size:
        f.seek(position)
        head = f.read(4)
        if len(head) < 4:
            return f"frame at byte {position} is cut short (magic number)"
        magic = int.from_bytes(head, "little")
        if magic in SKIPPABLE:
            length = f.read(4)
            end = position + 8 + int.from_bytes(length, "little")
        elif magic == ZSTD_MAGIC:
            end = _frame_end(f, position + 4)
        else:
            return f"no zstd frame at byte {position}"
        if end is None or end > size:
            return f"frame at byte {position} is cut short"
        position = end
    return None


def _frame_end(f: IO[bytes], position: int) -> int | None:
    """Byte offset just past the frame whose header starts at `position`, or None when the
    file ends inside a block header."""
    f.seek(position)
    descriptor = f.read(1)
    if not descriptor:
        return None
    d = descriptor[0]
    single_segment, checksum = (d >> 5) & 1, (d >> 2) & 1
    content_size = (1 if single_segment else 0, 2, 4, 8)[d >> 6]
    header = 1 + (0 if single_segment else 1) + (0, 1, 2, 4)[d & 3] + content_size
    position += header
    while True:
        f.seek(position)
        block = f.read(3)
        if len(block) < 3:
            return None
        h = int.from_bytes(block, "little")
        last, kind, length = h & 1, (h >> 1) & 3, h >> 3
        position += 3 + (1 if kind == 1 else length)  # an RLE block stores its one byte
        if last:
            return position + 4 * checksum
