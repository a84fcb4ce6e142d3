"""The `url_blocklist` filter: drop documents whose URL is on a domain blocklist or contains a
banned word, as FineWeb's base filtering starts with URL filtering against adult content
(Penedo et al. 2024, with the UT1 blocklist and banned URL words).

Both lists are plain text files named in the config (one domain or word per line, `#`
comments; see `filters/data/blocked_domains.txt` and `filters/data/banned_url_words.txt`, the
small defaults shipped with thresher, for the format), so a large list such as UT1's drops in
unchanged. A host is blocked when it or any parent domain is listed (`m.example.com` by
`example.com`, any `.xxx` host by `xxx`); a URL is split into words at non-alphanumeric
characters, and one listed word drops it. Documents without a URL are kept.

    - url_blocklist: {domains_file: lists/ut1-adult.txt, banned_words_file: lists/words.txt}
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field

from pipeline import storage
from pipeline.record import Document
from pipeline.stage import Filter, StageParams, register

DATA = Path(__file__).parent / "data"
DEFAULT_DOMAINS = DATA / "blocked_domains.txt"
DEFAULT_WORDS = DATA / "banned_url_words.txt"
_URL_WORD_SPLIT = re.compile(r"[^0-9a-z]+")


@functools.lru_cache(maxsize=16)
def read_list(path: str) -> frozenset[str]:
    """Entries of a list file: lowercased, comments (`#`) and blank lines skipped, a leading
    `www.` or `*.` removed."""
    entries = set()
    for line in storage.read_bytes(path).decode("utf-8").splitlines():
        entry = line.split("#", 1)[0].strip().lower()
        for prefix in ("*.", "www."):
            entry = entry.removeprefix(prefix)
        if entry:
            entries.add(entry)
    return frozenset(entries)


def host_of(url: str) -> str:
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname or ""
    except ValueError:  # malformed URL (e.g. an unclosed IPv6 bracket)
        return ""
    return host.rstrip(".")


def parent_domains(host: str) -> list[str]:
    """`a.b.com` -> [`a.b.com`, `b.com`, `com`]."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


@register
class UrlBlocklist(Filter):
    """Drop documents whose URL's domain is blocklisted or whose URL has a banned word."""

    name = "url_blocklist"

    class Params(StageParams):
        domains_file: str | None = Field(None, description="blocked domains, one per line; null: the "
                                         "small default list shipped in filters/data/")
        banned_words_file: str | None = Field(None, description="banned URL words, one per line; null: "
                                              "the default list shipped in filters/data/")

    def check(self) -> None:
        for key in ("domains_file", "banned_words_file"):
            path = getattr(self.params, key)
            if path is not None and not storage.isfile(path):
                raise ValueError(f"url_blocklist.{key}: file {path!r} does not exist; give a text file "
                                 "with one entry per line (relative paths are from the working directory)")

    def setup(self) -> None:
        self._lists()

    def _lists(self) -> tuple[frozenset[str], frozenset[str]]:
        p = self.params
        return read_list(p.domains_file or str(DEFAULT_DOMAINS)), read_list(p.banned_words_file or str(DEFAULT_WORDS))

    def filter(self, doc: Document) -> str | None:
        if not doc.url:
            return None
        domains, banned = self._lists()
        host = host_of(doc.url.strip().lower())
        if host and any(d in domains for d in parent_domains(host)):
            return "blocked_domain"
        if banned and not banned.isdisjoint(_URL_WORD_SPLIT.split(doc.url.lower())):
            return "banned_word_in_url"
        return None
