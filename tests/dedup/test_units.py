"""paragraph_dedup and line_dedup: first occurrence kept in corpus order (across parts and within
a document), or with `repeats: across_documents` every occurrence in the document of the first
kept, normalisation, counts in metadata, documents left too short rejected with their reason,
documents that lost nothing unchanged, the default keeping old fingerprints, the same bytes on
1 and 2 workers."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from dedup.normalize import Normalization
from dedup.units import LineDedup, ParagraphDedup
from pipeline.config import ConfigError, parse_config
from pipeline.record import Document
from tests.conftest import shared_path
from tests.dedup.conftest import digest_outputs, rows, run, run_global, stage_dir, write_jsonl

BOILERPLATE = "Subscribe to our newsletter for the latest market news."
BODY = "A paragraph of real reporting about the markets, long enough to keep the document. " * 2


def doc(i: str, *paragraphs: str) -> Document:
    return Document(id=i, text="\n\n".join(paragraphs), metadata={"k": i})


def paragraph_parts() -> list[list[Document]]:
    return [[doc("a", "Story A.", BODY + "a", BOILERPLATE), doc("b", "Story B.", BODY + "b", BOILERPLATE.upper())],
            [doc("c", BOILERPLATE, "Story C.", BODY + "c", "story c."), doc("d", "Unique.", BODY + "d"),
             doc("e", "  " + BOILERPLATE.lower(), "Story B.")]]


def test_paragraphs_seen_before_are_removed_first_occurrence_kept(client, tmp_path):
    extra, stats, out = run_global(ParagraphDedup(), paragraph_parts(), tmp_path, client)
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


def test_paragraphs_across_documents_keep_the_repeats_of_a_document(client, tmp_path):
    stage = ParagraphDedup(ParagraphDedup.Params(repeats="across_documents"))
    extra, stats, out = run_global(stage, paragraph_parts(), tmp_path, client)
    kept = {r["id"]: r for r in rows(out)}
    assert kept["a"]["text"] == f"Story A.\n\n{BODY}a\n\n{BOILERPLATE}" and kept["a"]["metadata"] == {"k": "a"}
    assert kept["b"]["text"] == f"Story B.\n\n{BODY}b"  # a's footer, in another document
    assert kept["c"]["text"] == f"Story C.\n\n{BODY}c\n\nstory c."  # its own repeat stays
    assert kept["c"]["metadata"]["paragraph_dedup"] == {"units": 4, "units_removed": 1}
    (rejected,) = rows(out, "rejected")  # a's footer and b's "Story B.": nothing left
    assert rejected["id"] == "e" and rejected["reason"] == "paragraph_dedup.too_short_after_dedup"
    assert rejected["metadata"]["paragraph_dedup"] == {"units": 2, "units_removed": 2}
    assert extra["audit"] == {"units": 14, "units_removed": 4}
    assert stats.counters == {"units_removed": 4, "documents_changed": 3}


def test_lines_across_documents_removed_from_later_documents_only(client, tmp_path):
    """A line repeated inside the document of its first occurrence stays there (table cells, a
    menu twice); a later document loses every occurrence, its own repeats of the line too; a
    line that first repeats inside a later document is that document's to keep."""
    fee = "| Fee: | $155 |"
    parts = [[Document(id="a", text=f"Home | News\n{fee}\nFirst story line.\n{fee}\nHOME | news"),
              Document(id="b", text=f"Home | News\nSecond story.\n{fee}\n{fee}\nSecond story.")],
             [Document(id="c", text="home | news\nhome  | news"),
              Document(id="d", text="Third story.\n\nSecond story.")]]
    params = {"min_chars_after_dedup": 5}
    stage = LineDedup(LineDedup.Params(repeats="across_documents", **params))
    extra, stats, out = run_global(stage, parts, tmp_path / "across", client)
    kept = {r["id"]: r for r in rows(out)}
    assert kept["a"]["text"] == parts[0][0].text and kept["a"]["metadata"] == {}
    assert kept["b"]["text"] == "Second story.\nSecond story."
    assert kept["b"]["metadata"]["line_dedup"] == {"units": 5, "units_removed": 3}
    assert kept["d"]["text"] == "Third story."  # b's line, first repeated within b
    assert kept["d"]["metadata"]["line_dedup"] == {"units": 2, "units_removed": 1}
    (rejected,) = rows(out, "rejected")
    assert rejected["id"] == "c" and rejected["reason"] == "line_dedup.too_short_after_dedup"
    assert rejected["metadata"]["line_dedup"] == {"units": 2, "units_removed": 2}
    assert extra["audit"] == {"units": 14, "units_removed": 6}
    assert stats.counters == {"units_removed": 6, "documents_changed": 3}
    assert stats.rejected == {"line_dedup.too_short_after_dedup": 1} and stats.docs_out == 3

    extra, _, out = run_global(LineDedup(LineDedup.Params(**params)), parts, tmp_path / "all", client)
    kept = {r["id"]: r["text"] for r in rows(out)}  # the default, for contrast: a's and b's repeats go too
    assert kept["a"] == f"Home | News\n{fee}\nFirst story line." and kept["b"] == "Second story."
    assert extra["audit"] == {"units": 14, "units_removed": 9}


def test_repeats_at_its_default_keeps_the_fingerprints_of_earlier_runs():
    before = {"normalization": Normalization().model_dump(mode="json"), "min_chars_after_dedup": 100}
    assert LineDedup.Params().model_dump(mode="json") == before  # the params before `repeats`
    assert ParagraphDedup.Params(repeats="all").model_dump(mode="json") == before
    across = LineDedup.Params(repeats="across_documents").model_dump(mode="json")
    assert across == {**before, "repeats": "across_documents"}
    with pytest.raises(ConfigError, match=r"stages\[0\]\.line_dedup.*repeats"):
        parse_config({"output": "out", "inputs": [{"path": "x.jsonl", "format": "jsonl", "source": "x"}],
                      "stages": [{"line_dedup": {"repeats": "within_documents"}}]})


@pytest.mark.parametrize("repeats", ["all", "across_documents"])
def test_same_bytes_on_one_and_two_workers(client1, client2, tmp_path, repeats):
    records = [{"text": f"Story {i}.\n\n{BODY}{i}\nShared line.\nShared line.\n\n"
                        f"{BOILERPLATE if i % 2 else 'Other footer.'}"} for i in range(60)]
    inputs = [write_jsonl(tmp_path / "web.jsonl", records)]
    stages = [{"paragraph_dedup": {"repeats": repeats}}, {"line_dedup": {"repeats": repeats}}]
    run(client1, tmp_path / "one", inputs, stages, read={"max_docs_per_part": 7})
    run(client2, tmp_path / "two", inputs, stages, read={"max_docs_per_part": 7})
    assert digest_outputs(tmp_path / "one") == digest_outputs(tmp_path / "two")
    paragraphs, lines = (rows(stage_dir(tmp_path / "two", name)) for name in ("paragraph_dedup", "line_dedup"))
    assert len(paragraphs) == 60 and sum("paragraph_dedup" in r["metadata"] for r in paragraphs) == 58  # footers
    changed = [r["id"] for r in lines if "line_dedup" in r["metadata"]]  # "Shared line.", twice in each
    assert len(changed) == (60 if repeats == "all" else 59)  # the first document keeps its repeat
    assert lines[0]["text"].count("Shared line.") == (1 if repeats == "all" else 2)


@pytest.mark.parametrize("repeats", ["all", "across_documents"])
def test_line_dedup_on_real_pages_equals_a_plain_first_occurrence_pass(client, tmp_path, repeats):
    """CLEANEVAL pages (lines labelled content / boilerplate): the stage removes exactly the lines a
    plain Python pass over the corpus order would, and reports how many were boilerplate."""
    path = shared_path("quality_lines_cleaneval_derived", "lines_labeled.jsonl.gz")
    with gzip.open(path, "rt") as f:
        pages = [json.loads(line) for line in f]
    parts = [[Document(id=p["id"], text="\n".join(p["lines"])) for p in pages[i::4]] for i in range(4)]
    stage = LineDedup(LineDedup.Params(min_chars_after_dedup=0, repeats=repeats))
    extra, _, out = run_global(stage, parts, tmp_path, client)
    first, expected, removed = {}, {}, Counter()  # the document of each line's first occurrence
    labels = {p["id"]: p["labels"] for p in pages}
    for doc in (d for part in parts for d in part):
        lines = doc.text.split("\n")
        kept = []
        for line, label in zip(lines, labels[doc.id]):
            key = " ".join(line.lower().split())
            if key and key in first and (repeats == "all" or first[key] != doc.id):
                removed[label] += 1
            else:
                first.setdefault(key, doc.id)
                kept.append(line)
        expected[doc.id] = "\n".join(kept).strip() if len(kept) < len(lines) else doc.text
    assert {r["id"]: r["text"] for r in rows(out)} == expected
    assert extra["audit"] == {"units": 60956, "units_removed": sum(removed.values())}
    print(f"\n{repeats}: removed {sum(removed.values())} of 60956 lines: {removed[0]} labelled boilerplate, "
          f"{removed[1]} content")
