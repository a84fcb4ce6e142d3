"""Write the demo sample: a small crawl that looks like a real one.

Two news sites (financial and general) wrap the articles of `corpus.py` in navigation,
sidebars, cookie banners and footers; other sites syndicate some articles with edits (new
headline, a credit line, whitespace noise) so near-duplicates exist, and one article is also
served under a tracking URL (an exact duplicate). There are pages in four other languages,
spam pages, robots.txt, an image, a 404, a redirect, a latin-1 page labelled UTF-8, a binary
payload labelled text/html, a second WARC cut short, a JSONL newswire (briefs of the financial
stories, so the same story arrives from two sources) with a broken line, and a URL blocklist.
Everything is deterministic: the same call writes the same bytes.

    python -m pipeline.demo.crawl out/sample
"""

from __future__ import annotations

import html
import json
import random
import sys
from pathlib import Path

from pipeline.demo.corpus import FINANCIAL, FOREIGN, GENERAL, SPAM, Article
from pipeline.demo.warcs import Page, write_warc

SITES = {
    "financial": ("www.dailyledger.example", "The Daily Ledger", ("Markets", "Companies", "Economy", "Opinion")),
    "general": ("www.townherald.example", "The Town Herald", ("News", "Sport", "Life", "Science", "Travel")),
}
SYNDICATORS = (("markets.wirehub.example", "WireHub Markets"), ("www.newsdigest.example", "News Digest"))


def page_html(site: str, sections: tuple[str, ...], title: str, paragraphs: tuple[str, ...],
              lang: str = "en", charset: str = "utf-8", date: str = "2026-01-12") -> str:
    nav = "".join(f'<li><a href="/{s.lower()}/">{s}</a></li>' for s in sections)
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="{lang}"><head><meta charset="{charset}"><title>{html.escape(title)} | {site}</title>
<meta name="viewport" content="width=device-width"><script>window.dataLayer=[];function track(){{}}</script></head>
<body><div class="cookie-banner">We use cookies to improve your experience. <a href="/privacy">Privacy policy</a>
<button>Accept all</button></div>
<header><a class="logo" href="/">{site}</a><nav><ul>{nav}<li><a href="/login">Sign in</a></li>
<li><a href="/subscribe">Subscribe</a></li></ul></nav></header>
<main><article><h1>{html.escape(title)}</h1><time datetime="{date}">{date}</time>
{body}
</article>
<aside><h3>Most read</h3><ul><li><a href="/a">Ten things to do this weekend</a></li>
<li><a href="/b">Weather warning for the coast</a></li><li><a href="/c">Letters to the editor</a></li></ul>
<div class="newsletter">Get our newsletter every morning. <input placeholder="Email"><button>Sign up</button></div>
</aside></main>
<footer><p>&copy; 2026 {site}. All rights reserved.</p><a href="/terms">Terms</a> | <a href="/privacy">Privacy</a>
| <a href="/contact">Contact us</a> | <a href="/advertise">Advertise</a></footer></body></html>"""


def syndicated(article: Article, outlet: str, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """The same story as another outlet runs it: new headline, credit line, small edits."""
    paragraphs = list(article.paragraphs)
    if rng.random() < 0.5:
        paragraphs.pop(rng.randrange(1, len(paragraphs)))
    paragraphs = [p.replace(", ", ",  ") if rng.random() < 0.3 else p for p in paragraphs]
    paragraphs.append(f"This story was first published by {SITES[article.domain][1]} and is republished by {outlet}.")
    return f"{article.title} - {outlet}", tuple(paragraphs)


def crawl_pages() -> list[Page]:
    rng = random.Random(20260115)
    pages: list[Page] = []
    for article in FINANCIAL + GENERAL:
        host, name, sections = SITES[article.domain]
        pages.append(Page(f"https://{host}/{article.slug}",
                          page_html(name, sections, article.title, article.paragraphs).encode()))
    for i, article in enumerate(FINANCIAL[:4] + GENERAL[:2]):
        host, outlet = SYNDICATORS[i % 2]
        title, paragraphs = syndicated(article, outlet, rng)
        pages.append(Page(f"https://{host}/story/{article.slug}",
                          page_html(outlet, ("Home", "Latest"), title, paragraphs).encode()))
    first = FINANCIAL[0]
    host, name, sections = SITES["financial"]
    pages.append(Page(f"https://{host}/{first.slug}?utm_source=newsletter",
                      page_html(name, sections, first.title, first.paragraphs).encode(), bracket_uri=True))
    for lang, title, paragraphs in FOREIGN:
        pages.append(Page(f"https://www.lokalzeitung.example/{lang}/{len(pages)}",
                          page_html("Lokal", ("Start",), title, paragraphs, lang=lang).encode()))
    for slug, title, text in SPAM:
        pages.append(Page(f"http://cheap-deals.example/{slug}",
                          page_html("Deals", ("Deals",), title, (text,) * 3).encode()))
    pages += special_pages()
    return pages


def special_pages() -> list[Page]:
    latin = page_html("The Town Herald", SITES["general"][2], "Café culture returns to the square",
                      (("The café on the square has reopened, serving crêpes and coffee to visitors "
                        "from nine until late."),
                       "Its owner said the renovation took longer than planned because the old façade needed repair."),
                      charset="utf-8").encode("latin-1")
    index = "<html><head><title>Index</title></head><body><ul>" + "".join(
        f'<li><a href="/{a.slug}">{a.title}</a></li>' for a in GENERAL) + "</ul></body></html>"
    return [
        Page("https://www.townherald.example/cafe-culture", latin),
        Page("https://www.townherald.example/", index.encode()),
        Page("https://www.townherald.example/robots.txt", b"User-agent: *\nDisallow: /admin\n",
             content_type="text/plain"),
        Page("https://www.townherald.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
             content_type="image/png"),
        Page("https://www.townherald.example/missing", b"<html><body>Not found</body></html>", status=404),
        Page("https://www.dailyledger.example/old", b"", status=301, extra_headers=(("Location", "/rates-hold"),)),
        Page("https://www.dailyledger.example/chart", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8),
    ]


def newswire_lines() -> list[str]:
    lines = [json.dumps({"id": f"wire-{i}", "headline": a.title, "text": "\n\n".join(a.paragraphs[:3]),
                         "url": f"https://wire.example/{a.slug}"}) for i, a in enumerate(FINANCIAL)]
    lines.insert(3, '{"id": "wire-broken", "text": "Markets closed higher as')  # cut off mid-write
    lines.append(json.dumps({"id": "wire-empty", "headline": "Correction"}))  # no text field
    return lines


def write_sample(root: str | Path) -> Path:
    root = Path(root)
    write_warc(root / "crawl" / "crawl-00000.warc.gz", crawl_pages(), dns_hosts=tuple(h for h, _, _ in SITES.values()))
    cut = write_warc(root / "crawl" / "crawl-00001.warc.gz", [
        Page(f"https://www.townherald.example/{a.slug}/print", page_html("Print", (), a.title, a.paragraphs).encode())
        for a in GENERAL[:3]])
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size * 3 // 4])
    (root / "feeds").mkdir(parents=True, exist_ok=True)
    (root / "feeds" / "newswire.jsonl").write_text("\n".join(newswire_lines()) + "\n")
    (root / "lists").mkdir(parents=True, exist_ok=True)
    (root / "lists" / "blocked_domains.txt").write_text(
        "# The demo's URL blocklist (format: filters/data/blocked_domains.txt): a spam site.\ncheap-deals.example\n")
    return root


if __name__ == "__main__":
    print(write_sample(sys.argv[1] if len(sys.argv) > 1 else "out/sample"))
