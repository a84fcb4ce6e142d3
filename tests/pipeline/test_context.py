"""The global-stage contract (pipeline/context.py): `ctx.map_parts` runs a part function once per
input part without a commit record and sums every part's committed stats; the shared helpers
write a part's rejected rows, kept rows and commit record (`io.commit_part`), build rejected rows
(`record.with_reason`) and count them (`stats.part_stats`)."""

from __future__ import annotations

import json

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipeline import storage
from pipeline.context import GlobalContext, StageOutput
from pipeline.io import commit, commit_part, commit_records, is_committed, write_parquet
from pipeline.record import DOCUMENT_SCHEMA, rejected_schema, with_reason
from pipeline.stats import part_stats


def drop_short(part: str, in_dir: str, out_dir: str, min_chars: int) -> dict:
    """A part function as a global stage writes one: documents shorter than `min_chars` rejected."""
    table = storage.read_table(storage.join(in_dir, part))
    short = pa.array([len(t) < min_chars for t in table["text"].to_pylist()])
    kept = table.filter(pc.invert(short))
    rejected = with_reason(table.filter(short), "drop_short", "drop_short.too_short")
    return commit_part(out_dir, part, kept, rejected, part_stats(table, kept, rejected))


def write_input(root, texts_per_part: list[list[str]]) -> StageOutput:
    names = []
    for i, texts in enumerate(texts_per_part):
        names.append(f"part-{i:05d}.parquet")
        rows = [{"id": f"{i}-{j}", "text": t, "source": "s"} for j, t in enumerate(texts)]
        write_parquet(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), root / names[-1])
    return StageOutput(str(root), "fp", tuple(names), DOCUMENT_SCHEMA)


def test_map_parts_writes_commits_and_sums_the_parts(client1, tmp_path):
    source = write_input(tmp_path / "in", [["ab", "abcdé"], ["abcd"], ["a", "b", "abcdef"]])
    ctx = GlobalContext(client1, source, str(tmp_path / "out"), 0, progress=False)
    stats = ctx.map_parts(drop_short, "drop", min_chars=4)
    assert (stats.docs_in, stats.docs_out, stats.docs_rejected) == (6, 3, 3)
    assert stats.bytes_in == 2 + 6 + 4 + 1 + 1 + 6 and stats.bytes_out == 6 + 4 + 6  # UTF-8: é is 2 bytes
    assert stats.rejected == {"drop_short.too_short": 3} and stats.rejected_bytes == {"drop_short.too_short": 4}
    rejected = pq.read_table(tmp_path / "out" / "rejected" / "part-00002.parquet")
    assert rejected.schema.names == rejected_schema(DOCUMENT_SCHEMA).names
    assert rejected.column("reason").to_pylist() == ["drop_short.too_short"] * 2
    assert not (tmp_path / "out" / "rejected" / "part-00001.parquet").exists()  # nothing rejected: no file
    record = json.loads((tmp_path / "out" / "_stats" / "part-00002.parquet.json").read_text())
    assert record["files"] == ["part-00002.parquet", "rejected/part-00002.parquet"]


def test_map_parts_skips_committed_parts_and_still_counts_them(client1, tmp_path):
    source = write_input(tmp_path / "in", [["ab", "abcde"], ["abcd"], ["a"]])
    out = tmp_path / "out"
    ctx = GlobalContext(client1, source, str(out), 0, progress=False)
    first = ctx.map_parts(drop_short, "drop", min_chars=4)
    # A killed run: part 1 was never committed. The rerun must redo it only.
    (out / "_stats" / "part-00001.parquet.json").unlink()
    (out / "part-00001.parquet").unlink()
    mtimes = {p: (out / p).stat().st_mtime_ns for p in ("part-00000.parquet", "part-00002.parquet")}
    again = ctx.map_parts(drop_short, "drop", min_chars=4)
    assert again == first and is_committed(str(out), "part-00001.parquet")
    assert {p: (out / p).stat().st_mtime_ns for p in mtimes} == mtimes  # committed parts were not rewritten


def test_commit_records_are_read_by_their_literal_names_on_any_file_system(tmp_path):
    """Commit records are fetched together (fsspec `cat_ranges`: concurrently on object
    storage), and a folder name holding glob characters is taken literally."""
    folder = str(tmp_path / "run[1]" / "02-stage")
    for i in (2, 0, 1):
        commit(folder, f"part-{i:05d}.parquet", {"rows": i}, [f"part-{i:05d}.parquet"])
    assert commit_records(folder) == {f"part-{i:05d}.parquet": {"rows": i, "files": [f"part-{i:05d}.parquet"]}
                                      for i in range(3)}
    memory = f"memory://records-{tmp_path.name}/stage"
    commit(memory, "part-00000.parquet", {"rows": 5}, ["part-00000.parquet"])
    assert commit_records(memory) == {"part-00000.parquet": {"rows": 5, "files": ["part-00000.parquet"]}}
    assert commit_records(str(tmp_path / "none")) == {}
    fsspec.filesystem("memory").rm(f"/records-{tmp_path.name}", recursive=True)
