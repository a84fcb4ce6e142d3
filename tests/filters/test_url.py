"""URL blocklist: domain and banned-word decisions, list files from the config, clear errors."""

import re

import pytest

from filters.url import DEFAULT_DOMAINS, DEFAULT_WORDS, UrlBlocklist, host_of, read_list
from pipeline.config import ConfigError, parse_config
from pipeline.record import Document


def reason(url, **params):
    return UrlBlocklist(UrlBlocklist.Params(**params)).filter(Document(id="d", text="text", url=url))


@pytest.mark.parametrize("url, expected", [
    ("https://www.example.com/news/today.html", None),
    (None, None),
    ("", None),
    ("not a url at all", None),
    ("http://[::1", None),  # malformed: no host, kept
    ("https://www.pornhub.com/view?x=1", "blocked_domain"),
    ("https://M.XHamster.com./x", "blocked_domain"),  # subdomain, case, trailing dot
    ("http://anything.xxx/page", "blocked_domain"),  # a whole top-level domain
    ("https://blog.example.org/2019/best-porn-sites", "banned_word_in_url"),
    ("https://example.org/?q=Hentai", "banned_word_in_url"),
    ("https://www.essex.ac.uk/sussex-news", None),  # whole words only
    ("https://пример.рф/новости", None),  # non-Latin host
])
def test_default_lists(url, expected):
    assert reason(url) == expected


def test_files_named_in_the_config(tmp_path):
    domains = tmp_path / "domains.txt"
    domains.write_text("# my list\nwww.Blocked.example  # trailing comment\n\n*.other.test\n")
    words = tmp_path / "words.txt"
    words.write_text("casino\n")
    params = {"domains_file": str(domains), "banned_words_file": str(words)}
    assert read_list(str(domains)) == {"blocked.example", "other.test"}
    assert reason("https://shop.blocked.example/x", **params) == "blocked_domain"
    assert reason("https://a.other.test/", **params) == "blocked_domain"
    assert reason("https://example.com/online-casino", **params) == "banned_word_in_url"
    assert reason("https://www.pornhub.com/", **params) is None  # the defaults are replaced
    config = parse_config({"output": str(tmp_path / "out"), "inputs": [{"path": "x", "format": "jsonl", "source": "s"}],
                           "stages": [{"url_blocklist": params}]})
    stage, = config.build_stages()
    stage.check()
    assert stage.filter(Document(id="d", url="http://blocked.example")) == "blocked_domain"


def test_missing_file_is_a_clear_error(tmp_path):
    stage = UrlBlocklist(UrlBlocklist.Params(banned_words_file=str(tmp_path / "missing.txt")))
    with pytest.raises(ValueError, match=r"url_blocklist\.banned_words_file: file .*missing\.txt' does not exist"):
        stage.check()
    UrlBlocklist().check()  # the shipped defaults exist
    with pytest.raises(ConfigError, match=re.escape("url_blocklist.domain_file: unknown key")):
        parse_config({"output": "o", "inputs": [{"path": "x", "format": "jsonl", "source": "s"}],
                      "stages": [{"url_blocklist": {"domain_file": "x"}}]})


def test_shipped_lists_are_documented_and_non_empty():
    for path in (DEFAULT_DOMAINS, DEFAULT_WORDS):
        assert path.read_text().startswith("#") and len(read_list(str(path))) >= 10
    assert host_of("HTTP://User@Example.COM:8080/x") == "example.com"
