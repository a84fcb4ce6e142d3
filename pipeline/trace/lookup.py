"""Finding a document's rows in a finished run's Parquet files, without recomputing anything.

A run's layout (`RunLayout`) comes from its files alone: the stage folders `NN-name/` in
order, each with its `_manifest.json` (kept parts, `materialized`, the stage's own report),
its `rejected/` parts, and, for a tokenize stage, the shard `manifest.json` whose shards each
have a `.docs.parquet` sidecar (sequence -> document).

Why an id lookup is cheap: ids are built from the origin (`source/relpath@offset`,
`source/relpath:line`), the readers emit a file's documents in order, and every stage keeps
its input's row order and part names (the map stages, dedup, select) or copies them per epoch
(mix), so a part's ids share one or a few `source/relpath` prefixes. Parts are written in row
groups of 4,096 rows with min/max statistics, so a filter on `id` pushed down to
`pyarrow.dataset` skips every part (and most row groups) whose id range cannot hold the id,
reading only the footers and the `id` column of the few row groups that can. A mix copy's id
is `<id>#epoch<k>`: one range filter `id in [ID, ID#epoch\\U0010ffff]` finds the document and
all its copies at once, the same way.

    layout = RunLayout.open("out/demo")
    rows = find_rows(layout.stage("13-remove_duplicates").parts, "crawl/a.warc.gz@0", ["id", "url"])
"""

from __future__ import annotations

import dataclasses
import json
import re

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds

from pipeline import storage
from pipeline.io import read_json
from pipeline.parts import part_batches

MANIFEST = "_manifest.json"
SHARD_MANIFEST = "manifest.json"
SIDECAR_SUFFIX = ".docs.parquet"  # tokenization.stage.DOCS_SUFFIX (not imported: no sentencepiece needed)
_STAGE_DIR = re.compile(r"^(\d{2})-(.+)$")
_LAST = "\U0010ffff"  # sorts after every character, in UTF-8 bytes as in code points


@dataclasses.dataclass(frozen=True)
class StageInfo:
    """One finished stage folder of a run."""

    dir: str  # e.g. "09-exact_dedup"
    path: str
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest.get("stage", self.dir.split("-", 1)[1])

    @property
    def materialized(self) -> bool:
        return self.manifest.get("materialized", True)

    @property
    def parts(self) -> list[str]:
        return [storage.join(self.path, p) for p in self.manifest.get("parts", [])]

    def rejected(self) -> list[str]:
        folder = storage.join(self.path, "rejected")
        return [storage.join(folder, n) for n in storage.listdir(folder) if n.endswith(".parquet")]

    def shard_manifest(self) -> dict | None:
        path = storage.join(self.path, SHARD_MANIFEST)
        return read_json(path) if storage.isfile(path) else None


@dataclasses.dataclass(frozen=True)
class RunLayout:
    path: str
    stages: list[StageInfo]
    config: dict

    @classmethod
    def open(cls, path: str) -> RunLayout:
        """The finished stages of the run at `path`; ValueError when it is not a run's output."""
        if not storage.isdir(path):
            raise ValueError(f"OUTPUT: {path!r} is not a folder; give a run's output folder")
        stages = []
        for name in storage.listdir(path):
            folder = storage.join(path, name)
            if _STAGE_DIR.match(name) and storage.isfile(storage.join(folder, MANIFEST)):
                stages.append(StageInfo(name, folder, read_json(storage.join(folder, MANIFEST))))
        if not stages or stages[0].name != "read":
            raise ValueError(f"OUTPUT: {path!r} holds no finished read stage (00-read/_manifest.json); "
                             "give the output folder of `thresher run`")
        return cls(path, stages, _config(path))

    def stage(self, dir_name: str) -> StageInfo:
        return next(s for s in self.stages if s.dir == dir_name)

    def tokenize(self) -> StageInfo | None:
        """The last stage that wrote token shards."""
        return next((s for s in reversed(self.stages) if storage.isfile(storage.join(s.path, SHARD_MANIFEST))), None)

    def final(self) -> StageInfo:
        """The last stage whose kept documents were written (what `--text` searches)."""
        return next(s for s in reversed(self.stages) if s.materialized and s.manifest.get("parts"))


def _config(path: str) -> dict:
    import yaml

    file = storage.join(path, "config.yaml")
    return yaml.safe_load(storage.read_bytes(file)) if storage.isfile(file) else {}


def dataset(paths: list[str]) -> pds.Dataset:
    """One pyarrow dataset over Parquet files of one schema (local paths or fsspec URLs)."""
    if all(storage.is_local(p) for p in paths):
        return pds.dataset(paths, format="parquet")
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    fs, _ = storage.filesystem(paths[0])
    return pds.dataset(list(_in_filesystem(paths)), format="parquet", filesystem=PyFileSystem(FSSpecHandler(fs)))


def _in_filesystem(paths: list[str]) -> dict[str, str]:
    """Each path as its file system names it (`bucket/key` for `s3://bucket/key`) -> the path."""
    return {p if storage.is_local(p) else storage.filesystem(p)[1]: p for p in paths}


def find_rows(paths: list[str], doc_id: str, columns: list[str], copies: bool = False,
              column: str = "id") -> pa.Table:
    """Rows of the Parquet files `paths` whose `column` is `doc_id` (with `copies`, also its
    mix copies `doc_id#epoch<k>`), with `columns` (those the files have) and `file` (the
    file's path). The filter is pushed down: files and row groups whose statistics rule the
    id out are not read."""
    if not paths:
        return pa.table({})
    data = dataset(paths)
    field = pc.field(column)
    where = ((field >= doc_id) & (field <= f"{doc_id}#epoch{_LAST}")) if copies else field == doc_id
    wanted = [c for c in dict.fromkeys([column, *columns]) if c in data.schema.names]
    batches, files, names = [], [], _in_filesystem(paths)
    for tagged in data.scanner(columns=wanted, filter=where).scan_batches():
        if tagged.record_batch.num_rows:
            batches.append(tagged.record_batch)
            files += [names.get(tagged.fragment.path, tagged.fragment.path)] * tagged.record_batch.num_rows
    table = pa.Table.from_batches(batches, schema=data.schema.empty_table().select(wanted).schema)
    table = table.append_column("file", pa.array(files, pa.string()))
    if copies and table.num_rows:  # the range may hold ids that merely share the prefix
        keep = [v == doc_id or _is_copy(v, doc_id) for v in table.column(column).to_pylist()]
        table = table.filter(pa.array(keep))
    return table


def _is_copy(value: str, doc_id: str) -> bool:
    suffix = value[len(doc_id):]
    return value.startswith(doc_id) and suffix.startswith("#epoch") and suffix[6:].isdigit()


def duplicates_of(paths: list[str], doc_id: str) -> list[str]:
    """Ids of the rejected rows in `paths` whose metadata says they duplicate `doc_id`
    (dedup writes `"duplicate_of":"<id>"`). Scans the metadata column: dedup's rejected parts
    are a small share of a run."""
    if not paths:
        return []
    data = dataset(paths)
    if "metadata" not in data.schema.names:
        return []
    needle = '"duplicate_of":' + json.dumps(doc_id, ensure_ascii=False)
    table = data.to_table(columns=["id"], filter=pc.match_substring(pc.field("metadata"), needle))
    return sorted(table.column("id").to_pylist())


def find_text(paths: list[str], snippet: str, limit: int, views: bool = False) -> list[str]:
    """Ids of the documents in `paths` whose text contains `snippet`, in file order, at most
    `limit` (a scan of the text column: the final stage only). With `views`, the paths are
    views (pipeline/parts.py): the rows they keep are scanned, batch by batch."""
    if views:
        batches = (batch.filter(pc.match_substring(batch.column("text"), snippet)).select(["id"])
                   for part in paths for batch in part_batches(part, columns=["id", "text"]))
    else:
        batches = dataset(paths).scanner(columns=["id"], filter=pc.match_substring(pc.field("text"), snippet)
                                         ).to_batches()
    found: list[str] = []
    for batch in batches:
        found += batch.column(0).to_pylist()
        if len(found) >= limit:
            break
    return found[:limit]
