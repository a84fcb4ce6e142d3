"""A lineage (`pipeline.trace.lineage`) as text for a person: the origin, one line per stage,
then where the tokens are.

    print(render(trace_document(RunLayout.open("out/demo"), "crawl/crawl-00000.warc.gz@7296")))
"""

from __future__ import annotations

from typing import Any


def render(trace: dict[str, Any]) -> str:
    lines = [f"document {trace['id']}", *_query(trace.get("query")), *_origin(trace["origin"]), "stages:"]
    width = max(len(e["stage"]) for e in trace["stages"])
    for entry in trace["stages"]:
        lines.append(f"  {entry['stage']:<{width}}  {_decision(entry)}")
        lines += [f"  {'':<{width}}    {line}" for line in _explain(entry)]
    lines += _tokens(trace.get("tokens"))
    lines.append(f"fate: {trace['fate']}")
    return "\n".join(lines)


def _query(query: dict | None) -> list[str]:
    if not query:
        return []
    at = f"token {query['token']} is in " if "token" in query else ""
    return [f"asked: {at}{query['shard']} sequence {query['sequence']} = {query['id']} "
            f"(tokens {query['token_offset']}..{query['token_offset'] + query['tokens'] - 1})"]


def _origin(origin: dict) -> list[str]:
    where = origin["file"]
    if "record_offset" in origin:
        where += f"  WARC record at byte {origin['record_offset']}"
        if origin.get("record_id"):
            where += f"  {origin['record_id']}"
    elif "line" in origin:
        where += f"  line {origin['line']}"
    elif "row" in origin:
        where += f"  row {origin['row']}"
    lines = [f"origin: {where}", f"  source {origin['source']} ({origin.get('format') or 'unknown format'})"]
    if origin.get("url"):
        lines.append(f"  url {origin['url']}")
    if origin.get("crawl_date"):
        lines.append(f"  date {origin['crawl_date']}")
    return lines


def _decision(entry: dict) -> str:
    if entry["decision"] == "rejected":
        return f"rejected: {entry['reason']}" + (f"  ({entry['file']})" if entry.get("file") else "")
    if entry.get("inferred"):
        return f"kept (fused into {entry['fused_into']}, which wrote the documents: not in this stage's rejected/)"
    if entry["decision"] == "unknown":
        return f"unknown: {entry.get('note', '')}"
    return "kept" + (f"  ({entry['file']})" if entry.get("file") else "")


def _explain(entry: dict) -> list[str]:
    lines = []
    if entry.get("scores"):
        lines.append("  ".join(f"{k}={_value(v)}" for k, v in entry["scores"].items()))
    details = entry.get("details", {})
    if "duplicate_of" in details:
        lines.append(f"duplicate of {details['duplicate_of']} (cluster of {details.get('cluster_size')})")
    if "representative_of" in details:
        members = details["representative_of"]
        shown = ", ".join(members[:3]) + (f", ... ({len(members)} in all)" if len(members) > 3 else "")
        lines.append(f"representative of a cluster of {details['cluster_size']}; removed: {shown}")
    if "select" in details:
        cut = details["select"]
        lines.append(f"select on {cut['column']}: {_value(cut['value'])} vs threshold {_value(cut['threshold'])}")
    if entry.get("copies"):
        copies = ", ".join(f"epoch {c['epoch']} {c['id']}" for c in entry["copies"])
        lines.append(f"{len(entry['copies'])} cop{'ies' if len(entry['copies']) > 1 else 'y'}: {copies}")
    for dropped in entry.get("rejected_copies", []):
        lines.append(f"copy {dropped['id']} rejected: {dropped['reason']}")
    return lines


def _tokens(tokens: dict | None) -> list[str]:
    if tokens is None:
        return []
    lines = [f"tokens ({tokens['stage']}):"]
    for s in tokens["sequences"]:
        kind = " (validation)" if s["valid"] else ""
        lines.append(f"  epoch {s['epoch']}: {s['shard']} sequence {s['sequence']}{kind}, "
                     f"tokens {s['token_offset']}..{s['token_offset'] + s['tokens'] - 1} ({s['tokens']} with EOS)")
    for r in tokens["rejected"]:
        lines.append(f"  epoch {r['epoch']}: rejected: {r['reason']}  ({r['id']})")
    if tokens.get("note"):
        lines.append(f"  note: {tokens['note']}")
    return lines


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
