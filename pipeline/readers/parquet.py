"""Parquet reader: one document per row, the text in `spec.text_field`, every other column
kept in `metadata` (values made JSON-safe). Rows are read in record batches, so a file larger
than memory streams."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.readers import InputFile, Quarantined, ReadItem, describe
from pipeline.readers.jsonl import record_to_document


def _json_safe(record: dict) -> dict:
    return json.loads(json.dumps(record, default=str))


def read(file: InputFile, spec, options) -> Iterator[ReadItem]:
    row = 0
    try:
        with storage.open(file.path, "rb", **(spec.storage_options or {})) as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    yield record_to_document(_json_safe(record), f"{spec.source}/{file.relpath}:{row}", spec)
                    row += 1
    except (OSError, pa.ArrowException, ValueError) as error:
        yield Quarantined("read.unreadable_file", f"{file.relpath} after row {row}: {describe(error)}")
