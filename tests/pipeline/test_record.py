"""The record type and stats: round trips, extras, determinism, addition."""

import errno
from collections import Counter

import pyarrow as pa
import pytest

from pipeline.record import (
    DOCUMENT_SCHEMA,
    RAW_FIELD,
    Document,
    documents_to_table,
    ensure_schema,
    rejected_schema,
    rejected_to_table,
    table_to_documents,
)
from pipeline.stats import StageStats


def test_documents_round_trip_with_extras_and_metadata():
    schema = DOCUMENT_SCHEMA.append(RAW_FIELD)
    docs = [Document(id="a", text="héllo", metadata={"b": 1, "a": [1, 2]}, extras={"raw": b"<p>"}),
            Document(id="b", language_score=0.5)]
    table = documents_to_table(docs, schema)
    assert table.schema == schema
    assert table["metadata"][0].as_py() == '{"a":[1,2],"b":1}'  # sorted keys: same bytes every run
    back = list(table_to_documents(table))
    assert back[0] == docs[0] and back[1] == docs[1].replace(extras={"raw": None})  # the column exists for all
    assert docs[0].n_bytes == 6 and docs[1].n_bytes == 0


def test_replace_never_mutates():
    doc = Document(id="a", text="x", metadata={"k": 1})
    other = doc.replace(text="y")
    assert (doc.text, other.text, other.id) == ("x", "y", "a")


def test_rejected_schema_and_rows():
    schema = rejected_schema(DOCUMENT_SCHEMA)
    assert schema.names[-2:] == ["stage", "reason"] and rejected_schema(schema) == schema
    table = rejected_to_table([(Document(id="a", text="t"), "extract", "extract.timeout")], schema)
    assert table.to_pylist()[0]["reason"] == "extract.timeout"


def test_ensure_schema_puts_core_columns_first():
    schema = ensure_schema(pa.schema([pa.field("extra", pa.int64()), pa.field("text", pa.string())]))
    assert schema.names[: len(DOCUMENT_SCHEMA)] == DOCUMENT_SCHEMA.names and schema.names[-1] == "extra"


def test_stats_add_and_serialise():
    a, b = StageStats(docs_in=2, docs_out=1), StageStats(docs_in=3, docs_out=3)
    a.reject("f.too_short", 10)
    b.count("languages.en", 3)
    b.quarantine.append({"file": "x", "reason": "read.empty_file", "detail": "x is empty"})
    total = sum([a, b], StageStats())
    assert (total.docs_in, total.docs_out, total.docs_rejected) == (5, 4, 1)
    assert total.rejected == Counter({"f.too_short": 1}) and total.rejected_bytes["f.too_short"] == 10
    assert StageStats.from_dict(total.to_dict()) == total


def test_a_document_that_raises_is_rejected_not_fatal():
    from pipeline.record import DOCUMENT_SCHEMA
    from pipeline.stage import Filter

    class Fussy(Filter):
        name = "fussy"

        def filter(self, doc):
            if doc.text == "boom":
                raise ZeroDivisionError("bad luck")
            return None

    table = documents_to_table([Document(id="a", text="ok"), Document(id="b", text="boom")], DOCUMENT_SCHEMA)
    result = Fussy().process(table)
    assert result.kept["id"].to_pylist() == ["a"]
    row = result.rejected.to_pylist()[0]
    assert row["reason"] == "fussy.error" and "ZeroDivisionError: bad luck" in row["metadata"]
    assert result.stats.counters["errors.ZeroDivisionError"] == 1


def test_a_full_disk_is_not_a_bad_document():
    """A stage that writes while it works (a model cached on first use) and finds the disk full
    stops the task: rejecting every document would commit a part that the rerun trusts."""
    from pipeline.record import DOCUMENT_SCHEMA
    from pipeline.stage import Filter

    class Caching(Filter):
        name = "caching"

        def filter(self, doc):
            raise OSError(errno.ENOSPC, "No space left on device", "/cache/model.bin")

    table = documents_to_table([Document(id="a", text="ok")], DOCUMENT_SCHEMA)
    with pytest.raises(OSError, match="No space left"):
        Caching().process(table)
