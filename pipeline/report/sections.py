"""The sections of `stats.json` that come from a run's stage manifests (pure functions).

Counts are copied from the manifests, never recomputed, so the report agrees with the
run's receipt: documents and bytes kept per stage are `stats.docs_out` / `stats.bytes_out`,
removals are `stats.rejected` / `stats.rejected_bytes`, the mixture is the mix stage's
`mixture`, the cut is the select stage's `selection`, the dedup audits are the dedup
stages' `audit` / `lsh`, and the shard summary is the tokenize stage's `manifest.json`.
Tokens come from the measured documents of each stage (counted with the run's tokenizer, or
estimated from bytes: `collect.TokenCounter`) or from the shards. Removals per source, domain
and language come from the stages' `rejected/` rows, counted on Dask (`collect.rejected_labels`).
"""

from __future__ import annotations

from collections import Counter

from pipeline.report import checks
from pipeline.report.docstats import NONE
from pipeline.report.sources import StageDir

DEDUP_STAGES = ("url_dedup", "exact_dedup", "minhash_signatures", "lsh_buckets", "duplicate_clusters",
                "remove_duplicates", "paragraph_dedup", "line_dedup", "decontaminate")


def _pct(part: float | None, whole: float | None) -> float | None:
    return round(100.0 * part / whole, 4) if part is not None and whole else None


def _stats(stage: StageDir) -> dict:
    return stage.manifest.get("stats", {})


def funnel(stages: list[StageDir], measured: dict[str, dict], counted: bool, shards: dict | None) -> dict:
    """Documents, bytes and tokens after every stage, with % of the raw records (documents,
    bytes) and of the first stage with a token count (raw records include the read stage's
    rejects, whose tokens are not counted)."""
    read = stages[0]
    raw = _stats(read)
    rows = [_row("raw records", read.dir_name, raw.get("docs_in", 0), raw.get("bytes_in", 0), None, 0)]
    for stage in stages:
        s = _stats(stage)
        tokens = None
        if stage.dir_name in measured:
            tokens = (measured[stage.dir_name]["tokens"], "counted" if counted else "estimated")
        elif stage.name == "tokenize":
            counters = s.get("counters", {})
            tokens = (counters.get("tokens_train", 0) + counters.get("tokens_valid", 0), "shards")
        rows.append(_row(stage.name, stage.dir_name, s.get("docs_out", 0), s.get("bytes_out", 0), tokens,
                         s.get("docs_rejected", 0)))
    if shards:
        rows.append(_row("training shards", shards["dir"], shards["documents"], None, (shards["tokens"], "shards"), 0))
    first_tokens = next((r["tokens"] for r in rows if r["tokens"] is not None), None)
    for r in rows:
        r.update(pct_documents=_pct(r["documents"], rows[0]["documents"]), pct_bytes=_pct(r["bytes"], rows[0]["bytes"]),
                 pct_tokens=_pct(r["tokens"], first_tokens))
    return {"rows": rows, "raw_bytes_are_pages": read.has_raw_pages()}


def _row(step: str, directory: str, documents: int, n_bytes: int | None, tokens, removed: int) -> dict:
    value, method = tokens if tokens is not None else (None, None)
    return {"step": step, "dir": directory, "documents": documents, "bytes": n_bytes, "tokens": value,
            "tokens_method": method, "documents_removed": removed}


def removals(stages: list[StageDir], examples: dict[str, dict]) -> list[dict]:
    """Per stage that removed anything: its reasons (most documents first) with examples."""
    out = []
    for stage in stages:
        s = _stats(stage)
        if not s.get("docs_rejected") and not s.get("quarantine"):
            continue
        found = examples.get(stage.dir_name) or {}
        reasons = [{"reason": r, "documents": n, "bytes": s.get("rejected_bytes", {}).get(r, 0),
                    "pct_of_input": _pct(n, s.get("docs_in")),
                    "examples": [{"id": e[1], "url": e[2], "snippet": e[3], "details": e[4]} for e in found.get(r, [])]}
                   for r, n in sorted(s.get("rejected", {}).items(), key=lambda kv: (-kv[1], kv[0]))]
        out.append({"stage": stage.name, "dir": stage.dir_name, "documents_in": s.get("docs_in", 0),
                    "documents_rejected": s.get("docs_rejected", 0), "bytes_rejected": s.get("bytes_rejected", 0),
                    "reasons": reasons, "quarantine": s.get("quarantine", [])})
    return out


def curated_end(stages: list[StageDir], measured: dict[str, dict]) -> StageDir | None:
    """The end of curation: the last measured stage before the first `mix` (which samples and
    repeats documents on purpose), else the last measured stage."""
    mix = next((i for i, s in enumerate(stages) if s.name == "mix"), len(stages))
    return next((s for s in reversed(stages[:mix]) if s.dir_name in measured), None)


def label_removals(stages: list[StageDir], measured: dict[str, dict], rejected: dict[str, Counter]) -> dict | None:
    """Per source and per domain, the documents curation kept and removed, with the top
    reasons (`checks.label_removals`), from reading to `curated_end`."""
    end = curated_end(stages, measured)
    if end is None:
        return None
    counts = [rejected.get(s.dir_name) or Counter() for s in stages[:stages.index(end) + 1]]
    kept = measured[end.dir_name]["categories"]
    return {"dir": end.dir_name, **{c: checks.label_removals(c, kept.get(c, {}), counts) for c in ("source", "domain")}}


def languages(stages: list[StageDir], measured: dict[str, dict], rejected: dict[str, Counter],
              after: str | None) -> dict | None:
    """Languages before and after: `before` is the documents entering the stage that identified
    them (the first whose documents carry a language), by the language it found (the ones it
    kept plus the ones it removed); `after`, the final documents'."""
    found = next((s for s in stages if set(measured.get(s.dir_name, {}).get("categories", {}).get("language", {}))
                  - {NONE}), None)
    if found is None:
        return None
    before = Counter({k: v["documents"] for k, v in measured[found.dir_name]["categories"]["language"].items()})
    for (column, value, _), n in (rejected.get(found.dir_name) or Counter()).items():
        if column == "language":
            before[value] += n
    position = stages.index(found)
    final = measured.get(after, {}).get("categories", {}).get("language", {})
    return {"dir": found.dir_name, "input_dir": stages[position - 1].dir_name if position else None,
            "before": dict(sorted(before.items(), key=lambda kv: (-kv[1], kv[0]))),
            "after_dir": after, "after": {k: v["documents"] for k, v in final.items()}}


def _find(stages: list[StageDir], name: str) -> StageDir | None:
    return next((s for s in reversed(stages) if s.name == name), None)


def mixture(stages: list[StageDir]) -> dict | None:
    mix = _find(stages, "mix")
    if mix is None or "mixture" not in mix.manifest:
        return None
    return {"dir": mix.dir_name, **mix.manifest["mixture"]}


def selection(stages: list[StageDir]) -> dict | None:
    """The select stage's chosen cut, and which measured set holds the scores it cut."""
    select = _find(stages, "select")
    if select is None:
        return None
    chosen = select.manifest.get("selection", {})
    s = _stats(select)
    position = stages.index(select)
    return {"dir": select.dir_name, "input_dir": stages[position - 1].dir_name if position else None,
            "column": chosen.get("column", select.manifest["params"].get("column")),
            "threshold": chosen.get("threshold"), "threshold_tie_id": chosen.get("threshold_tie_id"),
            "keep_top": chosen.get("keep_top"), "alpha": chosen.get("alpha"), "scored": chosen.get("scored"),
            "documents_in": s.get("docs_in", 0), "documents_kept": s.get("docs_out", 0),
            "rejected": s.get("rejected", {})}


def dedup(stages: list[StageDir]) -> list[dict]:
    """The dedup stages' audits as they wrote them (cluster sizes, removals per source and
    domain, the LSH S-curve and false-positive estimate)."""
    out = []
    for stage in stages:
        m = stage.manifest
        if stage.name not in DEDUP_STAGES and "audit" not in m and "lsh" not in m:
            continue
        s = _stats(stage)
        out.append({"stage": stage.name, "dir": stage.dir_name, "documents_in": s.get("docs_in", 0),
                    "documents_removed": s.get("docs_rejected", 0),
                    "pct_removed": _pct(s.get("docs_rejected", 0), s.get("docs_in")),
                    "params": m.get("params", {}), "lsh": m.get("lsh"),
                    "audit": m.get("audit", m.get("decontamination"))})  # decontaminate's report is its audit
    return out


def shard_summary(manifest: dict, directory: str, summary: dict | None, lengths: dict | None) -> dict:
    """The token shards (from `manifest.json`, SHARDS.md) and the tokenize stage's summary."""
    domains, shards = {}, []
    for name, entry in manifest.get("domains", {}).items():
        valid = entry.get("valid") or {}
        domains[name] = {"documents": entry["documents"], "tokens": entry["tokens"], "weight": entry["weight"],
                         "shards": len(entry["shards"]), "valid_documents": valid.get("documents", 0),
                         "valid_tokens": valid.get("tokens", 0)}
        shards += [{"domain": name, **s} for s in entry["shards"]]
    total = sum(d["tokens"] for d in domains.values())
    for d in domains.values():
        d["achieved"] = round(d["tokens"] / total, 6) if total else 0.0
    return {"dir": directory, "format": manifest.get("format"), "format_version": manifest.get("format_version"),
            "dtype": manifest.get("dtype"), "vocab_size": manifest.get("vocab_size"),
            "eos_id": manifest.get("eos_id"), "bos_id": manifest.get("bos_id"),
            "tokenizer": manifest.get("tokenizer", {}), "documents": sum(d["documents"] for d in domains.values()),
            "tokens": total, "valid_tokens": sum(d["valid_tokens"] for d in domains.values()),
            "domains": domains, "shards": shards,
            "mixture_correction": (summary or {}).get("mixture_correction") or {},
            "sequence_lengths": lengths}


def plan_for(tokens: int) -> dict | None:
    """Compute-optimal model size and training FLOPs for `tokens` (training.plan when
    present; else its two rules: Chinchilla D = 20·N, C = 6·N·D)."""
    if not tokens:
        return None
    try:
        from training.plan import plan
    except ImportError:
        params = tokens / 20.0
        return {"tokens": tokens, "params": params, "flops": 6 * params * tokens, "tokens_per_param": 20.0,
                "pf_days": 6 * params * tokens / (1e15 * 86_400), "source": "local: D = 20 N, C = 6 N D"}
    p = plan(tokens=float(tokens))
    keys = ("tokens", "params", "flops", "tokens_per_param", "pf_days", "gpu_hours", "train_gb_fp32",
            "train_gb_mixed", "store_gb_bf16", "mfu")
    return {**{k: p[k] for k in keys if k in p}, "source": "training.plan"}


def timings(stages: list[StageDir]) -> list[dict]:
    return [{"stage": s.name, "dir": s.dir_name, "kind": s.manifest.get("kind"),
             "wall_seconds": s.manifest.get("wall_seconds", 0.0), "worker_seconds": _stats(s).get("seconds", 0.0)}
            for s in stages]


def processing(stages: list[StageDir]) -> list[dict]:
    return [{"stage": s.name, "dir": s.dir_name, "kind": s.manifest.get("kind"), "params": s.manifest.get("params", {}),
             "fingerprint": s.manifest.get("fingerprint")} for s in stages]


def warnings(stages: list[StageDir], planned: int | None, mix: dict | None, dedups: list[dict]) -> list[str]:
    """What a reader should look at first."""
    out = []
    if planned is not None and planned > len(stages) - 1:
        out.append(f"the run is incomplete: {len(stages) - 1} of {planned} configured stages finished")
    for stage in stages:
        s = _stats(stage)
        if s.get("quarantine"):
            out.append(f"{stage.dir_name}: {len(s['quarantine'])} input file(s) quarantined (unreadable or truncated)")
        errors = {r: n for r, n in s.get("rejected", {}).items() if r.endswith(".error")}
        if errors:
            out.append(f"{stage.dir_name}: {sum(errors.values())} document(s) raised errors: {errors}")
    out += [f"mix: {w}" for w in (mix or {}).get("warnings", [])]
    for i, d in enumerate(dedups):
        audit = d.get("audit") or {}
        if audit in [later.get("audit") for later in dedups[i + 1:]]:
            continue  # remove_duplicates repeats duplicate_clusters' audit: warn once
        fp = (audit.get("false_positives") or {}).get("false_positive_rate")
        if fp is not None and fp > 0.05 and not audit.get("verification"):
            out.append(f"{d['dir']}: an estimated {fp:.0%} of LSH candidate pairs are below the Jaccard threshold "
                       "and were not verified (duplicate_clusters.verify_threshold)")
    return out
