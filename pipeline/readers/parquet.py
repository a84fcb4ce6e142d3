"""Parquet reader: one document per row, the text in `spec.text_field`, every other column
kept in `metadata` (values made JSON-safe). Rows are read in record batches, so a file larger
than memory streams. A text over `read.max_record_bytes` (UTF-8) is rejected with its first
bytes, as the other readers reject an over-long record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.readers import InputFile, Quarantined, ReadItem, Rejected, describe
from pipeline.readers.jsonl import record_to_document
from pipeline.record import Document


def _json_safe(record: dict) -> dict:
    return json.loads(json.dumps(record, default=str))


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    row = 0
    try:
        with storage.open(file.path, "rb", **(spec.storage_options or {})) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    item = record_to_document(_json_safe(record), f"{spec.source}/{file.relpath}:{row}", spec)
                    yield _bounded(item, options.max_record_bytes)
                    row += 1
    except (OSError, pa.ArrowException, ValueError) as error:
        yield Quarantined("read.unreadable_file", f"{file.relpath} after row {row}: {describe(error)}")


def _bounded(item: Document | Rejected, limit: int) -> Document | Rejected:
    """A document whose text is over `limit` UTF-8 bytes, rejected with its first `limit` bytes."""
    if not isinstance(item, Document) or len(item.text) <= limit // 4:  # 4 bytes a character at most
        return item
    raw = item.text.encode("utf-8")
    if len(raw) <= limit:
        return item
    return Rejected(item.replace(text=raw[:limit].decode("utf-8", "ignore"),
                                 metadata={**item.metadata, "truncated_at": limit}), "read.record_too_large")
