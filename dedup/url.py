"""`url_dedup`: keep one document per normalised URL (tracking-parameter copies, re-crawls).

A URL is normalised by lowercasing its scheme and host, dropping the default port, the fragment,
trailing slashes of the path and tracking parameters (`utm_*`, `fbclid`, `gclid`, ... ; the list
is configurable, `*` matches any characters), and sorting the remaining query parameters, so
`HTTPS://News.example:443/a/?utm_source=x&b=2&a=1#top` and `https://news.example/a?a=1&b=2` are
one page. Each worker hashes the normalised URLs of its parts (64-bit BLAKE2b); the hashes are
shuffled on Dask so equal URLs meet, and one representative per URL is kept by the same rule as
the other dedup stages (`representative`, default highest `quality_score`, then longest, then
smallest id), where `latest` ranks the newest crawl first (`metadata.warc_date`, documents
without a date last). Removed copies go to `rejected/` with reason `url_dedup.duplicate_url`
and `duplicate_of: <kept id>` in their metadata; documents without a URL pass through.

    stages:
      - url_dedup: {representative: [latest, quality_score, length, id]}
      - url_dedup: {index: s3://bucket/dedup-index}   # also drop URLs that earlier runs kept

With `index`, a document whose normalised URL an earlier run kept is removed whatever its crawl
date (reason `url_dedup.duplicate_url_in_index`), and this run's kept URLs are added (dedup/index.py).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from datetime import datetime, timezone
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import dask.dataframe as dd
import numpy as np
import pandas as pd
from pydantic import Field

from dedup.decide import GROUP_META, rank_frame
from dedup.exact import PARTS_PER_TASK, KeyedDedup, batches
from dedup.index import IndexParams
from pipeline import storage
from pipeline.parts import part_schema, read_part
from pipeline.stage import register

TRACKING_PARAMS = ("utm_*", "fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "_ga", "_gl", "igshid")
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
UrlRankKey = Literal["latest", "quality_score", "length", "id", "order"]
URL_META = GROUP_META.assign(date=pd.Series([], dtype="float64"))
COLUMNS = ("id", "text", "url", "source", "domain", "quality_score", "metadata")


def normalize_url(url: str | None, tracking: tuple[str, ...] = TRACKING_PARAMS) -> str | None:
    """The normalised form of `url` (see the module docstring); None without scheme and host."""
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:  # an unparseable host or port: not a URL to compare
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if not scheme or not host:
        return None
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    if parts.username is not None:
        netloc = parts.netloc.rpartition("@")[0] + "@" + netloc
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                   if not any(fnmatch.fnmatchcase(k.lower(), p) for p in tracking))
    out = f"{scheme}://{netloc}{parts.path.rstrip('/')}"
    return f"{out}?{urlencode(query)}" if query else out


def crawl_time(metadata: str | None, field: str) -> float:
    """Seconds since the epoch of `metadata[field]` (ISO 8601, e.g. a WARC-Date); NaN if absent
    or unreadable."""
    value = json.loads(metadata).get(field) if metadata else None
    try:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return np.nan
    if when is None:
        return np.nan
    # A date without a zone is UTC (as WARC-Date is): the local zone would differ between workers.
    utc = timezone.utc  # noqa: UP017 (datetime.UTC needs Python 3.11; thresher supports 3.10)
    return (when if when.tzinfo else when.replace(tzinfo=utc)).timestamp()


def url_hashes(urls: list[str]) -> np.ndarray:
    digests = [hashlib.blake2b(u.encode(), digest_size=8).digest() for u in urls]
    return np.frombuffer(b"".join(digests), dtype="<i8").copy()


def url_parts(batch: list[tuple[int, str]], in_dir: str, tracking: tuple[str, ...], date_field: str | None
              ) -> pd.DataFrame:
    """Normalised-URL hash, ranking columns and crawl time of the rows with a URL (on a worker)."""
    frames = []
    for part_index, part in batch:
        path = storage.join(in_dir, part)
        table = read_part(path, columns=[c for c in COLUMNS if c in part_schema(path).names])
        keys = [normalize_url(u, tracking) for u in table["url"].to_pylist()]
        has_url = np.array([k is not None for k in keys], dtype=bool)
        dates = ([crawl_time(m, date_field) for m in table["metadata"].to_pylist()] if date_field
                 else [np.nan] * table.num_rows)
        frame = rank_frame(table, part_index).assign(date=np.asarray(dates, dtype="float64"))[has_url]
        frame = frame.assign(group=url_hashes([k for k in keys if k is not None]))
        frames.append(frame[list(URL_META.columns)].astype(URL_META.dtypes.to_dict()))
    return pd.concat(frames, ignore_index=True) if frames else URL_META.copy()


@register
class UrlDedup(KeyedDedup):
    """Keep one document per normalised URL (tracking parameters, default ports, re-crawls)."""

    name = "url_dedup"
    index_kind = "url"
    reason = "url_dedup.duplicate_url"
    meta = URL_META

    class Params(IndexParams):
        tracking_params: tuple[str, ...] = Field(
            TRACKING_PARAMS, description="query parameters dropped before comparing (* matches anything)")
        representative: tuple[UrlRankKey, ...] = Field(
            ("quality_score", "length", "id"), min_length=1,
            description="keep order: latest (newest crawl), quality_score (highest), length (longest), id, order")
        date_field: str = Field("warc_date", description="metadata field holding the crawl date (for latest)")

    def tracking(self) -> tuple[str, ...]:
        return tuple(p.lower() for p in self.params.tracking_params)

    def index_settings(self) -> dict:
        return {"key": "blake2b-64 of the normalised URL", "tracking_params": sorted(set(self.tracking()))}

    def key_frame(self, ctx) -> dd.DataFrame:
        date_field = self.params.date_field if "latest" in self.params.representative else None
        return dd.from_map(url_parts, batches(ctx.input.parts, PARTS_PER_TASK), in_dir=ctx.input.dir,
                           tracking=self.tracking(), date_field=date_field, meta=URL_META, enforce_metadata=False)
