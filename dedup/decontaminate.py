"""`decontaminate`: drop (or redact) documents that contain benchmark text, as GPT-3 did with
13-gram overlaps (datatrove's `NGramsDecontFilter`, NeMo Curator's task decontamination).

    stages:
      - decontaminate:
          eval_sets:
            - {name: mmlu, path: evals/mmlu.jsonl, format: jsonl, fields: [question, choices]}
            - {name: passages, path: "s3://bucket/evals/passages.parquet", format: parquet, fields: [text]}
          ngram: 13            # word n-grams over the filters' words, lowercased, punctuation stripped
          min_matches: 1       # distinct n-grams of one eval set that flag a document
          mode: drop           # or redact: cut the matches +- redact_margin_words, keep what is left
          min_eval_words: 8    # shorter eval items are ignored; 8..12 words match as a whole sequence

A flagged document goes to `rejected/` with reason `decontaminate.eval_overlap` and, in its
metadata, `eval_set` (the set with most matches) and `decontaminate` (matches per set, item ids).
In redact mode the matched word spans plus a margin are cut out; the document is kept (with the
same metadata) if at least `min_chars_after_redact` characters remain and no eval n-gram formed
across a cut, and dropped as above otherwise. The manifest's `decontamination` block reports per
eval set: documents dropped / redacted, n-grams matched, the eval items found in the corpus
(count, the first ids with their document counts) and a few examples with the matching span.

Why a global stage, though every part is processed on its own: the eval index is built once per
run, before any part (one task on a worker, saved as a file in the stage directory that each
worker loads once and caches; nothing big travels in the task graph), and the per-set report
(examples, items found) is not a count that `StageStats` could add up: it is merged from the
parts' reports into the manifest, which only a global stage returns. Per part it behaves like a
map stage: one task reads a part and writes its kept, rejected, report (`_reports/`) and stats
(last), so a killed run resumes per part, and the output is the same bytes on any number of workers.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Literal

import fsspec
import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from dedup.decide import replace_column
from dedup.evalsets import (
    EvalIndex,
    EvalSet,
    build_index,
    document_hashes,
    eval_set_digest,
    load_index,
    load_item_ids,
    ngram_hashes,
    normalized_words,
)
from pipeline import storage
from pipeline.context import GlobalResult
from pipeline.io import commit_part, read_json, upload_file, write_json
from pipeline.parts import read_part
from pipeline.record import Document, metadata_to_json, with_reason
from pipeline.stage import GlobalStage, StageParams, register
from pipeline.stats import part_stats

REASON = "decontaminate.eval_overlap"
MAX_REDACT_PASSES = 3  # a cut can join words into a new eval n-gram; re-check, then drop
SPAN_CHARS = 300


class DecontaminateParams(StageParams):
    eval_sets: tuple[EvalSet, ...] = Field(min_length=1, description="benchmarks: {name, path, format, fields}")
    ngram: int = Field(13, ge=1, le=64, description="words per n-gram")
    min_matches: int = Field(1, ge=1, description="distinct n-grams of one eval set that flag a document")
    mode: Literal["drop", "redact"] = Field("drop", description="drop flagged documents or cut the matches out")
    min_eval_words: int = Field(8, ge=1, description="eval items with fewer words are ignored")
    redact_margin_words: int = Field(13, ge=0, description="words cut on each side of a match (redact)")
    min_chars_after_redact: int = Field(200, ge=0, description="a redacted document shorter than this is dropped")
    examples: int = Field(5, ge=0, description="examples per eval set in the manifest")
    report_items: int = Field(20, ge=0, description="ids of found eval items listed per set in the manifest")

    @model_validator(mode="after")
    def _consistent(self) -> DecontaminateParams:
        if self.min_eval_words > self.ngram:
            raise ValueError(f"min_eval_words ({self.min_eval_words}) must be at most ngram ({self.ngram})")
        names = [s.name for s in self.eval_sets]
        if len(set(names)) != len(names):
            raise ValueError(f"eval_sets names must be unique, got {names}")
        return self


# -- matching one document --------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Match:
    start: int  # word position in the document
    n: int  # words
    key: int  # the n-gram's hash
    set: int
    item: int


def find_matches(index: EvalIndex, hashes: np.ndarray) -> list[Match]:
    """Every (occurrence, owning eval item) of an eval n-gram in a document's word hashes."""
    found = []
    for n, keys in index.keys.items():
        grams = ngram_hashes(hashes, n)
        if not len(grams) or not len(keys):
            continue
        pos = np.minimum(np.searchsorted(keys, grams), len(keys) - 1)
        offsets, sets, items = index.offsets[n], index.owner_set[n], index.owner_item[n]
        for i in np.flatnonzero(keys[pos] == grams).tolist():
            k = int(pos[i])
            for o in range(int(offsets[k]), int(offsets[k + 1])):
                found.append(Match(i, n, int(grams[i]), int(sets[o]), int(items[o])))
    return sorted(found, key=lambda m: (m.start, m.n, m.set, m.item))


def flagged_sets(matches: list[Match], min_matches: int) -> dict[int, list[Match]]:
    """Matches by eval set, for the sets with at least `min_matches` distinct n-grams."""
    by_set: dict[int, list[Match]] = {}
    for m in matches:
        by_set.setdefault(m.set, []).append(m)
    return {s: ms for s, ms in sorted(by_set.items()) if len({m.key for m in ms}) >= min_matches}


def redact(text: str, starts: list[int], ends: list[int], matches: list[Match], margin: int) -> tuple[str, int]:
    """`text` without the matched words +- `margin` words; (new text, words cut)."""
    spans = sorted((max(0, m.start - margin), min(len(starts), m.start + m.n + margin)) for m in matches)
    merged: list[list[int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    pieces, prev = [], 0
    for a, b in merged:
        pieces.append(text[prev:starts[a]])
        prev = ends[b - 1]
    pieces.append(text[prev:])
    kept = " ".join(p.strip() for p in pieces if p.strip())
    return kept, sum(b - a for a, b in merged)


def first_span(text: str, starts: list[int], ends: list[int], matches: list[Match]) -> str:
    """The text of the first run of overlapping matches, shortened to SPAN_CHARS."""
    first = min(matches, key=lambda m: m.start)
    a, b = first.start, first.start + first.n
    for m in sorted(matches, key=lambda m: m.start):
        if a <= m.start <= b:
            b = max(b, m.start + m.n)
    span = text[starts[a]:ends[b - 1]]
    return span if len(span) <= SPAN_CHARS else span[:SPAN_CHARS] + "…"


# -- one part ---------------------------------------------------------------------------------

class PartReport:
    """What one part found, per eval set (merged over parts into the manifest)."""

    def __init__(self, names: list[str]):
        self.sets = {name: {"documents_dropped": 0, "documents_redacted": 0, "ngrams_matched": 0,
                            "examples": [], "items": Counter()} for name in names}

    def add(self, index: EvalIndex, doc: Document, flagged: dict[int, list[Match]], action: str,
            span_of, examples: int) -> None:
        for s, ms in flagged.items():
            entry = self.sets[index.set_names[s]]
            entry[f"documents_{action}"] += 1
            entry["ngrams_matched"] += len({m.key for m in ms})
            entry["items"].update({m.item for m in ms})
            if len(entry["examples"]) < examples:
                entry["examples"].append({"document": doc.id, "item": index.item_ids[s][ms[0].item],
                                          "span": span_of(ms)})

    def to_dict(self) -> dict:
        return {name: {**e, "items": {str(k): v for k, v in sorted(e["items"].items())}}
                for name, e in self.sets.items()}


class Decontaminator:
    """Applies the params to documents, one at a time, against a loaded index."""

    def __init__(self, index: EvalIndex, params: DecontaminateParams):
        self.index, self.params = index, params

    def matches(self, text: str) -> list[Match]:
        return find_matches(self.index, document_hashes(text))

    def process(self, doc: Document, report: PartReport) -> tuple[Document, bool]:
        """(document to write, whether it is kept); unflagged documents come back unchanged."""
        matches = self.matches(doc.text or "")
        flagged = flagged_sets(matches, self.params.min_matches)
        if not flagged:
            return doc, True
        _, starts, ends = normalized_words(doc.text)  # offsets only for the few flagged documents
        text, cut = doc.text, 0
        if self.params.mode == "redact":
            text, cut = self._redact(doc.text, matches, starts, ends)
        kept = self.params.mode == "redact" and text is not None and len(text) >= self.params.min_chars_after_redact
        report.add(self.index, doc, flagged, "redacted" if kept else "dropped",
                   lambda ms: first_span(doc.text, starts, ends, ms), self.params.examples)
        metadata = {**doc.metadata, **self._metadata(flagged, cut, text, kept)}
        return (doc.replace(text=text, metadata=metadata) if kept else doc.replace(metadata=metadata)), kept

    def _redact(self, text: str, matches: list[Match], starts, ends) -> tuple[str | None, int]:
        total = 0
        for _ in range(MAX_REDACT_PASSES):
            text, cut = redact(text, starts, ends, matches, self.params.redact_margin_words)
            total += cut
            if not (matches := self.matches(text)):
                return text, total
            _, starts, ends = normalized_words(text)
        return None, total  # matches keep forming across the cuts: drop the document

    def _metadata(self, flagged: dict[int, list[Match]], cut: int, text: str | None, kept: bool) -> dict:
        names = self.index.set_names
        sets = {names[s]: {"ngrams": len({m.key for m in ms}),
                           "items": [self.index.item_ids[s][i] for i in sorted({m.item for m in ms})[:5]]}
                for s, ms in flagged.items()}
        info: dict = {"action": "redacted" if kept else "dropped", "eval_sets": sets}
        if self.params.mode == "redact":
            info.update(words_cut=cut, chars_after_redact=len(text) if text is not None else None)
        primary = max(flagged, key=lambda s: (len({m.key for m in flagged[s]}), -s))
        return {"eval_set": names[primary], "decontaminate": info}


def candidate_rows(index: EvalIndex, hashes: list[np.ndarray]) -> list[int]:
    """Rows whose words contain an eval n-gram: one vectorised pass over the whole part (the
    documents' word hashes concatenated; windows that cross a document boundary ignored)."""
    lengths = np.array([len(h) for h in hashes], dtype=np.int64)
    if not lengths.sum():
        return []
    words = np.concatenate(hashes)
    doc_end = np.repeat(np.cumsum(lengths), lengths)  # for each word, where its document ends
    rows = np.repeat(np.arange(len(hashes)), lengths)
    hits = set()
    for n, keys in index.keys.items():
        grams = ngram_hashes(words, n)
        if not len(grams) or not len(keys):
            continue
        inside = np.arange(len(grams)) + n <= doc_end[:len(grams)]
        found = keys[np.minimum(np.searchsorted(keys, grams), len(keys) - 1)] == grams
        hits.update(rows[:len(grams)][found & inside].tolist())
    return sorted(hits)


def decontaminate_part(part: str, in_dir: str, out_dir: str, index_path: str,
                       params: DecontaminateParams) -> dict:
    """Check one part; write kept, rejected, the report and (last: the part is done) the commit
    record (stats and files).
    Only the rows with a candidate match become `Document`s; the others are copied as they are."""
    table = read_part(storage.join(in_dir, part))
    index = load_index(Path(storage.local_file(index_path)))
    worker, report = Decontaminator(index, params), PartReport(index.set_names)
    texts, metadata, ids = (table[c].to_pylist() for c in ("text", "metadata", "id"))
    dropped = np.zeros(table.num_rows, dtype=bool)
    for row in candidate_rows(index, [document_hashes(t or "") for t in texts]):
        doc = Document(id=ids[row], text=texts[row], metadata=json.loads(metadata[row]) if metadata[row] else {})
        out, keep = worker.process(doc, report)
        if out is not doc:
            texts[row], metadata[row], dropped[row] = out.text, metadata_to_json(out.metadata), not keep
    checked = replace_column(replace_column(table, "text", texts), "metadata", metadata)
    kept = checked.filter(pa.array(~dropped))
    rejected = with_reason(checked.filter(pa.array(dropped)), Decontaminate.name, REASON)
    stats = part_stats(table, kept, rejected)
    for name, entry in report.sets.items():
        for key in ("documents_dropped", "documents_redacted", "ngrams_matched"):
            if entry[key]:
                stats.count(f"{name}.{key}", entry[key])
    write_json(report.to_dict(), storage.join(out_dir, "_reports", f"{part}.json"))
    return commit_part(out_dir, part, kept, rejected, stats)


def build_and_save(params: DecontaminateParams, path: str) -> dict:
    """Build the eval index (on a worker) and save it to `path` (a local file, uploaded whole to
    an object store); return the per-set summary."""
    index, summary = build_index(params.eval_sets, params.ngram, params.min_eval_words)
    if storage.is_local(path):
        index.save(Path(path))
        return summary
    with tempfile.TemporaryDirectory(prefix="thresher-index-") as tmp:
        local = Path(tmp) / storage.basename(path)
        index.save(local)
        upload_file(local, path)
    return summary


# -- the stage --------------------------------------------------------------------------------

@register
class Decontaminate(GlobalStage):
    """Drop or redact documents sharing word n-grams (13 by default) with benchmark sets."""

    name = "decontaminate"
    Params = DecontaminateParams

    def check(self) -> None:
        for spec in self.params.eval_sets:
            fs, path = fsspec.core.url_to_fs(spec.path)
            if not fs.exists(path):
                raise ValueError(f"decontaminate.eval_sets[{spec.name}].path: {spec.path} not found; "
                                 "give an existing fsspec path")

    def fingerprint_extra(self) -> list[str]:
        return [eval_set_digest(spec) for spec in self.params.eval_sets]

    def run(self, ctx) -> GlobalResult:
        work = ctx.path("_work")
        index_path, summary_path = storage.join(work, "eval_index.npz"), storage.join(work, "eval_index.json")
        if not storage.exists(summary_path):  # written after the index: it commits it
            storage.makedirs(work)
            future = ctx.client.submit(build_and_save, self.params, index_path, pure=False)
            write_json(future.result(), summary_path)
        summary = read_json(summary_path)
        stats = ctx.map_parts(decontaminate_part, "decontaminate", by_size=True,
                              index_path=index_path, params=self.params)
        report = self._merge(ctx, summary, load_item_ids(storage.local_file(index_path)))
        # Only the index goes: the parts' reports stay in _reports/ (like _stats/), so a run killed
        # after this line rebuilds the index (the same bytes) and still finds every part's report.
        storage.rm(work)
        return GlobalResult(stats, ctx.input.parts, {"decontamination": report})

    def _merge(self, ctx, summary: dict, item_ids: list[list[str]]) -> dict:
        """The parts' reports added up in part order (so the examples are the same on any cluster)."""
        merged = {name: {**counts, "documents_dropped": 0, "documents_redacted": 0, "ngrams_matched": 0,
                         "items_found": 0, "found_items": [], "examples": []} for name, counts in summary.items()}
        items: dict[str, Counter] = {name: Counter() for name in summary}
        for part in ctx.input.parts:
            for name, entry in read_json(ctx.path("_reports", f"{part}.json")).items():
                for key in ("documents_dropped", "documents_redacted", "ngrams_matched"):
                    merged[name][key] += entry[key]
                items[name].update({int(k): v for k, v in entry["items"].items()})
                merged[name]["examples"] += entry["examples"][:self.params.examples - len(merged[name]["examples"])]
        for s, name in enumerate(summary):
            merged[name]["items_found"] = len(items[name])
            merged[name]["found_items"] = [{"id": item_ids[s][i], "documents": items[name][i]}
                                           for i in sorted(items[name])[:self.params.report_items]]
        return {"ngram": self.params.ngram, "mode": self.params.mode, "min_matches": self.params.min_matches,
                "eval_sets": merged}
