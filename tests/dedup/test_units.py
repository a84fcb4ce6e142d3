"""paragraph_dedup and line_dedup: first occurrence kept in corpus order (across parts and within
a document), normalisation, counts in metadata, documents left too short rejected with their
reason, documents that lost nothing unchanged, the same bytes on 1 and 2 workers."""

from __future__ import annotations

import gzip
import json
from collections import Counter

from dedup.units import LineDedup, ParagraphDedup
from pipeline.record import Document
from tests.conftest import shared_path
from tests.dedup.conftest import digest_outputs, rows, run, run_global, stage_dir, write_jsonl

BOILERPLATE = "Subscribe to our newsletter for the latest market news."
BODY = "A paragraph of real reporting about the markets, long enough to keep the document. " * 2


def doc(i: str, *paragraphs: str) -> Document:
    return Document(id=i, text="\n\n".join(paragraphs), metadata={"k": i})


def test_paragraphs_seen_before_are_removed_first_occurrence_kept(client, tmp_path):
    parts = [[doc("a", "Story A.", BODY + "a", BOILERPLATE), doc("b", "Story B.", BODY + "b", BOILERPLATE.upper())],
             [doc("c", BOILERPLATE, "Story C.", BODY + "c", "story c."), doc("d", "Unique.", BODY + "d"),
              doc("e", "  " + BOILERPLATE.lower(), "Story B.")]]
    extra, stats, out = run_global(ParagraphDedup(), parts, tmp_path, client)
    kept = {r["id"]: r for r in rows(out)}
    assert kept["a"]["text"] == f"Story A.\n\n{BODY}a\n\n{BOILERPLATE}"  # first occurrence: untouched
    assert kept["a"]["metadata"] == {"k": "a"}
    assert kept["b"]["text"] == f"Story B.\n\n{BODY}b"  # case-insensitive match (the default normalisation)
    assert kept["b"]["metadata"]["paragraph_dedup"] == {"units": 3, "units_removed": 1}
    assert kept["c"]["text"] == f"Story C.\n\n{BODY}c"  # also the repeat inside the document
    assert kept["d"]["text"] == f"Unique.\n\n{BODY}d" and kept["d"]["metadata"] == {"k": "d"}
    (rejected,) = rows(out, "rejected")
    assert rejected["id"] == "e" and rejected["reason"] == "paragraph_dedup.too_short_after_dedup"
    assert rejected["text"] == "" and rejected["metadata"]["paragraph_dedup"] == {"units": 2, "units_removed": 2}
    assert extra["audit"] == {"units": 14, "units_removed": 5}
    assert stats.counters == {"units_removed": 5, "documents_changed": 3}
    assert stats.rejected == {"paragraph_dedup.too_short_after_dedup": 1} and stats.docs_out == 4


def test_lines_with_normalisation_and_threshold(client, tmp_path):
    parts = [[Document(id="a", text="Home | News | Sport\nFirst story line.\n----\nShare this!"),
              Document(id="b", text="home | news | sport\nSecond story line.\n----\n\nShare this")]]
    stage = LineDedup(LineDedup.Params(normalization={"strip_punctuation": True}, min_chars_after_dedup=5))
    _, _, out = run_global(stage, parts, tmp_path, client)
    assert [r["text"] for r in rows(out)] == ["Home | News | Sport\nFirst story line.\n----\nShare this!",
                                              "Second story line.\n----"]  # "----": empty once normalised
    assert rows(out)[1]["metadata"]["line_dedup"] == {"units": 4, "units_removed": 2}


def test_same_bytes_on_one_and_two_workers(client1, client2, tmp_path):
    records = [{"text": f"Story {i}.\n\n{BODY}{i}\nShared line.\n\n{BOILERPLATE if i % 2 else 'Other footer.'}"}
               for i in range(60)]
    inputs = [write_jsonl(tmp_path / "web.jsonl", records)]
    stages = [{"paragraph_dedup": {}}, {"line_dedup": {}}]
    run(client1, tmp_path / "one", inputs, stages, read={"max_docs_per_part": 7})
    run(client2, tmp_path / "two", inputs, stages, read={"max_docs_per_part": 7})
    assert digest_outputs(tmp_path / "one") == digest_outputs(tmp_path / "two")
    paragraphs, lines = (rows(stage_dir(tmp_path / "two", name)) for name in ("paragraph_dedup", "line_dedup"))
    assert len(paragraphs) == 60 and sum("paragraph_dedup" in r["metadata"] for r in paragraphs) == 58  # footers
    assert sum("line_dedup" in r["metadata"] for r in lines) == 59  # "Shared line."


def test_line_dedup_on_real_pages_equals_a_plain_first_occurrence_pass(client, tmp_path):
    """CLEANEVAL pages (lines labelled content / boilerplate): the stage removes exactly the lines a
    plain Python pass over the corpus order would, and reports how many were boilerplate."""
    path = shared_path("quality_lines_cleaneval_derived", "lines_labeled.jsonl.gz")
    with gzip.open(path, "rt") as f:
        pages = [json.loads(line) for line in f]
    parts = [[Document(id=p["id"], text="\n".join(p["lines"])) for p in pages[i::4]] for i in range(4)]
    extra, _, out = run_global(LineDedup(LineDedup.Params(min_chars_after_dedup=0)), parts, tmp_path, client)
    seen, expected, removed = set(), {}, Counter()
    labels = {p["id"]: p["labels"] for p in pages}
    for doc in (d for part in parts for d in part):
        lines = doc.text.split("\n")
        kept = []
        for line, label in zip(lines, labels[doc.id]):
            key = " ".join(line.lower().split())
            if key and key in seen:
                removed[label] += 1
            else:
                seen.add(key)
                kept.append(line)
        expected[doc.id] = "\n".join(kept).strip() if len(kept) < len(lines) else doc.text
    assert {r["id"]: r["text"] for r in rows(out)} == expected
    assert extra["audit"] == {"units": 60956, "units_removed": sum(removed.values())}
    print(f"\nremoved {sum(removed.values())} of 60956 lines: {removed[0]} labelled boilerplate, {removed[1]} content")
