"""Bytes of a web page -> text, with a charset that may be wrong or missing.

Order of trust: a byte-order mark, then the HTTP `Content-Type` charset, then a `<meta>`
charset in the first 4 KB, then UTF-8; the first one that decodes the bytes strictly wins. A
declared charset counts only when it reads ASCII as ASCII (not UTF-16, UTF-7, EBCDIC, or a
Python codec that is no charset, such as `unicode_escape`).
When none does (a page labelled UTF-8 that is really cp1252, a page with no label), the
charset is detected with charset-normalizer, except that UTF-8 with a few stray invalid bytes
stays UTF-8 (the bytes become U+FFFD) rather than a whole page of mojibake. UTF-16 without a
byte-order mark is recognised by its NUL bytes at every other position. Binary payloads
labelled text/html (images, PDFs, archives) and bytes no encoding explains raise
`DecodeFailure` with the reason (`binary_content`, `undecodable`).

    text, charset = decode_html(raw, content_type="text/html; charset=iso-8859-1")
"""

from __future__ import annotations

import codecs
import functools
import re

import charset_normalizer

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_BINARY_MAGIC = (
    b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"%PDF", b"PK\x03\x04", b"\x1f\x8b", b"BM", b"RIFF",
    b"\x00\x00\x01\x00", b"wOFF", b"wOF2", b"OTTO", b"\x7fELF", b"ID3", b"fLaC", b"OggS", b"7z\xbc\xaf",
)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([A-Za-z0-9_\-:.]+)", re.IGNORECASE)


class DecodeFailure(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().strip("\"'")).name
    except LookupError:
        return None


# Printable ASCII and text that only a non-ASCII-compatible codec reads differently (the
# backslash only in valid escapes: `unicode_escape` warns of invalid ones).
_ASCII_PROBE = bytes(range(0x20, 0x7F)).replace(b"\\", b"") + b"\t\r\n \\u0041 \\x41 +AGE- a.xn--bcher-kva.b"


@functools.cache
def ascii_compatible(codec: str) -> bool:
    """Whether `codec` reads ASCII bytes as ASCII. A label found in ASCII bytes (a header, a
    `<meta>` tag) can only name such a charset, as browsers rule (they ignore a declared UTF-16
    or UTF-7); this also turns away codecs that are no charset (`unicode_escape`, which makes
    lone surrogates of `\\ud800`, `idna`, `undefined`, `rot13`) and EBCDIC pages' labels."""
    try:
        return _ASCII_PROBE.decode(codec) == _ASCII_PROBE.decode("ascii")
    except (UnicodeError, LookupError):
        return False


def looks_binary(raw: bytes) -> bool:
    head = raw[:4096]
    if head.startswith(_BINARY_MAGIC):
        return True
    # UTF-16 text is full of NULs; it carries a BOM, checked before this.
    return head.count(b"\x00") > len(head) // 100


def utf16_without_bom(raw: bytes) -> str | None:
    """`utf-16-le`/`utf-16-be` when (nearly) every other byte of the head is NUL and the rest
    are not: Latin-script UTF-16 with no byte-order mark; else None."""
    head = raw[:4096]
    head = head[: len(head) - len(head) % 2]
    if len(head) < 8:
        return None
    even, odd = head[0::2], head[1::2]
    for nuls, text, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if nuls.count(0) >= 0.9 * len(nuls) and text.count(0) <= 0.1 * len(text):
            return codec
    return None


def _mostly_utf8(raw: bytes) -> str | None:
    """`raw` as UTF-8 with its invalid bytes replaced, when its valid non-ASCII characters
    outnumber those bytes ten to one (a stray byte in a UTF-8 page); else None (cp1252 and
    its kin rarely form valid UTF-8 sequences)."""
    text = raw.decode("utf-8", "replace")
    bad = text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
    valid = sum(1 for ch in text if ch > "\x7f") - text.count("\ufffd")
    return text if valid >= 10 * bad else None


def candidate_charsets(raw: bytes, content_type: str | None) -> list[str]:
    declared = []
    if content_type and (m := _HEADER_CHARSET.search(content_type)):
        declared.append(m.group(1))
    if m := _META_CHARSET.search(raw[:4096]):
        declared.append(m.group(1).decode("ascii", "ignore"))
    boms = [_codec(name) for bom, name in _BOMS if raw.startswith(bom)]
    labels = [codec for codec in map(_codec, declared) if codec and ascii_compatible(codec)]
    return list(dict.fromkeys([*boms, *labels, "utf-8"]))


def decode_html(raw: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Return (text, charset used); raise DecodeFailure when the bytes are not text."""
    boms = [bom for bom, _ in _BOMS if raw.startswith(bom)]
    utf16 = None if boms else utf16_without_bom(raw)
    if not boms and utf16 is None and looks_binary(raw):
        raise DecodeFailure("binary_content")
    for codec in [utf16] if utf16 else candidate_charsets(raw, content_type):
        try:
            return raw.decode(codec), codec
        except UnicodeError:
            continue
    if (text := _mostly_utf8(raw)) is not None:
        return text, "utf-8 (invalid bytes replaced)"
    best = charset_normalizer.from_bytes(raw).best()
    if best is None:
        raise DecodeFailure("undecodable")
    return str(best), f"{best.encoding} (detected)"
