"""Assemble `stats.json` for a run's output folder, a documents folder or a token-shard folder.

Measurements that read documents (document sets, rejected examples and rejected documents
per label, shard lengths) are collected on Dask in one go (`collect.py`); everything else is
copied from the manifests (`sections.py`). In a run, the documents of every stage whose
output is text are measured (a part shared by hard link, as dedup stages do, is read once);
the plots compare three:

- `before`: the first stage whose documents are text (after extraction when the inputs are
  pages; the read stage itself for JSONL/Parquet inputs);
- `after`: the last stage that wrote documents (the input of `tokenize`, when it ran);
- `scored`: the input of the `select` stage (the score distribution its cut was made on).

Languages are compared at the stage that identified them instead (`sections.languages`: its
input is `before`, as the language it found), since `before` precedes language id. The rules
of `checks.py` add kept/removed per source and domain and flag uninformative classifier scores.

    stats = build_stats(detect("out/demo"), client)
"""

from __future__ import annotations

import os

import yaml

from pipeline import __version__, storage
from pipeline.io import read_json
from pipeline.report import checks, sections
from pipeline.report.collect import TokenCounter, compute_all, document_stats, examples_of, labels_of, lengths_of
from pipeline.report.schema import ESTIMATES, SCHEMA_NAME, SCHEMA_VERSION, validate
from pipeline.report.sources import SHARD_MANIFEST, StageDir, Target

SAMPLES_PER_DOMAIN = 2


def build_stats(target: Target, client, text_field: str = "text", tokenizer: str | None = None) -> dict:
    build = {"run": _run, "documents": _documents, "shards": _shards}[target.kind]
    body = build(target, client, text_field, tokenizer)
    stats = {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "thresher_version": __version__,
             "input": {"path": str(target.path), "kind": target.kind}, **body, "estimates": ESTIMATES}
    return validate(stats)


def token_counter(tokenizer: str | None, shard_dir: str | None) -> TokenCounter:
    """Count tokens with `tokenizer` if given, else with the run's own tokenizer (named by
    its shard manifest), else estimate them from bytes."""
    if tokenizer:
        if not storage.isfile(tokenizer):
            raise ValueError(f"--tokenizer: {tokenizer!r} does not exist")
        return TokenCounter(storage.absolute(tokenizer))
    if shard_dir is None:
        return TokenCounter(None)
    entry = read_json(storage.join(shard_dir, SHARD_MANIFEST)).get("tokenizer", {})
    path = entry.get("path", "")
    path = path if not storage.is_local(path) or os.path.isabs(path) else storage.join(shard_dir, path)
    if not path or not storage.isfile(path):  # the output folder was moved
        path = storage.join(shard_dir, storage.basename(path))
    return TokenCounter(path, entry.get("sha256", "")) if storage.isfile(path) else TokenCounter(None)


def choose_sets(stages: list[StageDir]) -> dict[str, StageDir]:
    """before / after / scored: the stages whose documents the plots compare."""
    text = [s for s in stages if s.manifest.get("parts") and not s.has_raw_pages()]
    if not text:
        return {}
    roles = {"before": text[0], "after": text[-1]}
    select = next((i for i, s in enumerate(stages) if s.name == "select"), None)
    if select and stages[select - 1] in text:
        roles["scored"] = stages[select - 1]
    return roles


def _shard_prefixes(shard_dir: str, manifest: dict) -> list[str]:
    return [storage.join(shard_dir, s["prefix"]) for d in manifest.get("domains", {}).values() for s in d["shards"]]


def _run(target: Target, client, text_field: str, tokenizer: str | None) -> dict:
    stages = target.stages
    tokenize = next((s for s in reversed(stages) if storage.isfile(s.path(SHARD_MANIFEST))), None)
    shard_manifest = read_json(tokenize.path(SHARD_MANIFEST)) if tokenize else None
    counter = token_counter(tokenizer, tokenize.dir if tokenize else None)
    roles = choose_sets(stages)
    text = [s for s in stages if s.manifest.get("parts") and not s.has_raw_pages()]
    docs = document_stats({s.dir_name: s.files() for s in text}, "text", counter, SAMPLES_PER_DOMAIN)
    rejected = {s.dir_name: s.rejected_files() for s in stages}
    lazy: dict = {("docs", d): v for d, v in docs.items()}
    lazy.update({("rejected", d): examples_of(files) for d, files in rejected.items()})
    lazy.update({("labels", d): labels_of(files) for d, files in rejected.items()})
    if shard_manifest:
        lazy["lengths"] = lengths_of(_shard_prefixes(tokenize.dir, shard_manifest))
    results = compute_all(client, lazy)
    measured = {d: results[("docs", d)].to_dict() for d in docs}
    shards = None
    if shard_manifest:
        lengths = results["lengths"]
        shards = sections.shard_summary(shard_manifest, tokenize.dir_name, tokenize.manifest,
                                        lengths.to_dict(lengths.digest.n_values) if lengths else None)
    examples = {d: results[("rejected", d)] for d in rejected}
    labels = {d: results[("labels", d)] for d in rejected}
    mix, dedups, selection = sections.mixture(stages), sections.dedup(stages), sections.selection(stages)
    config_text, planned = _config(target.path)
    funnel = sections.funnel(stages, measured, counter.model is not None, shards)
    names = {role: s.dir_name for role, s in roles.items()}
    by_label = sections.label_removals(stages, measured, labels)
    score_checks = checks.score_checks(measured)
    return {
        "overview": _overview(funnel, measured, names, shards),
        "warnings": checks.removal_warnings(by_label) + checks.score_warnings(score_checks, selection)
        + sections.warnings(stages, planned, mix, dedups),
        "tokens_method": counter.method,
        "funnel": funnel,
        "removals": sections.removals(stages, examples),
        "label_removals": by_label,
        "roles": names,
        "document_sets": measured,
        "languages": sections.languages(stages, measured, labels, names.get("after")),
        "score_checks": score_checks,
        "mixture": mix,
        "selection": selection,
        "dedup": dedups,
        "shards": shards,
        "plan": _plan(shards, measured.get(names.get("after")), counter),
        "config": {"yaml": config_text, "config_hash": _config_hash(target.path)},
        "processing": sections.processing(stages),
        "timings": sections.timings(stages),
    }


def _documents(target: Target, client, text_field: str, tokenizer: str | None) -> dict:
    counter = token_counter(tokenizer, None)
    name = target.name
    results = compute_all(client, document_stats({name: target.files}, text_field, counter, SAMPLES_PER_DOMAIN))
    measured = {name: results[name].to_dict()}
    doc = measured[name]
    row = {"step": "documents", "dir": name, "documents": doc["documents"], "bytes": doc["bytes"],
           "tokens": doc["tokens"], "tokens_method": "counted" if counter.model else "estimated",
           "documents_removed": 0, "pct_documents": 100.0 if doc["documents"] else None,
           "pct_bytes": 100.0 if doc["bytes"] else None, "pct_tokens": 100.0 if doc["tokens"] else None}
    funnel = {"rows": [row], "raw_bytes_are_pages": False}
    roles = {"before": name, "after": name}
    score_checks = checks.score_checks(measured)
    warnings = checks.score_warnings(score_checks, None)
    if doc["unreadable_records"]:
        warnings.append(f"{doc['unreadable_records']} record(s) could not be read (not JSON, or no text field)")
    return {"overview": _overview(funnel, measured, roles, None), "warnings": warnings, "score_checks": score_checks,
            "tokens_method": counter.method, "funnel": funnel, "removals": [], "label_removals": None, "roles": roles,
            "document_sets": measured, "languages": None, "mixture": None, "selection": None, "dedup": [],
            "shards": None, "plan": _plan(None, doc, counter), "config": None, "processing": [], "timings": []}


def _shards(target: Target, client, text_field: str, tokenizer: str | None) -> dict:
    manifest = read_json(storage.join(target.path, SHARD_MANIFEST))
    lengths = compute_all(client, {"lengths": lengths_of(_shard_prefixes(target.path, manifest))})["lengths"]
    run_manifest = storage.join(target.path, "_manifest.json")
    summary = read_json(run_manifest) if storage.isfile(run_manifest) else None
    shards = sections.shard_summary(manifest, target.name, summary,
                                    lengths.to_dict(lengths.digest.n_values) if lengths else None)
    row = {"step": "training shards", "dir": target.name, "documents": shards["documents"], "bytes": None,
           "tokens": shards["tokens"], "tokens_method": "shards", "documents_removed": 0,
           "pct_documents": 100.0 if shards["documents"] else None, "pct_bytes": None,
           "pct_tokens": 100.0 if shards["tokens"] else None}
    funnel = {"rows": [row], "raw_bytes_are_pages": False}
    return {"overview": _overview(funnel, {}, {}, shards), "warnings": [], "tokens_method": "shards",
            "funnel": funnel, "removals": [], "label_removals": None, "roles": {}, "document_sets": {},
            "languages": None, "score_checks": [], "mixture": None, "selection": None,
            "dedup": [], "shards": shards, "plan": _plan(shards, None, None), "config": None, "processing": [],
            "timings": []}


def _overview(funnel: dict, measured: dict, roles: dict, shards: dict | None) -> dict:
    rows = funnel["rows"]
    first, last = rows[0], rows[-1]
    after = measured.get(roles.get("after"))
    categories = (after or {}).get("categories", {})
    return {"documents_raw": first["documents"], "documents_final": last["documents"],
            "pct_documents_kept": last["pct_documents"], "bytes_raw": first["bytes"],
            "tokens_final": last["tokens"], "tokens_final_method": last["tokens_method"],
            "pct_tokens_kept": last["pct_tokens"],
            "training_tokens": shards["tokens"] if shards else None,
            "domains": sorted(categories.get("domain") or (shards or {}).get("domains", {})),
            "languages": list(categories.get("language", {}))[:10],
            "sources": sorted(categories.get("source", {}))}


def _plan(shards: dict | None, after: dict | None, counter: TokenCounter | None) -> dict | None:
    if shards:
        plan = sections.plan_for(shards["tokens"])
        return {**plan, "tokens_from": "training shards"} if plan else None
    if after:
        plan = sections.plan_for(after["tokens"])
        how = "counted" if counter and counter.model else "estimated"
        return {**plan, "tokens_from": f"documents ({how} tokens)"} if plan else None
    return None


def _config(path: str) -> tuple[str | None, int | None]:
    file = storage.join(path, "config.yaml")
    if not storage.isfile(file):
        return None, None
    text = storage.read_bytes(file).decode()
    try:
        stages = (yaml.safe_load(text) or {}).get("stages") or []
    except yaml.YAMLError:
        return text, None
    return text, len(stages)


def _config_hash(path: str) -> str | None:
    file = storage.join(path, "stats.json")
    return read_json(file).get("config_hash") if storage.isfile(file) else None
