"""`thresher head OUTPUT --diff STAGE [STAGE2] [--id ID]`: one document before and after a stage.

With one STAGE the document is compared between the stage before it and STAGE's output; with two,
between the first and the second. Text that changed is shown as a unified diff (the PII, line-
and paragraph-dedup stages rewrite text); a raw page that extraction turned into text is shown
as both, the page first; other columns that changed (language, scores, domain, metadata) are
listed as `old -> new`. A document missing from the later stage is looked up in the `rejected/`
of the stages in between, which name the stage that dropped it and why. Without `--id`, the
document is the first (in the later stage's order) whose text differs between parts of the same
name, which map stages and the dedup stages keep. `--json` prints the comparison as one object.

    thresher head out/demo --diff extract          # a page before and after extraction
    thresher head out/web --diff pii --id web/part-003.jsonl:17
"""

from __future__ import annotations

import difflib
import json

import pyarrow.compute as pc

from pipeline import storage
from pipeline.head import open_target, pick_stage, raw_text
from pipeline.parts import part_schema, read_part, view_of
from pipeline.report.sources import StageDir

RAW_SHOWN_CHARS = 3000  # a raw page is shown up to here on a terminal (--json has all of it)


def show_diff(path: str, keys: list[str], doc_id: str | None, as_json: bool) -> int:
    stages = open_target(path)
    if not stages or len(stages) < 2:
        raise ValueError(f"--diff: {path!r} is not a run's output folder with two finished stages")
    before, after = stage_pair(stages, keys)
    doc_id = doc_id if doc_id is not None else first_changed(before, after)
    old = find_row([f.path for f in before.files()], doc_id)
    if old is None:
        raise ValueError(f"--id: no document {doc_id!r} in {before.dir_name}; list some with "
                         f"`thresher head {path} --stage {before.index} --columns id`")
    new = find_row([f.path for f in after.files()], doc_id)
    dropped = None if new is not None else find_dropped(stages, before, after, doc_id)
    result = compare(doc_id, before, after, old, new, dropped)
    print(json.dumps(result, ensure_ascii=False, default=str) if as_json else render(result))
    return 0


def stage_pair(stages: list[StageDir], keys: list[str]) -> tuple[StageDir, StageDir]:
    """(before, after) from `--diff STAGE` (the nearest stage before it that wrote its documents,
    it) or `--diff A B`."""
    if len(keys) > 2:
        raise ValueError(f"--diff: give one stage or two, not {len(keys)}")
    picked = [pick_stage(stages, key, "--diff") for key in keys]
    if len(picked) == 1:
        position = stages.index(picked[0])
        if position == 0:
            raise ValueError(f"--diff: nothing comes before {picked[0].dir_name}; give a later stage")
        # The nearest earlier stage that wrote its documents: a fused run of stages is diffed whole.
        written = [s for s in stages[:position] if s.materialized]
        picked.insert(0, written[-1] if written else stages[position - 1])
    before, after = picked
    if before.index >= after.index:
        raise ValueError(f"--diff: {before.dir_name} does not come before {after.dir_name}; give the earlier first")
    for stage in (before, after):
        if not stage.materialized:
            raise ValueError(f"--diff: {stage.unwritten()}; or diff across the fused stages from the stage before them")
    return before, after


def find_row(paths: list[str], doc_id: str) -> dict | None:
    """The first row with id `doc_id` in the Parquet files `paths`, reading only its row group."""
    for path in paths:
        if view_of(path) is not None:  # a view of an earlier stage's part (pipeline/parts.py)
            table = read_part(path)
            position = pc.index(table.column("id"), doc_id).as_py()
            if position >= 0:
                return table.slice(position, 1).to_pylist()[0]
            continue
        parquet = storage.parquet_file(path)
        ids = parquet.read(columns=["id"]).column("id")
        position = pc.index(ids, doc_id).as_py()
        if position < 0:
            continue
        for group in range(parquet.num_row_groups):
            rows = parquet.metadata.row_group(group).num_rows
            if position < rows:
                return parquet.read_row_group(group).slice(position, 1).to_pylist()[0]
            position -= rows
    return None


def first_changed(before: StageDir, after: StageDir) -> str:
    """The id of the first document of `before` that `after` dropped or changed (its text or
    another column), compared part by part where both stages have a part of the same name."""
    same = set(after.manifest.get("parts", []))
    for part in before.manifest.get("parts", []):
        if part not in same:
            continue
        old, new = _rows(before.path(part)), _rows(after.path(part))
        for doc_id, row in old.items():
            if doc_id not in new or any(new[doc_id].get(c, row[c]) != row[c] for c in row):
                return doc_id
    raise ValueError(f"--diff: no document was changed or dropped between {before.dir_name} and {after.dir_name} "
                     "(comparing parts of the same name); give --id ID")


def _rows(path: str) -> dict[str, dict]:
    """id -> row of one part, without raw pages (a page before extraction has no text)."""
    names = [n for n in part_schema(path).names if n != "raw"]
    return {row["id"]: row for row in read_part(path, columns=names).to_pylist()}


def find_dropped(stages: list[StageDir], before: StageDir, after: StageDir, doc_id: str) -> dict | None:
    """Which stage after `before` (up to `after`) rejected `doc_id`, and why."""
    for stage in stages:
        if before.index < stage.index <= after.index and (row := find_row(stage.rejected_files(), doc_id)):
            return {"folder": stage.dir_name, "reason": row.get("reason")}
    return None


def compare(doc_id: str, before: StageDir, after: StageDir, old: dict, new: dict | None, dropped: dict | None) -> dict:
    """The comparison as one JSON-ready dict."""
    result = {"id": doc_id, "stages": [before.dir_name, after.dir_name], "before": _shown(before, old),
              "after": _shown(after, new) if new else None, "dropped": dropped, "changed": {}, "diff": None}
    if new is None:
        return result
    result["changed"] = changed_columns(old, new)
    if old.get("text") is not None and old.get("text") != new.get("text"):
        lines = difflib.unified_diff((old["text"] or "").splitlines(), (new.get("text") or "").splitlines(),
                                     fromfile=f"{before.dir_name}/{doc_id}", tofile=f"{after.dir_name}/{doc_id}",
                                     lineterm="")
        result["diff"] = "\n".join(lines)
    return result


def changed_columns(old: dict, new: dict) -> dict[str, list]:
    """{column: [old, new]} for the columns besides id, text and raw that differ; metadata
    (a JSON object) key by key, as `metadata.<key>`."""
    changed = {c: [old.get(c), new.get(c)] for c in new
               if c not in ("id", "text", "raw", "metadata") and c in old and old.get(c) != new.get(c)}
    before, after = (json.loads(row.get("metadata") or "{}") for row in (old, new))
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            changed[f"metadata.{key}"] = [before.get(key), after.get(key)]
    return changed


def _shown(stage: StageDir, row: dict) -> dict:
    out = {"folder": stage.dir_name, **row}
    if isinstance(out.get("raw"), bytes):
        out["raw"] = raw_text(out["raw"])
    return out


def render(result: dict) -> str:
    """The comparison for a terminal."""
    old, new = result["before"], result["after"]
    lines = [f"document {result['id']}  {old.get('url') or ''}".rstrip(), f"before: {old['folder']}  {_size(old)}"]
    if new is None:
        lines.append(f"after:  not in {result['stages'][1]}: " + _why_missing(result["dropped"]))
        return "\n".join(lines)
    lines.append(f"after:  {new['folder']}  {_size(new)}")
    lines += [f"changed: {c}: {_value(a)} -> {_value(b)}" for c, (a, b) in result["changed"].items()]
    if old.get("text") is None and old.get("raw") is not None:
        raw = old["raw"]
        cut = f" (first {RAW_SHOWN_CHARS} of {len(raw)} chars; --json for all)" if len(raw) > RAW_SHOWN_CHARS else ""
        lines += [f"── {old['folder']}: raw page{cut}", raw[:RAW_SHOWN_CHARS], f"── {new['folder']}: text",
                  new.get("text") or ""]
    elif result["diff"]:
        lines.append(result["diff"])
    else:
        lines.append("text unchanged")
    return "\n".join(lines)


def _why_missing(dropped: dict | None) -> str:
    if dropped:
        return f"dropped by {dropped['folder']} ({dropped['reason']})"
    return "no rejected/ in between names it (a global stage such as mix may leave documents out)"


def _size(row: dict) -> str:
    if row.get("text") is not None:
        return f"text, {len(row['text'])} chars"
    return f"raw page, {len(row['raw'])} chars" if row.get("raw") is not None else "no text"


def _value(value) -> str:
    return "-" if value is None else str(value)
