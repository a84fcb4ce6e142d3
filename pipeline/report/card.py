"""`DATASET_CARD.md`: a Hugging Face-style dataset card filled from `stats.json`.

YAML front matter (pretty_name, language, size_categories, task_categories) and the usual
sections: summary, sources, processing steps with their parameters, sizes, composition,
languages, and known limitations derived from the stats (estimated token counts, mix
warnings, quarantined inputs, unverified LSH candidates). Fields the stats cannot know
(licences, personal data review, citation) are left for the owner to fill and say so.

    card = render_card(stats)
"""

from __future__ import annotations

import json

import yaml

from pipeline.report.plots import human

SIZE_CATEGORIES = ((1e3, "n<1K"), (1e4, "1K<n<10K"), (1e5, "10K<n<100K"), (1e6, "100K<n<1M"), (1e7, "1M<n<10M"),
                   (1e8, "10M<n<100M"), (1e9, "100M<n<1B"), (1e10, "1B<n<10B"))


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_CATEGORIES if n < limit), "n>10B")


def _after(stats: dict) -> dict | None:
    return stats["document_sets"].get(stats["roles"].get("after"))


def _front_matter(stats: dict) -> str:
    after = _after(stats) or {}
    languages = [lang for lang in after.get("categories", {}).get("language", {}) if lang not in ("(none)", "(other)")]
    meta = {"pretty_name": f"thresher curated dataset ({stats['input']['path']})",
            "language": languages or None, "size_categories": [size_category(stats["overview"]["documents_final"])],
            "task_categories": ["text-generation"], "license": "other",
            "tags": ["thresher", "pretraining"]}
    return "---\n" + yaml.safe_dump({k: v for k, v in meta.items() if v is not None}, sort_keys=False) + "---\n"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]


def _sizes(stats: dict) -> list[str]:
    rows = [[r["step"], r["dir"], f"{r['documents']:,}", "–" if r["bytes"] is None else f"{r['bytes']:,}",
             "–" if r["tokens"] is None else f"{r['tokens']:,} ({r['tokens_method']})",
             "–" if r["pct_documents"] is None else f"{r['pct_documents']:.3g}%"] for r in stats["funnel"]["rows"]]
    header = ["step", "folder", "documents", "bytes", "tokens", "% of raw documents"]
    return ["## Dataset size", ""] + _table(header, rows)


def _composition(stats: dict) -> list[str]:
    after = _after(stats)
    lines = ["## Composition", ""]
    if after:
        total = after["tokens"] or 1
        rows = [[d, f"{c['documents']:,}", f"{c['tokens']:,}", f"{100 * c['tokens'] / total:.1f}%"]
                for d, c in after["categories"]["domain"].items()]
        lines += _table(["domain", "documents", "tokens", "share of tokens"], rows) + [""]
    mix = stats.get("mixture")
    if mix:
        rows = [[d, f"{100 * e['target']:.1f}%", f"{100 * e['achieved']:.1f}%", e["epochs"]]
                for d, e in mix["domains"].items()]
        lines += ["Mixture by tokens (mix stage, tokens " + str(mix["token_count"]) + "):", ""]
        lines += _table(["domain", "target", "achieved", "epochs"], rows) + [""]
    return lines


def _languages(stats: dict) -> list[str]:
    after = _after(stats)
    if not after:
        return []
    total = after["documents"] or 1
    rows = [[lang, f"{c['documents']:,}", f"{100 * c['documents'] / total:.1f}%"]
            for lang, c in list(after["categories"]["language"].items())[:15]]
    return ["## Languages", ""] + _table(["language", "documents", "share"], rows) + [""]


def _processing(stats: dict) -> list[str]:
    if not stats["processing"]:
        return ["## Processing", "", f"Not produced by a thresher run; measured as {stats['input']['kind']}.", ""]
    lines = ["## Processing steps", ""]
    removed = {r["dir"]: r for r in stats["removals"]}
    for step in stats["processing"]:
        params = json.dumps(step["params"], sort_keys=True) if step["params"] else "defaults"
        gone = removed.get(step["dir"])
        note = f"; removed {gone['documents_rejected']:,} documents" if gone else ""
        lines.append(f"1. `{step['stage']}` ({step['kind']}), params `{params}`{note}")
    return lines + [""]


def _sources(stats: dict) -> list[str]:
    after = _after(stats)
    if not after:
        return []
    rows = [[s, f"{c['documents']:,}", f"{c['tokens']:,}"] for s, c in after["categories"]["source"].items()]
    # A source that curation removed entirely still gets its row (and its warning under limitations).
    for r in (stats.get("label_removals") or {}).get("source", []):
        if r["name"] not in after["categories"]["source"]:
            rows.append([r["name"], f"0 ({r['documents_in']:,} read, all removed)", "0"])
    return ["## Sources", ""] + _table(["source", "documents (final)", "tokens (final)"], rows) + [""]


def _limitations(stats: dict) -> list[str]:
    notes = list(stats["warnings"])
    if any(r["tokens_method"] == "estimated" for r in stats["funnel"]["rows"]):
        notes.append("Some token counts are estimated from bytes (see the report's notes), not counted.")
    if stats["selection"] is None and stats["input"]["kind"] == "run":
        notes.append("No quality selection (select stage) was applied.")
    if not stats["dedup"] and stats["input"]["kind"] == "run":
        notes.append("The documents were not deduplicated by this run.")
    after = _after(stats)
    if after and after["documents"] and after["distinct_texts_estimate"] < 0.99 * after["documents"]:
        repeats = after["documents"] - after["distinct_texts_estimate"]
        notes.append(f"About {repeats:,} final documents repeat another's "
                     "exact text (HyperLogLog++ estimate; mix-stage epochs repeat documents on purpose).")
    notes.append("Language and quality labels come from automatic classifiers and carry their errors.")
    return ["## Known limitations", ""] + [f"- {n}" for n in notes] + [""]


def render_card(stats: dict) -> str:
    o = stats["overview"]
    summary = (f"{o['documents_final']:,} documents"
               + (f" and {human(o['tokens_final'])} tokens ({o['tokens_final_method']})" if o["tokens_final"] else "")
               + f", curated by thresher from {o['documents_raw']:,} raw records"
               + (f" ({o['pct_documents_kept']:.3g}% kept)" if o["pct_documents_kept"] is not None else "") + ".")
    lines = [_front_matter(stats), f"# Dataset card: {stats['input']['path']}", "", "## Dataset summary", "",
             summary, ""]
    if stats["shards"]:
        sh = stats["shards"]
        lines += [f"Training shards: {sh['tokens']:,} tokens in {len(sh['shards'])} Megatron shards ({sh['dtype']}), "
                  f"tokenizer sha256 `{sh['tokenizer'].get('sha256')}`, vocabulary {sh['vocab_size']:,}.", ""]
    lines += _sources(stats) + _processing(stats) + _sizes(stats) + [""] + _composition(stats) + _languages(stats)
    lines += _limitations(stats)
    lines += ["## Licensing and personal information", "",
              "thresher does not record licences. Check the licence of every source above before use or "
              "redistribution, and review the data for personal information (the `pii` stage only masks e-mail "
              "and IP addresses).", ""]
    lines += ["## Report", "", "Full statistics: `stats.json` (schema thresher.stats v1) and `report.html` beside "
              "this card.", ""]
    return "\n".join(lines)
