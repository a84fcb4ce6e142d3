"""Fuzzed HTML decoding (hypothesis): `decode_html` never raises anything but `DecodeFailure`.

Inputs are pages in many encodings, with a BOM, an HTTP charset and a `<meta>` charset that may
be right, wrong or not a charset at all (every codec name Python knows, including the ones that
are not text encodings), then damaged at the byte level; and plain random bytes. What must hold
for every input: the text is a valid Unicode string (no lone surrogates: Arrow cannot write
them), bytes that are all ASCII read as ASCII whatever the labels say (as in browsers: a label
inside ASCII bytes can only name an ASCII-compatible charset), and an unlabelled UTF-8 page reads
as UTF-8.
"""

from __future__ import annotations

import encodings.aliases

from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.decode import DecodeFailure, decode_html, looks_binary
from tests.fuzzing import CI_SETTINGS, Target
from tests.pipeline.fuzz_inputs import damage, damages

ENCODINGS = ["utf-8", "latin-1", "cp1252", "shift_jis", "gb18030", "euc-kr", "koi8-r", "utf-16", "utf-16-le",
             "utf-32", "iso2022_jp", "big5", "cp037", "utf-7"]
LABELS = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())) + [
    "utf-7", "undefined", "unicode_escape", "raw_unicode_escape", "idna", "punycode", "rot13", "hex", "base64",
    "x-user-defined", "UTF-16LE", "'utf-8'", '"iso-8859-1"', ""]
BOMS = [b"", b"", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"]


@st.composite
def pages(draw) -> tuple[bytes, str | None]:
    """(raw bytes, Content-Type header or None)."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=300)), draw(st.none() | st.just("text/html"))
    label = draw(st.sampled_from(LABELS) | st.text(max_size=12))
    meta = f'<meta charset="{label}">' if draw(st.booleans()) else ""
    body = draw(st.text(st.characters(codec="utf-8"), max_size=200) | st.sampled_from(
        ["+AGEAYgBj-", "\\ud800 \\x41", "xn--bcher-kva", "\x1b$B$3$s$K$A$O\x1b(B", "caf\xe9 \u65e5\u672c"]))
    page = f"<html><head>{meta}</head><body><p>{body}</p></body></html>"
    raw = draw(st.sampled_from(BOMS)) + page.encode(draw(st.sampled_from(ENCODINGS)), "replace")
    header_label = draw(st.none() | st.sampled_from(LABELS))
    content_type = None if header_label is None else f"text/html; charset={header_label}"
    return damage(raw, draw(damages(2))), content_type


def check_decode(value: tuple[bytes, str | None]) -> None:
    raw, content_type = value
    try:
        text, charset = decode_html(raw, content_type)
    except DecodeFailure as failure:
        assert failure.reason in ("binary_content", "undecodable"), failure.reason
        return
    text.encode("utf-8")  # raises on a lone surrogate
    assert isinstance(charset, str) and charset
    if raw.isascii() and b"\x1b" not in raw and not looks_binary(raw):  # ESC: ISO-2022 shifts
        assert text == raw.decode("ascii"), (charset, text)
    if content_type is None and b"charset" not in raw.lower() and not raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe",
                                                                                        b"\xfe\xff")):
        try:
            expected = raw.decode("utf-8")
        except UnicodeDecodeError:
            return
        if not looks_binary(raw):
            assert (text, charset) == (expected, "utf-8")


TARGETS = {"decode_html": Target(pages(), check_decode)}


@CI_SETTINGS
@given(pages())
# found by fuzzing: labels naming Python codecs that are no charset raised UnicodeError
# (`undefined`, `punycode`) or made lone surrogates (`unicode_escape`); an EBCDIC label (`037`)
# turned an ASCII page into mojibake
@example((b'<html><head><meta charset="undefined"></head><body><p></p></body></html>', None))
@example((b"<p>\\ud800</p>", "text/html; charset=unicode_escape"))
@example((b'<meta charset="punycode"><p>abc</p>', None))
@example((b'<html><head><meta charset="037"></head><body><p></p></body></html>', None))
def test_decode_html_never_raises(value):
    check_decode(value)
