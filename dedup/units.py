"""`paragraph_dedup` and `line_dedup`: remove paragraphs (or lines) seen earlier in the corpus.

Boilerplate that survives extraction (cookie notices, bylines, "Share this article", a footer
repeated on every page of a site) is exact-duplicate text at the paragraph or line level; CCNet
and Dolma remove it by keeping only the first occurrence of each. Here each worker splits its
parts' texts into units (paragraphs: text between blank lines; lines: text between newlines),
normalises them like `exact_dedup` (case and whitespace by default) and hashes them (64-bit
BLAKE2b); the hashes are shuffled on Dask so equal units meet, and the first occurrence in corpus
order (input part, row, position in the text) is kept, every later one removed, within a document
as well as across documents (`repeats: all`, the default). With `repeats: across_documents` a
unit is removed only from the documents after the one that holds its first occurrence: that
document keeps every occurrence, its own repeats too (table cells, a speaker's name in a
transcript, a heading repeated down the page), and a later document loses all of its occurrences.
Boilerplate (navigation, cookie banners, footers) is what repeats across pages, while on extracted
pages most of the main-text lines that `all` removes repeat within their own page (README). Each
part is then rewritten with the remaining units joined by a blank line (a newline for lines); a
document that lost units carries `metadata.<stage> = {units, units_removed}`, and one left
shorter than `min_chars_after_dedup` goes to `rejected/` with reason
`<stage>.too_short_after_dedup`. Documents that lost nothing are written unchanged. Units that
are blank, or empty once normalised, are never removed.

    stages:
      - paragraph_dedup: {min_chars_after_dedup: 100}
      - line_dedup: {normalization: {strip_punctuation: true}, repeats: across_documents}
"""

from __future__ import annotations

import json
import re
from typing import ClassVar, Literal

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dedup.decide import decided_once, node_ids, replace_column
from dedup.exact import PARTS_PER_TASK, batches, text_hashes
from dedup.normalize import Normalization, normalize
from pipeline import storage
from pipeline.aggregate import n_partitions, persisted, shuffle_method
from pipeline.context import GlobalResult
from pipeline.io import commit_part, write_parquet
from pipeline.parts import read_part
from pipeline.record import metadata_to_json, with_reason
from pipeline.stage import GlobalStage, StageParams, register
from pipeline.stats import part_stats

UNIT_META = pd.DataFrame({"group": pd.Series([], dtype="int64"), "node": pd.Series([], dtype="int64"),
                          "unit": pd.Series([], dtype="int32")})
REMOVED_META = UNIT_META.drop(columns=["group"]).assign(part=pd.Series([], dtype="int64"))
COUNT_META = pd.DataFrame({"removed": pd.Series([], dtype="int64")})


def unit_frame(batch: list[tuple[int, str]], in_dir: str, splitter: str, norm: Normalization) -> pd.DataFrame:
    """(hash, document node, unit position) of every non-blank unit in a batch of parts (on a worker)."""
    frames = []
    for part_index, part in batch:
        texts = read_part(storage.join(in_dir, part), columns=["text"])["text"].to_pylist()
        nodes, positions, units = [], [], []
        for node, text in zip(node_ids(part_index, len(texts)).tolist(), texts):
            for position, unit in enumerate(re.split(splitter, text or "")):
                if unit.strip():
                    nodes.append(node)
                    positions.append(position)
                    units.append(unit)
        normed = pc.cast(normalize(pa.array(units, pa.string()), norm), "binary").to_pylist()
        keep = np.array([len(u) > 0 for u in normed], dtype=bool)  # e.g. a "----" line without punctuation
        frames.append(pd.DataFrame({"group": text_hashes([u for u in normed if u]),
                                    "node": np.array(nodes, dtype=np.int64)[keep],
                                    "unit": np.array(positions, dtype=np.int32)[keep]}))
    return pd.concat(frames, ignore_index=True) if frames else UNIT_META.copy()


def later_occurrences(df: pd.DataFrame, repeats: str = "all") -> pd.DataFrame:
    """The units to remove among those of a shuffle partition (every occurrence of a hash in the
    same partition), in corpus order (part, row, position): with `repeats="all"` every occurrence
    after the first; with `"across_documents"` every occurrence outside the document (node) that
    holds the first."""
    df = df.sort_values(["group", "node", "unit"], kind="mergesort")
    groups, nodes = df["group"].to_numpy(), df["node"].to_numpy()
    first = np.ones(len(df), dtype=bool)
    first[1:] = groups[1:] != groups[:-1]  # the first occurrence of each hash
    later = ~first if repeats == "all" else nodes != nodes[first][np.cumsum(first) - 1]
    return pd.DataFrame({"node": nodes[later], "unit": df["unit"].to_numpy()[later],
                         "part": nodes[later] >> np.int64(32)}).astype(REMOVED_META.dtypes.to_dict())


def write_removals(df: pd.DataFrame, parts: tuple[str, ...], out_dir: str) -> pd.DataFrame:
    """Write the removed (row, unit) pairs of each input part present in `df`."""
    df = df.sort_values(["node", "unit"], kind="mergesort")
    for part_index, rows in df.groupby("part", sort=True):
        table = pa.table({"row": pa.array((rows["node"].to_numpy() & 0xFFFFFFFF).astype(np.int32)),
                          "unit": pa.array(rows["unit"].to_numpy(), pa.int32())})
        write_parquet(table, storage.join(out_dir, parts[int(part_index)]))
    return pd.DataFrame({"removed": [len(df)]})


def rewrite_part(part: str, in_dir: str, decisions_dir: str, out_dir: str, stage: str, splitter: str,
                 joiner: str, min_chars: int) -> dict:
    """Copy `part` without its removed units; reject documents left too short; the commit record
    (stats and files) last. On a worker."""
    table = read_part(storage.join(in_dir, part))
    path = storage.join(decisions_dir, part)
    removals: dict[int, set[int]] = {}
    if storage.exists(path):  # the decisions folder is complete (its done marker exists)
        for row, unit in zip(*(storage.read_table(path)[c].to_pylist() for c in ("row", "unit"))):
            removals.setdefault(row, set()).add(unit)
    texts, metadata = table["text"].to_pylist(), table["metadata"].to_pylist()
    rejected, units_removed = np.zeros(table.num_rows, dtype=bool), 0
    for row, removed in sorted(removals.items()):
        units = re.split(splitter, texts[row])
        texts[row] = joiner.join(u for i, u in enumerate(units) if i not in removed).strip()
        meta = json.loads(metadata[row]) if metadata[row] else {}
        meta[stage] = {"units": sum(1 for u in units if u.strip()), "units_removed": len(removed)}
        metadata[row] = metadata_to_json(meta)
        rejected[row] = len(texts[row]) < min_chars
        units_removed += len(removed)
    rewritten = replace_column(replace_column(table, "text", texts), "metadata", metadata)
    kept = rewritten.filter(pa.array(~rejected))
    dropped = with_reason(rewritten.filter(pa.array(rejected)), stage, f"{stage}.too_short_after_dedup")
    stats = part_stats(table, kept, dropped)
    if removals:
        stats.count("units_removed", units_removed)
        stats.count("documents_changed", len(removals))
    return commit_part(out_dir, part, kept, dropped, stats)


class UnitDedupParams(StageParams):
    omitted_at_default = ("repeats",)  # added later: old fingerprints hold
    normalization: Normalization = Normalization()
    min_chars_after_dedup: int = Field(
        100, ge=0, description="a document left with fewer characters after the removals is rejected")
    repeats: Literal["all", "across_documents"] = Field(
        "all", description="which repeats are removed: all (every occurrence after the first, within a document "
        "too) or across_documents (only those in later documents; the first one's document keeps its own repeats)")


class UnitDedup(GlobalStage):
    """The shared run of paragraph_dedup and line_dedup; subclasses name the unit."""

    Params = UnitDedupParams
    splitter: ClassVar[str]  # regex between units
    joiner: ClassVar[str]  # what joins the units that are left

    def run(self, ctx) -> GlobalResult:
        decisions = ctx.path("_work", "decisions")
        audit = decided_once(decisions, lambda folder: self._decide(ctx, folder))
        stats = ctx.map_parts(rewrite_part, "rewrite", decisions_dir=decisions, stage=self.name,
                              splitter=self.splitter, joiner=self.joiner, min_chars=self.params.min_chars_after_dedup)
        storage.rm(ctx.path("_work"))
        return GlobalResult(stats, ctx.input.parts, {"audit": audit})

    def _decide(self, ctx, out_dir: str) -> dict:
        frame = persisted(ctx.client, dd.from_map(
            unit_frame, batches(ctx.input.parts, PARTS_PER_TASK), in_dir=ctx.input.dir, splitter=self.splitter,
            norm=self.params.normalization, meta=UNIT_META, enforce_metadata=False))
        units = int(ctx.client.compute(frame.map_partitions(len).sum()).result())
        if not units:
            return {"units": 0, "units_removed": 0}
        n = n_partitions(units)
        removed = frame.shuffle(on="group", npartitions=n, shuffle_method=shuffle_method(n))
        removed = removed.map_partitions(later_occurrences, self.params.repeats, meta=REMOVED_META)
        removed = removed.shuffle(on="part", npartitions=n, shuffle_method=shuffle_method(n))
        written = removed.map_partitions(write_removals, ctx.input.parts, str(out_dir), meta=COUNT_META)
        return {"units": units, "units_removed": int(ctx.client.compute(written["removed"].sum()).result())}


@register
class ParagraphDedup(UnitDedup):
    """Remove paragraphs that occurred earlier in the corpus (first occurrence kept)."""

    name = "paragraph_dedup"
    splitter = r"\n{2,}"  # as filters.text.paragraphs
    joiner = "\n\n"


@register
class LineDedup(UnitDedup):
    """Remove lines that occurred earlier in the corpus (first occurrence kept)."""

    name = "line_dedup"
    splitter = r"\n"
    joiner = "\n"
