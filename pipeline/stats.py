"""Addable per-stage statistics: the run's receipt.

Every partition a stage processes yields a `StageStats`; the runner saves it beside the part,
adds the parts together into the stage's `_manifest.json`, and merges all stages into
`OUTPUT/stats.json`. Counts are exact; `counters` holds free-form named counts (skipped WARC
records by kind, languages seen, PII replacements, ...), added key by key; `rejected_by_source`
counts rejected documents per (source, reason), which the run's guards (`pipeline.guards`) and
its per-source summary add up over the stages (written as {source: {reason: documents}}).

    s = StageStats(docs_in=10, docs_out=9); s.reject("gopher_quality.too_few_words", 120)
    total = sum(per_part, StageStats())
    s = part_stats(table, kept, rejected)   # a global stage's part, split into kept and rejected rows
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


@dataclasses.dataclass
class StageStats:
    docs_in: int = 0
    bytes_in: int = 0
    docs_out: int = 0
    bytes_out: int = 0
    docs_rejected: int = 0
    bytes_rejected: int = 0
    seconds: float = 0.0
    rejected: Counter = dataclasses.field(default_factory=Counter)  # reason -> documents
    rejected_bytes: Counter = dataclasses.field(default_factory=Counter)  # reason -> text bytes
    counters: Counter = dataclasses.field(default_factory=Counter)  # name -> count
    quarantine: list = dataclasses.field(default_factory=list)  # whole-file problems
    rejected_by_source: Counter = dataclasses.field(default_factory=Counter)  # (source, reason) -> documents

    def reject(self, reason: str, n_bytes: int = 0, source: str | None = None) -> None:
        self.docs_rejected += 1
        self.bytes_rejected += n_bytes
        self.rejected[reason] += 1
        self.rejected_bytes[reason] += n_bytes
        if source is not None:
            self.rejected_by_source[source, reason] += 1

    def count(self, name: str, value: int | float = 1) -> None:
        self.counters[name] += value

    def __add__(self, other: StageStats) -> StageStats:
        out = StageStats()
        for f in dataclasses.fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            setattr(out, f.name, Counter(a) + Counter(b) if isinstance(a, Counter) else a + b)
        return out

    def __radd__(self, other: Any) -> StageStats:
        return self if other == 0 else NotImplemented

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("rejected", "rejected_bytes", "counters"):
            d[key] = dict(sorted(getattr(self, key).items()))
        d["seconds"] = round(self.seconds, 3)
        d["quarantine"] = sorted(self.quarantine, key=lambda q: (q["file"], q["detail"]))
        by_source: dict[str, dict[str, int]] = {}
        for (source, reason), n in sorted(self.rejected_by_source.items()):
            by_source.setdefault(source, {})[reason] = n
        d["rejected_by_source"] = by_source
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageStats:
        d = dict(d)
        for key in ("rejected", "rejected_bytes", "counters"):
            d[key] = Counter(d.get(key, {}))
        d["quarantine"] = list(d.get("quarantine", []))
        by_source = d.get("rejected_by_source", {})
        d["rejected_by_source"] = Counter({(source, reason): n for source, reasons in by_source.items()
                                           for reason, n in reasons.items()})
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def text_bytes(table: pa.Table) -> int:
    """UTF-8 bytes of `table`'s text column (0 without one)."""
    if "text" not in table.column_names or not table.num_rows:
        return 0
    return int(pc.sum(pc.binary_length(table["text"])).as_py() or 0)


def part_stats(table: pa.Table, kept: pa.Table, rejected: pa.Table | None = None) -> StageStats:
    """The stats of one part that a global stage split into `kept` and `rejected` rows (the
    latter with their `reason`): documents and text bytes in, out and rejected per reason."""
    stats = StageStats(docs_in=table.num_rows, bytes_in=text_bytes(table), docs_out=kept.num_rows,
                       bytes_out=text_bytes(kept))
    if rejected is not None and rejected.num_rows:  # per reason, in Arrow: no Python string per row
        n_bytes = pc.fill_null(pc.binary_length(rejected["text"]), 0).cast(pa.int64())
        grouped = pa.table({"reason": rejected["reason"], "bytes": n_bytes}).group_by("reason").aggregate(
            [("bytes", "sum"), ("bytes", "count")])
        for reason, total, n in zip(*(grouped[c].to_pylist() for c in ("reason", "bytes_sum", "bytes_count"))):
            stats.docs_rejected, stats.bytes_rejected = stats.docs_rejected + n, stats.bytes_rejected + total
            stats.rejected[reason] += n
            stats.rejected_bytes[reason] += total
    return stats
