"""The `pii` stage: redact e-mail addresses and public IP addresses, counting the replacements.

FineWeb anonymises e-mail addresses and public IP addresses (Penedo et al. 2024); here each
match is replaced by a fixed token. The defaults are addresses reserved for
documentation (`email@example.com`, RFC 2606; `192.0.2.1`, RFC 5737; `2001:db8::1`, RFC
3849), so redacted text still reads naturally and redacting twice changes nothing. An IP
address is public when Python's `ipaddress` says it is globally routable and not multicast:
private (10/8, 172.16/12, 192.168/16), loopback (127/8), link-local, shared (100.64/10) and
reserved ranges are left alone. IPv6 candidates must contain a digit (so `cafe::face` in code
is not an address). A replacement set to null turns that redaction off.

    - pii: {email_replacement: "<EMAIL>", ip_replacement: "<IP>"}
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field

from pipeline.record import Document
from pipeline.stage import DocumentStage, Reject, StageParams, register
from pipeline.stats import StageStats

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[\w.+%-]*[\w%+-])?"  # local part, not starting or ending with a dot
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"  # domain labels
    r"(?!(?:png|jpe?g|gif|svg|webp)\b)[A-Za-z]{2,24}\b"  # a top-level domain, not an image suffix (logo@2x.png)
)
# Candidates only (`ipaddress` validates them): the IPv4 pattern starts with a digit, not a
# lookbehind, so `re` skips ahead to digits; every IPv6 address has two colons at most 4 hex
# digits apart, a cheap test that skips the full pattern for most documents.
_IPV4 = re.compile(r"\d(?<![\d.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\.?\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*\d)(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")


def is_public_ip(text: str) -> bool:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def redact(pattern: re.Pattern, text: str, replacement: str, check=None) -> tuple[str, int]:
    """`text` with matches of `pattern` (those passing `check`) replaced, and their number;
    a match that already is the replacement is left alone (redacting twice counts nothing)."""
    count = 0

    def substitute(match: re.Match) -> str:
        nonlocal count
        found = match.group()
        if found == replacement or (check is not None and not check(found)):
            return found
        count += 1
        return replacement

    return pattern.sub(substitute, text), count


@register
class Pii(DocumentStage):
    """Replace e-mail addresses and public IPv4/IPv6 addresses by placeholder tokens."""

    name = "pii"

    class Params(StageParams):
        email_replacement: str | None = Field("email@example.com", description="null keeps e-mails")
        ip_replacement: str | None = Field("192.0.2.1", description="for IPv4; null keeps IPs")
        ipv6_replacement: str | None = Field("2001:db8::1", description="for IPv6; null keeps them")

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        text, p = doc.text or "", self.params
        changed = False
        for key, pattern, replacement, check in (
            ("emails_replaced", _EMAIL, p.email_replacement, None),
            ("ipv4_replaced", _IPV4, p.ip_replacement, is_public_ip),
            ("ipv6_replaced", _IPV6, p.ipv6_replacement, is_public_ip),
        ):
            if replacement is None or not _may_contain(key, text):
                continue
            text, count = redact(pattern, text, replacement, check)
            if count:
                stats.count(key, count)
                changed = True
        if not changed:
            return doc
        stats.count("documents_redacted")
        return doc.replace(text=text)


def _may_contain(key: str, text: str) -> bool:
    """Cheap pre-checks that skip a full pattern for most documents."""
    if key == "emails_replaced":
        return "@" in text
    if key == "ipv6_replaced":
        return _IPV6_HINT.search(text) is not None
    return True
