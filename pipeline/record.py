"""The one record type that flows from reader to shard writer.

On disk a document is a row of an Arrow table (Parquet, zstd) with the columns of
`DOCUMENT_SCHEMA`; in Python a per-document stage sees it as a `Document`. A stage may add
columns (they ride along in `Document.extras`), and the read stage adds a binary `raw` column
that extraction turns into `text`. Rejected rows carry two more columns, `stage` and `reason`.

    from pipeline.record import Document, documents_to_table, table_to_documents
    rejected = with_reason(table.filter(dropped), "select", reasons)   # Arrow rows, no Documents
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("url", pa.string()),
        pa.field("source", pa.string()),
        pa.field("domain", pa.string()),
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float64()),
        pa.field("quality_score", pa.float64()),
        pa.field("domain_score", pa.float64()),
        pa.field("metadata", pa.string()),
    ]
)
CORE_COLUMNS = tuple(DOCUMENT_SCHEMA.names)
# Raw page bytes (HTML from WARC/HTML readers) until the extract stage replaces them by `text`.
RAW_FIELD = pa.field("raw", pa.binary())
REJECTED_FIELDS = (pa.field("stage", pa.string()), pa.field("reason", pa.string()))


@dataclasses.dataclass
class Document:
    """One document. `metadata` is a dict here and a JSON string on disk; columns that are
    not part of the core schema (added by a stage, or `raw`) live in `extras`."""

    id: str
    text: str | None = None
    url: str | None = None
    source: str | None = None
    domain: str | None = None
    language: str | None = None
    language_score: float | None = None
    quality_score: float | None = None
    domain_score: float | None = None
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> Document:
        """A copy with `changes` applied; stages never mutate their input documents."""
        return dataclasses.replace(self, **changes)

    @property
    def n_bytes(self) -> int:
        return len(self.text.encode("utf-8")) if self.text else 0


def rejected_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of a stage's `rejected/` output: its input schema plus `stage`, `reason`."""
    for field in REJECTED_FIELDS:
        if field.name not in schema.names:
            schema = schema.append(field)
    return schema


def with_reason(dropped: pa.Table, stage: str, reason: str | list[str]) -> pa.Table:
    """Rows for a stage's `rejected/`: `dropped` (Arrow rows, as a global stage holds them) plus
    the `stage` and `reason` columns (one reason for all rows, or one per row)."""
    n = dropped.num_rows
    reasons = [reason] * n if isinstance(reason, str) else reason
    dropped = dropped.append_column(REJECTED_FIELDS[0], pa.array([stage] * n, pa.string()))
    return dropped.append_column(REJECTED_FIELDS[1], pa.array(reasons, pa.string()))


def ensure_schema(schema: pa.Schema) -> pa.Schema:
    """`schema` with every core column present (added in the canonical order if missing)."""
    fields = [schema.field(n) if n in schema.names else DOCUMENT_SCHEMA.field(n) for n in CORE_COLUMNS]
    fields += [f for f in schema if f.name not in CORE_COLUMNS]
    return pa.schema(fields)


def _metadata_from_json(value: str | None) -> dict[str, Any]:
    return json.loads(value) if value else {}


def metadata_to_json(metadata: dict[str, Any]) -> str:
    # sort_keys: the same metadata must serialise to the same bytes on every run.
    return json.dumps(metadata, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def table_to_documents(table: pa.Table) -> Iterator[Document]:
    """Rows of `table` as `Document`s (extras keep any non-core column)."""
    extra_names = [n for n in table.column_names if n not in CORE_COLUMNS]
    for row in table.to_pylist():
        extras = {name: row.pop(name) for name in extra_names}
        row = {k: row.get(k) for k in CORE_COLUMNS}
        row["metadata"] = _metadata_from_json(row["metadata"])
        yield Document(**row, extras=extras)


def document_to_row(doc: Document) -> dict[str, Any]:
    row = {name: getattr(doc, name) for name in CORE_COLUMNS}
    row["metadata"] = metadata_to_json(doc.metadata)
    row.update(doc.extras)
    return row


def documents_to_table(docs: Iterable[Document], schema: pa.Schema) -> pa.Table:
    """Build a table of `schema` from documents; extras not named in `schema` are dropped
    (a stage declares the columns it adds through its output schema)."""
    rows = [document_to_row(d) for d in docs]
    return pa.Table.from_pylist(rows, schema=schema)


def rejected_to_table(items: Iterable[tuple[Document, str, str]], schema: pa.Schema) -> pa.Table:
    """Build a rejected table from (document, stage, reason) triples; `schema` already has
    the `stage` and `reason` columns."""
    rows = []
    for doc, stage, reason in items:
        row = document_to_row(doc)
        row["stage"], row["reason"] = stage, reason
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=schema)
