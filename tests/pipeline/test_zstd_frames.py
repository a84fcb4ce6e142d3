"""zstd frame walking: whole files of every frame layout pass, a cut anywhere but between
frames is found."""

import io

import pytest
import zstandard

from pipeline.readers.zstd_frames import cut_short

DATA = b"".join(b"line %d %d\n" % (i, i * 7919 % 10007) for i in range(40000))
SKIPPABLE = (0x184D2A50).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"hello"


def _streamed() -> bytes:
    out = io.BytesIO()
    writer = zstandard.ZstdCompressor(write_checksum=True).stream_writer(out, closefd=False)
    for start in range(0, len(DATA), 50_000):
        writer.write(DATA[start:start + 50_000])
        writer.flush(zstandard.FLUSH_BLOCK)
    writer.close()
    return out.getvalue()


WHOLE = {
    "level 1": zstandard.ZstdCompressor(level=1).compress(DATA),
    "level 19": zstandard.ZstdCompressor(level=19).compress(DATA),
    "checksum, no size": zstandard.ZstdCompressor(write_checksum=True, write_content_size=False).compress(DATA),
    "streamed blocks": _streamed(),
    "two frames": zstandard.ZstdCompressor().compress(DATA[:999]) + zstandard.ZstdCompressor().compress(DATA[999:]),
    "skippable frame": SKIPPABLE + zstandard.ZstdCompressor().compress(DATA),
    "rle zeros": zstandard.ZstdCompressor().compress(bytes(10 << 20)),
    "empty": zstandard.ZstdCompressor().compress(b""),
}


@pytest.mark.parametrize("name", WHOLE)
def test_whole_files_pass_and_every_cut_is_found(name):
    data = WHOLE[name]
    assert cut_short(io.BytesIO(data)) is None
    step = max(1, len(data) // 500)
    missed = [cut for cut in range(1, len(data), step) if cut_short(io.BytesIO(data[:cut])) is None]
    if name == "two frames":  # a cut between frames leaves whole frames: nothing to find
        first = len(zstandard.ZstdCompressor().compress(DATA[:999]))
        missed = [cut for cut in missed if cut != first]
    if name == "skippable frame":
        missed = [cut for cut in missed if cut != len(SKIPPABLE)]
    assert not missed


def test_bytes_that_are_no_frame_are_named():
    assert cut_short(io.BytesIO(b"\x00" * 16)) == "no zstd frame at byte 0"
