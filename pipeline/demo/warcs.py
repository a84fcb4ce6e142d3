"""Write small, deterministic WARC files (warcio) for the demo crawl and for tests.

Every record gets a WARC-Record-ID derived from its URL and position and a fixed WARC-Date,
so the same pages always give the same bytes. A crawl looks like a real one: `warcinfo`, a
`request` before each `response`, `metadata` after it, `dns:` lookups, and non-HTML responses.

    pages = [Page("https://example.com/a", b"<html>...</html>")]
    write_warc("crawl.warc.gz", pages)
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

WARC_DATE = "2026-01-15T12:00:00Z"
_NAMESPACE = uuid.UUID("6b1d3a52-7f35-4a0e-9d7c-1f2e8c2b5a10")


@dataclasses.dataclass(frozen=True)
class Page:
    url: str
    body: bytes
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    extra_headers: tuple[tuple[str, str], ...] = ()
    bracket_uri: bool = False  # wget writes `<https://...>` target URIs


def _record_id(url: str, kind: str, index: int) -> str:
    return f"<urn:uuid:{uuid.uuid5(_NAMESPACE, f'{index}:{kind}:{url}')}>"


def _headers(url: str, kind: str, index: int, bracket: bool = False) -> dict[str, str]:
    return {
        "WARC-Record-ID": _record_id(url, kind, index),
        "WARC-Date": WARC_DATE,
        "WARC-Target-URI": f"<{url}>" if bracket else url,
    }


def _write_page(writer: WARCWriter, page: Page, index: int) -> None:
    host = page.url.split("/")[2]
    request = StatusAndHeaders(f"GET /{page.url.split('/', 3)[-1]} HTTP/1.1", [("Host", host)], is_http_request=True)
    writer.write_record(writer.create_warc_record(
        page.url, "request", http_headers=request, warc_headers_dict=_headers(page.url, "request", index)))
    reason = {200: "OK", 301: "Moved Permanently", 404: "Not Found", 500: "Internal Server Error"}.get(page.status, "X")
    headers = [("Content-Type", page.content_type), *page.extra_headers]
    http = StatusAndHeaders(f"{page.status} {reason}", headers, protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(
        page.url, "response", payload=io.BytesIO(page.body), length=len(page.body), http_headers=http,
        warc_headers_dict=_headers(page.url, "response", index, page.bracket_uri)))
    meta = f"via: https://{host}/\nhopsFromSeed: L\n".encode()
    writer.write_record(writer.create_warc_record(
        page.url, "metadata", payload=io.BytesIO(meta), length=len(meta),
        warc_content_type="application/warc-fields", warc_headers_dict=_headers(page.url, "metadata", index)))


def write_warc(path: str | Path, pages: list[Page], dns_hosts: tuple[str, ...] = ()) -> Path:
    """Write `pages` (plus a warcinfo record and `dns:` records) to a gzipped WARC."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=path.suffix == ".gz")
        info = b"software: thresher demo crawl\r\nformat: WARC File Format 1.0\r\n"
        writer.write_record(writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(info), length=len(info), warc_content_type="application/warc-fields",
            warc_headers_dict={"WARC-Record-ID": _record_id(path.name, "warcinfo", 0), "WARC-Date": WARC_DATE,
                               "WARC-Filename": path.name}))
        for i, host in enumerate(dns_hosts):
            body = f"{WARC_DATE} {host}\t300\tIN\tA\t192.0.2.{i + 1}\n".encode()
            writer.write_record(writer.create_warc_record(
                f"dns:{host}", "response", payload=io.BytesIO(body), length=len(body),
                warc_content_type="text/dns", warc_headers_dict=_headers(f"dns:{host}", "dns", i)))
        for i, page in enumerate(pages):
            _write_page(writer, page, i)
    return path
