"""Parquet reader: one document per row, the text in `spec.text_field`, every other column
kept in `metadata` (values made JSON-safe). Rows are read in record batches (1,024 rows, fewer
for wide rows), so a file larger than memory streams. A text over `read.max_record_bytes`
(UTF-8) is rejected with its first bytes, as the other readers reject an over-long record."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.readers import InputFile, Quarantined, ReadItem, Rejected, describe
from pipeline.readers.jsonl import record_to_document
from pipeline.record import Document

BATCH_BYTES = 64 << 20  # uncompressed bytes a batch of rows holds, about (as Python objects: a few times more)


def batch_rows(metadata: pq.FileMetaData) -> int:
    """Rows per batch: 1,024, or fewer so that a batch of the file's largest rows (by its
    row groups' average) stays near `BATCH_BYTES`: a file of whole books would otherwise put
    GBs of strings in one batch."""
    widest = max((metadata.row_group(i).total_byte_size / metadata.row_group(i).num_rows
                  for i in range(metadata.num_row_groups) if metadata.row_group(i).num_rows), default=0)
    return max(1, min(1024, int(BATCH_BYTES // max(widest, 1))))


def _json_safe(record: dict) -> dict:
    return json.loads(json.dumps(record, default=str))


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    row = 0
    try:
        with storage.open(file.path, "rb", **(spec.storage_options or {})) as f:
            parquet = pq.ParquetFile(f)
            for batch in parquet.iter_batches(batch_size=batch_rows(parquet.metadata)):
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
