"""A document's lineage through a finished run, from the run's outputs alone.

`trace_document` follows one id through every stage folder in order:

- origin (from the read stage's row and the run's `config.yaml`): the input file, the WARC
  record's byte offset, record id and crawl date, or the JSONL/text line or Parquet row (the
  reader put it in the id, `source/relpath:line`), and the URL;
- per stage, its decision: `rejected` with the reason (that stage's `rejected/` row),
  `kept` (a row in its kept parts), or, for a map stage that ran fused and wrote no kept
  documents (`materialized: false`), `kept` with `inferred: true`: not in its `rejected/`,
  and present in the next stage that wrote its documents. With the decision come the scores
  the row carries that changed (language, language_score, quality_score, domain, domain_score),
  the dedup cluster (a removed duplicate names its representative; a kept document lists the
  duplicates it represents, from the stage's `rejected/`), the select threshold, and the mix
  stage's copies and epochs (`<id>#epoch<k>`);
- where its tokens are: per copy, the shard, sequence index, token offset and length (the
  shard's `.docs.parquet` sidecar), or the tokenize stage's reason for dropping it.

`trace_sequence` resolves a shard's sequence (or a token offset) to its document first;
`trace_text` finds documents of the final stage that contain a snippet.

    from pipeline.trace.lineage import trace_document
    from pipeline.trace.lookup import RunLayout
    trace_document(RunLayout.open("out/demo"), "crawl/crawl-00000.warc.gz@7296")
"""

from __future__ import annotations

import fnmatch
import json
import re
from typing import Any

import numpy as np

from pipeline import storage
from pipeline.parts import view_of
from pipeline.readers import static_prefix
from pipeline.trace.lookup import (
    SIDECAR_SUFFIX,
    RunLayout,
    StageInfo,
    duplicates_of,
    find_rows,
    find_text,
)

SCORES = ("language", "language_score", "domain", "domain_score", "quality_score")
COLUMNS = ["id", "url", "source", *SCORES, "metadata", "stage", "reason"]
_COPY = re.compile(r"#epoch\d+$")


def original_id(doc_id: str) -> str:
    """The id a mix copy (`<id>#epoch<k>`) was made from."""
    return _COPY.sub("", doc_id)


def trace_document(layout: RunLayout, doc_id: str) -> dict[str, Any]:
    """The lineage of `doc_id` (or of the document a mix copy id was made from)."""
    doc_id = original_id(doc_id)
    read = _rows(layout.stages[0], doc_id, False) or _rows(layout.stages[0], doc_id, False, kept=False)
    if not read:
        raise ValueError(f"--doc: no document {doc_id!r} in {layout.stages[0].path} "
                         "(ids look like source/file.warc.gz@OFFSET or source/file.jsonl:LINE)")
    trace: dict[str, Any] = {"id": doc_id, "output": layout.path, "origin": origin(read[0], layout.config),
                             "stages": [], "tokens": None}
    previous: dict[str, Any] = {}
    copies = False
    for stage in layout.stages:
        if stage.shard_manifest() is not None:
            trace["tokens"] = _tokens(stage, doc_id)
            trace["stages"].append(_tokenize_entry(stage, trace["tokens"]))
            break
        copies = copies or stage.name == "mix"
        entry, previous = _decide(stage, doc_id, copies, previous)
        trace["stages"].append(entry)
        if entry["decision"] in ("rejected", "unknown"):
            break
    _settle_inferred(trace["stages"])
    trace["fate"] = _fate(trace)
    return trace


def _rows(stage: StageInfo, doc_id: str, copies: bool, kept: bool = True,
          rejected: list[dict] | None = None) -> list[dict]:
    """The document's rows in the stage's kept parts (or, `kept` false, its `rejected/`). For
    views (pipeline/parts.py), a row of their source parts that the stage did not reject
    (`rejected`: those rows, when the caller has them already)."""
    if not kept:
        return find_rows(stage.rejected(), doc_id, COLUMNS, copies).to_pylist()
    if not stage.manifest.get("views"):
        return find_rows(stage.parts, doc_id, COLUMNS, copies).to_pylist()
    shown = {}
    for part in stage.parts:
        view = view_of(part)
        shown[storage.join(storage.parent(stage.path), view["source"]) if view else part] = part
    if rejected is None:
        rejected = _rows(stage, doc_id, copies, kept=False)
    dropped = {r["id"] for r in rejected}
    rows = find_rows(list(shown), doc_id, COLUMNS, copies).to_pylist()
    return [{**row, "file": shown.get(row["file"], row["file"])} for row in rows if row["id"] not in dropped]


def _decide(stage: StageInfo, doc_id: str, copies: bool, previous: dict) -> tuple[dict, dict]:
    """One stage's decision on the document (and its copies after mix); the row's scores."""
    entry: dict[str, Any] = {"stage": stage.dir, "name": stage.name}
    rejected = _rows(stage, doc_id, copies, kept=False)
    kept = _rows(stage, doc_id, copies, rejected=rejected) if stage.materialized else []
    if rejected and not kept:
        row = rejected[0]
        entry.update(decision="rejected", reason=row["reason"], file=_rel(stage, row["file"]))
        entry["details"] = _details(stage, row, doc_id)
    elif kept:
        row = kept[0]
        entry.update(decision="kept", file=_rel(stage, row["file"]))
        entry["details"] = _details(stage, row, doc_id)
    elif not stage.materialized:
        row = None
        entry.update(decision="kept", inferred=True, fused_into=stage.manifest.get("fused_into"))
        entry["details"] = {}
    else:  # the outputs disagree with themselves (a stage that lost rows): say so, go no further
        row = None
        entry.update(decision="unknown", note="neither in this stage's parts nor in its rejected/", details={})
    if stage.name == "mix" and kept:
        entry["copies"] = [_copy(r) for r in kept]
    if rejected and kept:  # after mix: this stage dropped some copies and kept others
        entry["rejected_copies"] = [{"id": r["id"], "reason": r["reason"]} for r in rejected]
    if row is not None:
        scores = {k: row.get(k) for k in SCORES if row.get(k) is not None and row.get(k) != previous.get(k)}
        if scores:
            entry["scores"] = scores
        previous = {**previous, **{k: row.get(k) for k in SCORES}}
    return entry, previous


def _details(stage: StageInfo, row: dict, doc_id: str) -> dict[str, Any]:
    """What explains the decision: the dedup cluster, the select cut."""
    meta = _metadata(row)
    details: dict[str, Any] = {}
    if "duplicate_of" in meta and row.get("reason"):
        details.update(duplicate_of=meta["duplicate_of"], cluster_size=meta.get("duplicate_cluster_size"))
    elif row.get("reason") is None and _removes_duplicates(stage):
        members = duplicates_of(stage.rejected(), doc_id)
        if members:
            details.update(representative_of=members, cluster_size=len(members) + 1)
    selection = stage.manifest.get("selection")
    if selection and selection.get("column"):
        details["select"] = {"column": selection["column"], "value": row.get(selection["column"]),
                             "threshold": selection.get("threshold")}
    return details


def _removes_duplicates(stage: StageInfo) -> bool:
    return any("duplicate" in reason for reason in stage.manifest.get("stats", {}).get("rejected", {}))


def _copy(row: dict) -> dict[str, Any]:
    mix = _metadata(row).get("mix", {})
    return {"id": row["id"], "epoch": mix.get("epoch", 0), "rank": mix.get("rank")}


def _settle_inferred(stages: list[dict]) -> None:
    """A fused stage's `kept` holds only if the document reached the next stage that wrote
    its documents (or rejected it later); otherwise the outputs disagree: say so."""
    for i, entry in enumerate(stages):
        if entry.get("inferred") and not any(not later.get("inferred") for later in stages[i + 1:]):
            entry.update(decision="unknown", note="not rejected here, and no later stage holds it")


def _tokens(stage: StageInfo, doc_id: str) -> dict[str, Any]:
    """Where the document's copies went in a tokenize stage: shards (from the sidecars) or rejected."""
    sidecars = [storage.join(stage.path, p + SIDECAR_SUFFIX) for p in shard_prefixes(stage.shard_manifest())]
    present = [p for p in sidecars if storage.isfile(p)]
    result: dict[str, Any] = {"stage": stage.dir, "sequences": [], "rejected": []}
    if len(present) < len(sidecars):
        result["note"] = "some shards have no .docs.parquet sidecar (written before thresher recorded them)"
    columns = ["sequence", "id", "epoch", "token_offset", "tokens"]
    for row in find_rows(present, doc_id, columns, column="original_id").to_pylist():
        shard = _rel(stage, row["file"]).removesuffix(SIDECAR_SUFFIX)
        result["sequences"].append({"shard": shard, "sequence": row["sequence"], "id": row["id"],
                                    "epoch": row["epoch"], "token_offset": row["token_offset"],
                                    "tokens": row["tokens"], "valid": storage.basename(shard).startswith("valid-")})
    for row in _rows(stage, doc_id, True, kept=False):
        result["rejected"].append({"id": row["id"], "reason": row["reason"], "epoch": _copy(row)["epoch"]})
    result["sequences"].sort(key=lambda s: (s["epoch"], s["shard"], s["sequence"]))
    result["rejected"].sort(key=lambda r: r["epoch"])
    return result


def shard_prefixes(manifest: dict) -> list[str]:
    """Every shard of a shard manifest, training and validation, as `DOMAIN/shard-NNNNN`."""
    entries = [[*d["shards"], *([d["valid"]] if d.get("valid") else [])] for d in manifest["domains"].values()]
    return [s["prefix"] for shards in entries for s in shards]


def _tokenize_entry(stage: StageInfo, tokens: dict) -> dict[str, Any]:
    kept, dropped = tokens["sequences"], tokens["rejected"]
    decision = "kept" if kept else ("rejected" if dropped else "unknown")
    entry = {"stage": stage.dir, "name": stage.name, "decision": decision, "details": {}}
    if not kept and dropped:
        entry["reason"] = dropped[0]["reason"]
    return entry


def _fate(trace: dict) -> str:
    last = trace["stages"][-1]
    if last["decision"] == "rejected":
        return f"rejected at {last['stage']}: {last['reason']}"
    if last["decision"] == "unknown":
        return f"lost at {last['stage']}: {last['note']}"
    if trace["tokens"] and trace["tokens"]["sequences"]:
        n = len(trace["tokens"]["sequences"])
        return f"in the token shards ({n} sequence{'s' if n > 1 else ''})"
    return f"kept through {last['stage']}"


def origin(row: dict, config: dict) -> dict[str, Any]:
    """Where a document came from: its input file and the place in it, URL, crawl date."""
    source, doc_id = row.get("source") or "", row["id"]
    rest = doc_id[len(source) + 1:] if doc_id.startswith(f"{source}/") else doc_id
    spec = _input_for(config, source, rest)
    fmt = spec.get("format")
    meta = _metadata(row)
    out: dict[str, Any] = {"source": source, "format": fmt, "url": row.get("url")}
    relpath = rest
    if fmt == "warc" and "@" in rest:
        relpath, _, offset = rest.rpartition("@")
        out.update(record_offset=int(meta.get("warc_offset", offset)), record_id=meta.get("warc_record_id"))
    elif fmt in ("jsonl", "text") and ":" in rest:
        relpath, _, line = rest.rpartition(":")
        out["line"] = int(line)
    elif fmt == "parquet" and ":" in rest:
        relpath, _, index = rest.rpartition(":")
        out["row"] = int(index)
    prefix = static_prefix(spec.get("path", ""))
    out["file"] = storage.join(prefix, relpath) if prefix else relpath
    out["crawl_date"] = meta.get("warc_date") or meta.get("date")
    return out


def _input_for(config: dict, source: str, relpath: str) -> dict:
    """The config's input that read `relpath` for `source` ({} when the config is missing)."""
    inputs = [spec for spec in config.get("inputs", []) if spec.get("source") == source]
    for spec in inputs:
        if len(inputs) == 1 or fnmatch.fnmatch(static_prefix(spec["path"]) + relpath, spec["path"]):
            return spec
    return {}


def _metadata(row: dict) -> dict:
    try:
        return json.loads(row.get("metadata") or "{}")
    except json.JSONDecodeError:
        return {}


def _rel(stage: StageInfo, path: str) -> str:
    root = stage.path.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


# -- the other two ways in --------------------------------------------------------------------

def trace_sequence(layout: RunLayout, shard: str, index: int | None = None, token: int | None = None) -> dict:
    """The lineage of the document in sequence `index` (or holding token `token`) of `shard`
    (`DOMAIN/shard-NNNNN`), with the sequence's place in `query`."""
    stage = layout.tokenize()
    if stage is None:
        raise ValueError(f"--shard: {layout.path} has no token shards (no finished tokenize stage)")
    sidecar = storage.join(stage.path, shard.removesuffix(".bin").removesuffix(".idx") + SIDECAR_SUFFIX)
    if not storage.isfile(sidecar):
        raise ValueError(_no_sidecar(stage, shard))
    file = storage.parquet_file(sidecar)
    n = file.metadata.num_rows
    if token is not None:
        index = _sequence_of_token(file, shard, token)
    if index is None or not 0 <= index < n:
        raise ValueError(f"--index: {shard} holds sequences 0..{n - 1}, not {index}")
    row = _row(file, index)
    trace = trace_document(layout, row["original_id"])
    trace["query"] = {"shard": shard, "sequence": index, "id": row["id"], "epoch": row["epoch"],
                      "token_offset": row["token_offset"], "tokens": row["tokens"],
                      **({"token": token} if token is not None else {})}
    return trace


def _sequence_of_token(file, shard: str, token: int) -> int:
    """The sequence of the sidecar `file` whose tokens hold offset `token` (its offsets only)."""
    table = file.read(columns=["token_offset", "tokens"])
    offsets = table.column("token_offset").to_numpy()
    total = int(offsets[-1] + table.column("tokens")[-1].as_py()) if len(offsets) else 0
    if not 0 <= token < total:
        raise ValueError(f"--token: {shard} holds tokens 0..{total - 1}, not {token}")
    return int(np.searchsorted(offsets, token, side="right") - 1)


def _row(file, index: int) -> dict:
    """Row `index` of a Parquet file, reading only the row group that holds it."""
    for group in range(file.metadata.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if index < rows:
            return file.read_row_group(group).slice(index, 1).to_pylist()[0]
        index -= rows
    raise IndexError(index)


def _no_sidecar(stage: StageInfo, shard: str) -> str:
    manifest = stage.shard_manifest() or {}
    known = [s["prefix"] for d in manifest.get("domains", {}).values() for s in d["shards"]]
    if shard in known:
        return (f"--shard: {shard} in {stage.path} has no {SIDECAR_SUFFIX} sidecar (written before thresher "
                "recorded one); rerun the tokenize stage to trace its sequences")
    more = " ..." if len(known) > 5 else ""
    return f"--shard: no shard {shard!r} in {stage.path}; shards: {', '.join(known[:5])}{more}"


def trace_text(layout: RunLayout, snippet: str, limit: int = 5) -> list[dict]:
    """The lineage of each document of the final stage whose text contains `snippet` (at most
    `limit` documents; mix copies count once)."""
    if not snippet:
        raise ValueError("--text: give a non-empty snippet")
    final = layout.final()
    parts = final.parts
    if final.name == "mix":  # later epochs hold copies of epoch 0's texts: scan those once
        parts = [p for p in parts if storage.basename(p).startswith("part-e000-")] or parts
    ids = find_text(parts, snippet, limit * 8, views=bool(final.manifest.get("views")))
    found = list(dict.fromkeys(original_id(i) for i in ids))[:limit]
    if not found:
        raise ValueError(f"--text: no document of {final.path} contains {snippet!r}")
    return [trace_document(layout, doc_id) for doc_id in found]
