"""Charset handling: declared, wrong, missing; binary payloads and undecodable bytes."""

import random

import pytest

from pipeline.decode import DecodeFailure, decode_html

LATIN = "<html><body><p>Café, déjà vu, naïve résumé: voilà les crêpes du marché.</p></body></html>" * 5


def test_declared_header_charset_wins():
    text, charset = decode_html(LATIN.encode("latin-1"), "text/html; charset=ISO-8859-1")
    assert text == LATIN and charset == "iso8859-1"


def test_meta_charset_is_used_when_header_has_none():
    page = ('<html><head><meta charset="windows-1252"></head>' + LATIN).encode("cp1252")
    text, charset = decode_html(page, "text/html")
    assert "déjà" in text and charset == "cp1252"


def test_wrong_utf8_label_falls_back_to_detection():
    text, charset = decode_html(LATIN.encode("latin-1"), "text/html; charset=utf-8")
    assert charset.endswith("(detected)")
    assert "march" in text and "\ufffd" not in text


def test_utf8_without_label_and_with_bom():
    assert decode_html("<p>日本語のテキスト</p>".encode(), None) == ("<p>日本語のテキスト</p>", "utf-8")
    text, charset = decode_html("\ufeff<p>x</p>".encode("utf-16"), None)
    assert text.endswith("<p>x</p>") and charset == "utf-16"


@pytest.mark.parametrize("payload", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, b"%PDF-1.4\n...", b"GIF89a\x01\x00",
                                     b"PK\x03\x04zip", b"text\x00with\x00many\x00nul\x00bytes\x00" * 10])
def test_binary_payload_labelled_html_is_refused(payload):
    with pytest.raises(DecodeFailure) as failure:
        decode_html(payload, "text/html")
    assert failure.value.reason == "binary_content"


def test_random_high_bytes_are_undecodable():
    rng = random.Random(0)
    garbage = b"<html><body><p>" + bytes(rng.randrange(128, 256) for _ in range(3000)) + b"</p></body></html>"
    with pytest.raises(DecodeFailure) as failure:
        decode_html(garbage, "text/html; charset=utf-8")
    assert failure.value.reason == "undecodable"


def test_utf16_without_a_byte_order_mark_is_text():
    page = "<html><body><p>Rivers and bridges</p></body></html>"
    assert decode_html(page.encode("utf-16-le")) == (page, "utf-16-le")
    assert decode_html(page.encode("utf-16-be"), "text/html; charset=utf-16be") == (page, "utf-16-be")


def test_a_stray_invalid_byte_in_utf8_is_replaced_not_a_reason_to_guess_the_charset():
    text = "<p>" + "Les rivières et les ponts, déjà très beaux. " * 10 + "</p>"
    raw = text.encode()[:100] + b"\xff" + text.encode()[100:]
    decoded, charset = decode_html(raw, "text/html; charset=utf-8")
    assert charset == "utf-8 (invalid bytes replaced)"
    assert decoded.count("\ufffd") == 1 and "rivières" in decoded


@pytest.mark.parametrize("label", ["utf-16", "utf-7", "unicode_escape", "cp037", "undefined", "idna", "punycode"])
def test_declared_charset_that_misreads_ascii_is_ignored(label):
    page = f'<meta charset="{label}"><p>+AGE- \\ud800 a.xn--bcher-kva.b</p>'.encode()
    assert decode_html(page, f"text/html; charset={label}") == (page.decode("ascii"), "utf-8")
