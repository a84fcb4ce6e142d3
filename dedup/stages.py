"""MinHash LSH near-duplicate removal as four named stages sharing one config.

    stages:
      - minhash_signatures: {ngram: 5, num_perm: 112, bands: 14, rows: 8}   # or threshold: 0.8
      - lsh_buckets: {}
      - duplicate_clusters: {representative: [quality_score, length, id], verify_threshold: null}
      - remove_duplicates: {}

How they share the config: only `minhash_signatures` takes the MinHash parameters (n-gram
size and kind, normalisation, num_perm, bands x rows or a threshold, seed). It writes them,
resolved, into its `_manifest.json` as a `minhash` block, and each later stage reads that
block from its input's manifest (its input is always the previous stage's declared output),
adds the artefact it produced and writes the block on. So the four stages cannot disagree,
and changing a MinHash parameter changes the first stage's fingerprint and reruns all four.

Documents flow through the first three stages unchanged (their parts are hard links to the
input parts, a copy where links are impossible); each stage adds a side artefact beside them:
`signatures/` (per part: node, id, ranking columns, shingle count, signature), `edges/`
(unique candidate pairs) and `clusters/` (per part: the removed rows and the id they
duplicate). `remove_duplicates` writes the parts without the removed rows and puts those in
`rejected/` with reason `remove_duplicates.near_duplicate`. The audit (S-curve,
false-positive estimate, cluster sizes, removals per source/domain) is in the manifests of
`duplicate_clusters` and `remove_duplicates`.
"""

from __future__ import annotations

import os
import shutil

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from dedup import audit as audits
from dedup.components import connected_components
from dedup.decide import (
    DEFAULT_RANKING,
    GROUP_META,
    RankKey,
    apply_all,
    decide,
    decided_once,
    rank_frame,
)
from dedup.index import session
from dedup.index_minhash import (
    band_frame,
    index_docinfo,
    minhash_index,
    snapshot_of,
    stage_part,
    verify_index_edges,
)
from dedup.jaccard import sample_edges, sample_similarities, verify_edges
from dedup.lsh import EDGE_META, KEY_META, write_edges
from dedup.minhash import MinHashParams, document_shingle_hashes, get_hasher
from pipeline import storage
from pipeline.aggregate import n_partitions, persisted
from pipeline.context import GlobalResult
from pipeline.io import commit, read_json, write_parquet
from pipeline.parts import part_rows, pass_view, read_part
from pipeline.stage import GlobalStage, StageParams, register
from pipeline.stats import StageStats

MANIFEST = "_manifest.json"
DOCINFO_META = GROUP_META.drop(columns=["group"])


# -- plumbing shared by the four stages -----------------------------------------------------

def minhash_block(ctx, needs: str) -> dict:
    """The `minhash` block of the input stage's manifest; it must name artefact `needs`."""
    block = read_json(ctx.input.path(MANIFEST)).get("minhash", {})
    if needs not in block:
        raise ValueError(f"stage input {ctx.input.name!r} has no MinHash {needs}: the MinHash stages run "
                         "in order minhash_signatures -> lsh_buckets -> duplicate_clusters -> remove_duplicates")
    return block


def artefact(ctx, block: dict, name: str) -> str:
    return storage.join(storage.parent(ctx.input.dir), block[name])


def link_parts(ctx) -> tuple[str, ...]:
    """Pass the input documents through unchanged: hard links (a copy across devices, a
    server-side copy on an object store; a view's spec for a view, pipeline/parts.py);
    returns them, for the stage's manifest to commit."""
    for part in ctx.input.parts:
        source, target = ctx.input.path(part), ctx.path(part)
        if pass_view(source, ctx.dir, part):  # a view of an earlier stage's part: its spec
            continue
        if not storage.is_local(target):
            storage.copy(source, target)
            continue
        if os.path.exists(target):
            continue
        try:
            os.link(source, target)
        except OSError:
            tmp = os.path.join(ctx.dir, f".{part}.tmp-{os.getpid()}")
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
    return ctx.input.parts


def pass_through_stats(ctx) -> StageStats:
    """Every input document in and out (counts only: the stage keeps them all)."""
    previous = StageStats.from_dict(read_json(ctx.input.path(MANIFEST))["stats"])
    rows = sum(part_rows(p) for p in ctx.input.paths())
    return StageStats(docs_in=rows, docs_out=rows, bytes_in=previous.bytes_out, bytes_out=previous.bytes_out)


def fresh(directory: str) -> str:
    storage.rm(directory)
    storage.makedirs(directory)
    return directory


# -- minhash_signatures ---------------------------------------------------------------------

# Texts shingled at a time: the word-span arrays take ~15 bytes per byte of text, so a whole
# 128 MiB part at once took a 2.5 GB worker (bench/scale.py).
SHINGLE_CHUNK_BYTES = 16 << 20


def part_signatures(texts: pa.ChunkedArray, params: MinHashParams) -> tuple[np.ndarray, np.ndarray]:
    """Signatures and shingle counts of `texts`, ~SHINGLE_CHUNK_BYTES of text at a time (a
    document's signature depends on its text only, so the chunks change no bit)."""
    hasher = get_hasher(params.num_perm, params.seed, params.scheme)
    ends = np.cumsum(pc.fill_null(pc.binary_length(texts), 0).to_numpy(zero_copy_only=False))
    signatures, counts, start = [np.zeros((0, params.num_perm), np.uint32)], [np.zeros(0, np.int64)], 0
    while start < len(texts):
        done = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + SHINGLE_CHUNK_BYTES, side="right")))
        hashes, n = document_shingle_hashes(texts.slice(start, stop - start).combine_chunks(), params)
        signatures.append(hasher.signatures(hashes, n))
        counts.append(n)
        start = stop
    return np.concatenate(signatures), np.concatenate(counts)


def signature_part(item: tuple[int, str], in_dir: str, out_dir: str, params: MinHashParams) -> dict:
    """Write the signatures of one part, then its commit record (stats and the file: the part
    is done). On a worker."""
    part_index, part = item
    table = read_part(storage.join(in_dir, part))
    signatures, counts = part_signatures(table["text"], params)
    info = pa.Table.from_pandas(rank_frame(table, part_index).astype(DOCINFO_META.dtypes.to_dict()),
                                preserve_index=False)
    info = info.append_column("shingles", pa.array(counts, pa.int32()))
    flat = pa.array(signatures.reshape(-1), pa.uint32())
    info = info.append_column("signature", pa.FixedSizeListArray.from_arrays(flat, params.num_perm))
    write_parquet(info, storage.join(out_dir, "signatures", part))
    n, text_bytes = table.num_rows, int(pc.sum(pc.binary_length(table["text"])).as_py() or 0)
    stats = StageStats(docs_in=n, docs_out=n, bytes_in=text_bytes, bytes_out=text_bytes)
    stats.count("shingles", int(counts.sum()))
    stats.count("documents_without_shingles", int((counts == 0).sum()))
    result = stats.to_dict()
    commit(out_dir, part, result, [f"signatures/{part}"])
    return result


@register
class MinHashSignatures(GlobalStage):
    """MinHash signatures of every document (carries the MinHash config for the next stages)."""

    name = "minhash_signatures"
    passes_through = True
    Params = MinHashParams

    def check(self) -> None:
        if (index := minhash_index(self.params)) is not None:
            index.preflight(output="")

    def run(self, ctx) -> GlobalResult:
        stats = ctx.map_parts(signature_part, "signatures", indexed=True, params=self.params)
        bands, rows = self.params.lsh_shape()
        block = {"params": self.params.model_dump(mode="json"), "bands": bands, "rows": rows,
                 "documents": stats.docs_in, "signatures": f"{ctx.name}/signatures"}
        return GlobalResult(stats, link_parts(ctx),
                            {"minhash": block, "lsh": audits.lsh_audit(bands, rows, self.params.threshold)})


# -- lsh_buckets ----------------------------------------------------------------------------

@register
class LshBuckets(GlobalStage):
    """Shuffle LSH band keys on Dask; documents sharing a bucket become candidate pairs."""

    name = "lsh_buckets"
    passes_through = True
    follows = ("minhash_signatures",)

    def run(self, ctx) -> GlobalResult:
        block = minhash_block(ctx, "signatures")
        out = fresh(ctx.path("edges"))
        signature_dir = artefact(ctx, block, "signatures")
        paths = [storage.join(signature_dir, p) for p in ctx.input.parts]
        params = MinHashParams.model_validate(block["params"])
        with session(ctx, minhash_index(params), ctx.path("_work"), keep_lock=True) as index:
            snap = index.snapshot() if index is not None else None
            indexed = (dd.from_map(band_frame, snap.batches(), bands=block["bands"], meta=KEY_META,
                                   enforce_metadata=False)
                       if snap is not None and snap.parts and block["documents"] else None)
            documents = block["documents"] + (snap.entries if snap is not None else 0)
            n_edges, edge_files = write_edges(ctx.client, paths, block["bands"], block["rows"], documents, out,
                                              indexed)
        stats = pass_through_stats(ctx)
        if n_edges:  # no pairs: no counter (as before the result object; manifests stay the same)
            stats.count("candidate_pairs", n_edges)
        block = {**block, "edges": f"{ctx.name}/edges", "edge_count": n_edges, "edge_files": edge_files}
        if snap is not None:  # the index as this run reads it (index_minhash.snapshot_of)
            block.update(index_folder=snap.folder, index_commits=snap.commits, index_without=snap.without,
                          index_entries=snap.entries)
        return GlobalResult(stats, link_parts(ctx), {"minhash": block})


# -- duplicate_clusters ---------------------------------------------------------------------

def read_edges(paths: list[str]) -> pd.DataFrame:
    frames = [storage.read_table(p).to_pandas() for p in paths]
    return pd.concat(frames, ignore_index=True).astype("int64") if frames else EDGE_META.copy()


def read_docinfo(paths: list[str]) -> pd.DataFrame:
    columns = list(DOCINFO_META.columns)
    frames = [storage.read_table(p, columns=columns).to_pandas() for p in paths]
    return pd.concat(frames, ignore_index=True).astype(DOCINFO_META.dtypes.to_dict())


def chunks(paths: list[str], size: int) -> list[list[str]]:
    return [[str(p) for p in paths[i:i + size]] for i in range(0, len(paths), size)]


@register
class DuplicateClusters(GlobalStage):
    """Connected components of candidate pairs; one representative kept per cluster; audit."""

    name = "duplicate_clusters"
    passes_through = True
    follows = ("lsh_buckets",)

    class Params(StageParams):
        representative: tuple[RankKey, ...] = Field(
            DEFAULT_RANKING, min_length=1,
            description="keep order: quality_score (highest), length (longest), id (smallest), order (first read)")
        verify_threshold: float | None = Field(
            None, gt=0, le=1, description="drop candidate pairs whose true Jaccard is below this (slower)")
        max_local_edges: int = Field(
            20_000_000, ge=0, description="up to this many edges, components in one worker process; above, on Dask")
        audit_pairs: int = Field(500, ge=0, description="candidate pairs sampled to estimate false positives")

    def run(self, ctx) -> GlobalResult:
        block = minhash_block(ctx, "edges")
        index = minhash_index(MinHashParams.model_validate(block["params"]))
        with session(ctx, index, ctx.path("_work"), keep_lock=True):
            audit = decided_once(ctx.path("clusters"), lambda folder: self._cluster(ctx, block, folder))
        stats = pass_through_stats(ctx)
        stats.count("documents_to_remove", audit["documents_removed"])
        return GlobalResult(stats, link_parts(ctx), {"minhash": {**block, "clusters": f"{ctx.name}/clusters"},
                                                     "audit": audit})

    def _cluster(self, ctx, block: dict, out: str) -> dict:
        params = MinHashParams.model_validate(block["params"])
        lsh = audits.lsh_audit(block["bands"], block["rows"], params.threshold)
        edge_dir = artefact(ctx, block, "edges")
        edge_paths = [storage.join(edge_dir, name) for name in block["edge_files"]]
        if not block["edge_count"]:
            none = audits.false_positive_audit(pd.DataFrame(), lsh["jaccard_threshold"], 0)
            return {"lsh": lsh, "false_positives": none, **decide_nothing()}
        edges = dd.from_map(read_edges, chunks(edge_paths, 8), meta=EDGE_META, enforce_metadata=False)
        n_edges, signature_dir = block["edge_count"], artefact(ctx, block, "signatures")
        # Pairs inside this run (v >= 0; v is the smaller node) and pairs with an indexed document.
        own = edges[edges["v"] >= 0] if "index_commits" in block else edges
        own_count = count(ctx, own) if own is not edges else n_edges
        audit = {"lsh": lsh, "false_positives": self._sample_audit(ctx, own, own_count, params, lsh, signature_dir)}
        if self.params.verify_threshold is not None:
            edges = persisted(ctx.client, self._verify(ctx, block, edges, own, params, signature_dir, n_edges))
            kept = count(ctx, edges)
            audit["verification"] = {"threshold": self.params.verify_threshold, "pairs_checked": n_edges,
                                     "pairs_dropped": n_edges - kept}
            n_edges = kept
        audit.update(self._decide(ctx, edges, n_edges, signature_dir, out, block))
        return audit

    def _verify(self, ctx, block: dict, edges, own, params, signature_dir: str, n_edges: int):
        threshold, n = self.params.verify_threshold, n_partitions(n_edges)
        verified = verify_edges(own, ctx.input.parts, ctx.input.dir, params, threshold, n)
        if (snap := snapshot_of(block)) is None:
            return verified
        indexed = verify_index_edges(edges[edges["v"] < 0], ctx.input.parts, signature_dir, snap, threshold, n)
        return dd.concat([verified, indexed])

    def _sample_audit(self, ctx, edges, n_edges: int, params, lsh: dict, signature_dir: str) -> dict:
        if not self.params.audit_pairs:
            return audits.false_positive_audit(pd.DataFrame(), lsh["jaccard_threshold"], n_edges)
        sample = sample_edges(ctx.client, edges, self.params.audit_pairs)
        sims = sample_similarities(ctx, sample, ctx.input.dir, signature_dir, params)
        return audits.false_positive_audit(sims, lsh["jaccard_threshold"], n_edges)

    def _decide(self, ctx, edges, n_edges: int, signature_dir: str, out: str, block: dict) -> dict:
        if not n_edges:  # verification may have dropped every pair
            return decide_nothing()
        labels = connected_components(ctx.client, edges, n_edges, self.params.max_local_edges)
        paths = [storage.join(signature_dir, p) for p in ctx.input.parts]
        docinfo = dd.from_map(read_docinfo, chunks(paths, 16), meta=DOCINFO_META, enforce_metadata=False)
        if (snap := snapshot_of(block)) is not None:
            indexed = index_docinfo(labels, snap, n_partitions(n_edges))
            docinfo = dd.concat([docinfo, indexed])
        frame = labels.merge(docinfo, on="node", how="inner", npartitions=n_partitions(2 * n_edges))
        frame = frame.rename(columns={"label": "group"})[list(GROUP_META.columns)]
        return decide(ctx.client, frame, self.params.representative, ctx.input.parts, out, 2 * n_edges)


def count(ctx, frame) -> int:
    return int(ctx.client.compute(frame.map_partitions(len).sum()).result())


def decide_nothing() -> dict:
    return {"groups": 0, "documents_in_groups": 0, "documents_removed": 0, "group_size_histogram": {},
            "removed_by_source": {}, "removed_by_domain": {}}


# -- remove_duplicates ----------------------------------------------------------------------

@register
class RemoveDuplicates(GlobalStage):
    """Drop every document that duplicate_clusters marked as a near-duplicate of a kept one."""

    name = "remove_duplicates"
    follows = ("duplicate_clusters",)

    def run(self, ctx) -> GlobalResult:
        block = minhash_block(ctx, "clusters")
        decisions, work, extra = artefact(ctx, block, "clusters"), ctx.path("_work"), {}
        with session(ctx, minhash_index(MinHashParams.model_validate(block["params"])), work) as index:
            stats = apply_all(ctx, decisions, self.name, f"{self.name}.near_duplicate")
            if index is not None:
                staged = storage.join(work, "index")
                decided_once(staged, lambda folder: self._stage_entries(ctx, block, decisions, folder, index.run))
                extra = {"index": index.commit(staged)}
        storage.rm(work)
        audit = read_json(ctx.input.path(MANIFEST)).get("audit", {})
        return GlobalResult(stats, ctx.input.parts, {"minhash": block, "audit": audit, **extra})

    def _stage_entries(self, ctx, block: dict, decisions: str, folder: str, run: str) -> dict:
        """The index entries of the documents this run keeps, one file per input part."""
        written = ctx.map(stage_part, list(ctx.input.parts), "index entries",
                          signature_dir=artefact(ctx, block, "signatures"), decisions_dir=decisions, out_dir=folder,
                          run=run, lsh_shape=(block["bands"], block["rows"]))
        return {"entries": sum(written)}
