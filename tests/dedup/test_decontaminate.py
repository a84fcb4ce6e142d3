"""decontaminate: word normalisation and hashing, eval-set formats, drop and redact on tiny
documents (reasons, metadata, short items matched whole), the stage in a run, and the issue's
check on real text: AG News items and BBC paragraphs planted (whole, and inside Reuters /
WikiText-2 documents, with case and punctuation noise) are found, clean documents are kept."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dedup.decontaminate import Decontaminate, build_and_save
from dedup.evalsets import EvalSet, eval_items, load_index, ngram_hashes, normalized_words, word_hashes
from pipeline.context import GlobalContext, StageOutput
from pipeline.record import DOCUMENT_SCHEMA, Document
from tests.conftest import REPO
from tests.dedup.conftest import digest_outputs, manifest, rows, run, run_global, stage_dir, write_jsonl

QUESTION = ("Which planet in the solar system has the largest number of known moons orbiting it "
            "according to recent astronomical surveys")
FILLER = " ".join(f"word{i}" for i in range(60))


def words(text: str) -> list[str]:
    return normalized_words(text)[0]


def stage(tmp_path, records: list[dict], **params) -> Decontaminate:
    evals = write_jsonl(tmp_path / "evals.jsonl", records)["path"]
    spec = {"name": "quiz", "path": evals, "format": "jsonl", "fields": ["question", "answer"]}
    return Decontaminate(Decontaminate.Params(eval_sets=[spec], **params))


def test_words_ignore_case_and_punctuation_and_keep_offsets():
    text = "The U.S. said, 'No.'   Profits rose 1,000 pct!"
    assert words(text) == words("the US said no profits rose 1000 pct") == [
        "the", "us", "said", "no", "profits", "rose", "1000", "pct"]
    _, starts, ends = normalized_words(text)
    assert [text[a:b] for a, b in zip(starts, ends)] == ["The", "U.S.", "said", "No", "Profits", "rose", "1,000",
                                                          "pct"]


def test_ngram_hashes_are_the_same_in_another_process():
    code = (f"from dedup.evalsets import *; h = ngram_hashes(word_hashes(normalized_words({QUESTION!r})[0]), 3); "
            "print(h.tolist())")
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert json.loads(other.stdout) == ngram_hashes(word_hashes(words(QUESTION)), 3).tolist()


def test_eval_sets_read_jsonl_parquet_and_text(tmp_path):
    write_jsonl(tmp_path / "q.jsonl", [{"id": "q1", "q": {"text": "Who?"}, "choices": ["a", "b"]},
                                       {"q": {"text": "x"}}])
    pq.write_table(pa.table({"text": ["one passage", "two"]}), tmp_path / "p.parquet")
    (tmp_path / "t.txt").write_text("first line\n\nsecond line\n")
    jsonl = EvalSet(name="q", path=f"file://{tmp_path}/q.jsonl", fields=("q.text", "choices"))  # an fsspec URL
    parquet = EvalSet(name="p", path=str(tmp_path / "p.parquet"), format="parquet", id_field=None)
    text = EvalSet(name="t", path=str(tmp_path / "t.txt"), format="text")
    assert list(eval_items(jsonl)) == [("q1", "Who? a b"), ("q:2", "x")]
    assert list(eval_items(parquet)) == [("p:1", "one passage"), ("p:2", "two")]
    assert list(eval_items(text)) == [("t:1", "first line"), ("t:3", "second line")]


def test_drop_mode_rejects_overlaps_with_reason_and_metadata(client, tmp_path):
    evals = [{"id": "q-long", "question": QUESTION, "answer": "Saturn"},
             {"id": "q-short", "question": "Who wrote the famous novel Moby Dick", "answer": "Melville"},
             {"id": "q-tiny", "question": "Capital of France", "answer": "Paris"}]
    docs = [Document(id="copied", text=f"{FILLER} {QUESTION.upper()}, SATURN! {FILLER}"),
            Document(id="short-whole", text=f"{FILLER} who wrote the famous novel, Moby-Dick? Melville. {FILLER}"),
            Document(id="tiny", text=f"{FILLER} Capital of France Paris {FILLER}"),
            Document(id="partial", text=f"{FILLER} " + " ".join(QUESTION.split()[:12]) + f" {FILLER}"),
            Document(id="clean", text=FILLER)]
    extra, stats, out = run_global(stage(tmp_path, evals), [docs], tmp_path / "run", client)
    assert [r["id"] for r in rows(out)] == ["tiny", "partial", "clean"]  # tiny: under min_eval_words; partial: 12 words
    rejected = {r["id"]: r for r in rows(out, "rejected")}
    assert set(rejected) == {"copied", "short-whole"}
    assert {r["reason"] for r in rejected.values()} == {"decontaminate.eval_overlap"}
    meta = rejected["copied"]["metadata"]
    assert meta["eval_set"] == "quiz" and meta["decontaminate"]["eval_sets"]["quiz"]["items"] == ["q-long"]
    assert meta["decontaminate"]["eval_sets"]["quiz"]["ngrams"] == len(words(QUESTION + " Saturn")) - 12
    assert rejected["short-whole"]["metadata"]["decontaminate"]["eval_sets"]["quiz"] == {"ngrams": 1,
                                                                                         "items": ["q-short"]}
    report = extra["decontamination"]["eval_sets"]["quiz"]
    assert report["items"] == 3 and report["items_too_short"] == 1 and report["items_matched_whole"] == 1
    assert report["documents_dropped"] == 2 and report["items_found"] == 2
    assert report["found_items"] == [{"id": "q-long", "documents": 1}, {"id": "q-short", "documents": 1}]
    assert report["examples"][0]["document"] == "copied" and QUESTION.upper() in report["examples"][0]["span"]
    assert stats.rejected == {"decontaminate.eval_overlap": 2} and stats.docs_out == 3
    assert stats.counters["quiz.documents_dropped"] == 2
    assert not (out / "_work").exists()


def test_redact_mode_cuts_the_span_and_a_margin_or_drops_what_is_left_too_short(client, tmp_path):
    before, after = "Alpha beta gamma delta. " * 20, "Epsilon zeta eta theta. " * 20
    evals = [{"id": "q", "question": QUESTION, "answer": "Saturn"}]
    docs = [Document(id="host", text=f"{before}{QUESTION}? Saturn. {after}", metadata={"k": 1}),
            Document(id="mostly-copy", text=f"Quiz: {QUESTION} Saturn")]
    decont = stage(tmp_path, evals, mode="redact", redact_margin_words=2, min_chars_after_redact=50)
    extra, _, out = run_global(decont, [docs], tmp_path / "run", client)
    (host,) = rows(out)
    # two words cut on each side of the match ("gamma delta." and "Epsilon zeta"), the pieces joined by a space
    assert host["text"] == ("Alpha beta gamma delta. " * 19 + "Alpha beta eta theta. " + "Epsilon zeta eta theta. " * 19
                            ).strip()
    assert host["metadata"]["k"] == 1 and host["metadata"]["decontaminate"]["action"] == "redacted"
    assert host["metadata"]["decontaminate"]["words_cut"] == len(words(QUESTION + " Saturn")) + 4
    (dropped,) = rows(out, "rejected")
    assert dropped["id"] == "mostly-copy" and dropped["reason"] == "decontaminate.eval_overlap"
    assert dropped["metadata"]["decontaminate"]["chars_after_redact"] == 0
    report = extra["decontamination"]["eval_sets"]["quiz"]
    assert report["documents_redacted"] == 1 and report["documents_dropped"] == 1


def test_min_matches_counts_distinct_ngrams(client, tmp_path):
    evals = [{"id": "q", "question": QUESTION, "answer": ""}]
    thirteen = " ".join(QUESTION.split()[:13])
    docs = [Document(id="once", text=f"{FILLER} {thirteen} {FILLER}"),
            Document(id="twice", text=f"{FILLER} {thirteen} {FILLER} {thirteen}"),
            Document(id="fourteen", text=f"{FILLER} " + " ".join(QUESTION.split()[:14]))]
    _, _, out = run_global(stage(tmp_path, evals, min_matches=2), [docs], tmp_path / "run", client)
    assert [r["id"] for r in rows(out)] == ["once", "twice"]


def test_stage_runs_in_a_config_and_checks_its_eval_sets(client, tmp_path):
    evals = write_jsonl(tmp_path / "evals.jsonl", [{"id": "q", "question": QUESTION}])["path"]
    corpus = write_jsonl(tmp_path / "web.jsonl", [{"text": f"{FILLER} {QUESTION}"}, {"text": FILLER}])
    spec = {"name": "quiz", "path": evals, "fields": ["question"]}
    run(client, tmp_path / "out", [corpus], [{"decontaminate": {"eval_sets": [spec]}}])
    out = stage_dir(tmp_path / "out", "decontaminate")
    assert [r["id"] for r in rows(out)] == ["web/web.jsonl:2"]
    assert manifest(out)["decontamination"]["eval_sets"]["quiz"]["found_items"] == [{"id": "q", "documents": 1}]
    missing = Decontaminate(Decontaminate.Params(eval_sets=[{**spec, "path": str(tmp_path / "nope.jsonl")}]))
    with pytest.raises(ValueError, match=r"eval_sets\[quiz\]\.path"):
        missing.check()
    with pytest.raises(ValueError, match="min_eval_words"):
        Decontaminate.Params(eval_sets=[spec], ngram=5, min_eval_words=8)


def test_a_killed_run_resumes_to_the_same_bytes_and_report(client, tmp_path):
    evals = [{"id": "q", "question": QUESTION, "answer": "Saturn"}]
    parts = [[Document(id=f"p{p}d{i}", text=f"{FILLER} {QUESTION if i == p else ''}") for i in range(3)]
             for p in range(3)]
    decont = stage(tmp_path, evals)
    extra, _, out = run_global(decont, parts, tmp_path / "run", client)
    first = digest_outputs(out)
    # Killed after the index was removed, with one part not written: the rerun redoes that part only.
    for path in (out / "_stats" / "part-00001.parquet.json", out / "part-00001.parquet",
                 out / "rejected" / "part-00001.parquet"):
        path.unlink()
    ctx = GlobalContext(client, StageOutput(tmp_path / "run" / "input", "test", tuple(p.name for p in sorted(
        (tmp_path / "run" / "input").glob("part-*"))), DOCUMENT_SCHEMA), out, 0, progress=False)
    result = decont.run(ctx)
    assert result.extra == extra and digest_outputs(out) == first
    assert result.stats.rejected == {"decontaminate.eval_overlap": 3}


def test_the_index_is_loaded_once_per_process(tmp_path):
    path = write_jsonl(tmp_path / "evals.jsonl", [{"id": "q", "question": QUESTION}])["path"]
    build_and_save(Decontaminate.Params(eval_sets=[{"name": "quiz", "path": path, "fields": ["question"]}]),
                   str(tmp_path / "index.npz"))
    assert load_index(tmp_path / "index.npz") is load_index(tmp_path / "index.npz")


def test_same_bytes_on_one_and_two_workers(client1, client2, tmp_path):
    evals = [{"id": f"q{i}", "question": f"{QUESTION} variant {i}", "answer": "Saturn"} for i in range(5)]
    parts = [[Document(id=f"p{p}d{i}", text=f"{FILLER} {evals[(p + i) % 5]['question'] if i % 3 == 0 else ''} "
                       f"{FILLER}") for i in range(9)] for p in range(4)]
    decont, digests = stage(tmp_path, evals, mode="redact", min_chars_after_redact=10), []
    for name, client in (("one", client1), ("two", client2)):
        extra, _, out = run_global(decont, parts, tmp_path / name, client)
        digests.append((digest_outputs(out), extra))
    assert digests[0] == digests[1]
    assert digests[0][1]["decontamination"]["eval_sets"]["quiz"]["documents_redacted"] == 12
