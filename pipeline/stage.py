"""The stage protocol and the registry of stages by name.

A *map* stage computes on one partition at a time (an Arrow table in; kept table, rejected
table and `StageStats` out). Most map stages are per-document: subclass `DocumentStage` and
implement `process_document(doc, stats)`, or `Filter` and implement only `filter(doc)`, which
returns `None` to keep the document or a reason string (`"too_few_words"`) to drop it; the base
class prefixes the stage name, counts, times and routes the dropped rows to `rejected/`.
A *global* stage (dedup, mix, tokenizer training) sees the whole dataset at once: subclass
`GlobalStage` and implement `run(ctx) -> GlobalResult` (see `GlobalStage`). A stage declares
the artifacts it produces and uses besides the documents (`produces`, `uses`, `needs`: mix
produces the `mixture` that tokenize uses); the runner hands a global stage those of earlier
stages (`ctx.artifacts`).

Stages are registered by name with `@register` (the modules that hold them are listed in
`pipeline.registry`, or declared by an installed plugin's entry point) and configured from YAML through their
`Params` model (pydantic, frozen, unknown keys forbidden). Every map stage also takes a scope,
`only: {source: [...], domain: [...]}` and/or `skip: {...}`: documents outside it pass
through untouched, in place, counted as `scope.passed_through` (`Scope`, applied by
`MapStage.run_part`), so web-page rules need not touch curated newswire. The runner runs
consecutive map stages in one task per part and writes the kept documents once, at the end
of the run (`MapStage.materialize`, pipeline/fuse.py):

    @register
    class MinChars(Filter):
        name = "min_chars"
        class Params(StageParams):
            min_chars: int = 1
        def filter(self, doc):
            return None if len(doc.text or "") >= self.params.min_chars else "too_short"
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import time
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, model_serializer

from pipeline.configbase import ConfigError
from pipeline.io import FULL
from pipeline.record import (
    Document,
    documents_to_table,
    rejected_schema,
    rejected_to_table,
    table_to_documents,
)
from pipeline.registry import ENTRY_POINT_GROUP, STAGE_MODULES
from pipeline.stats import StageStats

if TYPE_CHECKING:
    from pipeline.context import GlobalContext, GlobalResult

REGISTRY: dict[str, type[Stage]] = {}


class StageParams(BaseModel):
    """Base of every stage's parameters: immutable, unknown keys are errors. A parameter added
    after runs were fingerprinted is named in `omitted_at_default`: it is left out of the dump
    (hence of the fingerprint and the written config) while it has its default, so those runs'
    fingerprints stay what they were."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    omitted_at_default: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _without_late_defaults(self, handler):
        data = handler(self)
        if isinstance(data, dict):
            for name in self.omitted_at_default:
                if name in data and getattr(self, name) == type(self).model_fields[name].default:
                    data.pop(name)
        return data


class Match(StageParams):
    """Documents whose source is one of `source` and whose domain is one of `domain` (a key
    left out matches every document)."""

    source: list[str] | None = Field(None, min_length=1, description="source names (the inputs' `source`)")
    domain: list[str] | None = Field(None, min_length=1, description="domain labels")

    def mask(self, table: pa.Table) -> np.ndarray:
        hit = np.ones(table.num_rows, dtype=bool)
        for column, values in (("source", self.source), ("domain", self.domain)):
            if values is not None:
                hit &= pc.fill_null(pc.is_in(table.column(column), pa.array(values, pa.string())), False).to_numpy()
        return hit


class Scope(StageParams):
    """Which documents a stage applies to: those matching `only` (default: all) and not `skip`."""

    only: Match | None = None
    skip: Match | None = None

    def mask_is_set(self) -> bool:
        return self.only is not None or self.skip is not None

    def mask(self, table: pa.Table) -> np.ndarray | None:
        """In-scope rows of `table`, or None when the stage applies to every document."""
        if not self.mask_is_set():
            return None
        hit = self.only.mask(table) if self.only is not None else np.ones(table.num_rows, dtype=bool)
        return hit & ~self.skip.mask(table) if self.skip is not None else hit


class Stage:
    name: ClassVar[str]
    kind: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    # Stages whose output this one reads besides the documents (a MinHash stage reads its
    # predecessor's artefacts): it must come right after one of them, checked with the config.
    follows: ClassVar[tuple[str, ...]] = ()
    # Artifacts: named outputs besides the documents, found in the producing stage's folder
    # (`mixture` is in mix's `_manifest.json`). A global stage gets, for each artifact it
    # `uses`, the folder of the latest earlier stage that `produces` it in `ctx.artifacts`,
    # however many stages come in between; one whose params make it `needs` an artifact no
    # earlier stage produces is refused with the config (`pipeline.config.check_artifacts`).
    produces: ClassVar[tuple[str, ...]] = ()
    passes_through: ClassVar[bool] = False  # its output documents are its input's, passed on unchanged
    uses: ClassVar[tuple[str, ...]] = ()
    # Rejection reasons that shape a mixture rather than lose data (the guards don't count them).
    sampling_reasons: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, params: StageParams | None = None, scope: Scope | None = None):
        self.params = params if params is not None else self.Params()
        self.scope = scope or Scope()

    @classmethod
    def needs(cls, params: StageParams) -> tuple[str, ...]:
        """The artifacts of `uses` that this stage, configured with `params`, cannot run without."""
        return ()

    def check(self) -> None:
        """Fail early (at build time, not mid-run) when an optional dependency or a file
        named in the params is missing. Raise `ValueError` with what to do."""

    def fingerprint_extra(self) -> Any:
        """What besides the params decides this stage's output (e.g. the sha256 of a model
        file it loads), so a rerun recomputes when it changes. Must be JSON-serialisable."""
        return None

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"


@dataclasses.dataclass
class PartResult:
    kept: pa.Table
    rejected: pa.Table
    stats: StageStats


@dataclasses.dataclass(frozen=True)
class Reject:
    """A per-document stage's verdict to drop a document; `reason` is already qualified
    with the stage name (`gopher_quality.too_few_words`)."""

    reason: str
    doc: Document | None = None  # the document as it should appear in rejected/ (default: input)


class MapStage(Stage):
    kind = "map"
    # Whether this stage's kept documents are written even when a map stage follows it. The
    # runner fuses consecutive map stages into one task per part and writes only the last one's
    # kept documents (every stage's rejected documents and stats are always written); a stage
    # that materializes ends such a chain. A config overrides it per stage (`materialize: true`).
    materialize: ClassVar[bool] = False

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        """Columns this stage writes, given its input's; default: unchanged."""
        return input_schema

    def process(self, table: pa.Table) -> PartResult:
        raise NotImplementedError

    def run_part(self, table: pa.Table) -> PartResult:
        """`process` on the rows in the stage's scope; the others pass through untouched, in
        their place among the kept rows, and are counted as `scope.passed_through`."""
        mask = self.scope.mask(table)
        if mask is None:
            return self.process(table)
        inside = self.process(table.filter(pa.array(mask)))
        outside = table.filter(pa.array(~mask))
        kept = _in_input_order(table, inside.kept, _conform(outside, inside.kept.schema))
        stats = inside.stats
        n_bytes = int(pc.sum(pc.binary_length(outside.column("text"))).as_py() or 0) if outside.num_rows else 0
        stats.docs_in, stats.docs_out = stats.docs_in + outside.num_rows, stats.docs_out + outside.num_rows
        stats.bytes_in, stats.bytes_out = stats.bytes_in + n_bytes, stats.bytes_out + n_bytes
        stats.count("scope.passed_through", outside.num_rows)
        return PartResult(kept, inside.rejected, stats)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` with `schema`'s columns: missing ones null, extra ones dropped."""
    columns = [table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _in_input_order(table: pa.Table, *parts: pa.Table) -> pa.Table:
    """The rows of `parts` (each a subset of `table`'s documents, by id) in `table`'s order."""
    position = {doc_id: i for i, doc_id in enumerate(table.column("id").to_pylist())}
    merged = pa.concat_tables(parts)
    order = np.argsort([position[doc_id] for doc_id in merged.column("id").to_pylist()], kind="stable")
    return merged.take(pa.array(order, pa.int64()))


class DocumentStage(MapStage):
    """A map stage that looks at one document at a time."""

    def setup(self) -> None:
        """Load heavy resources; called once per partition before the first document.
        Cache them at module level (keyed by params) so a worker loads them once."""

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        raise NotImplementedError

    def reject(self, reason: str, doc: Document | None = None) -> Reject:
        return Reject(f"{self.name}.{reason}", doc)

    def process(self, table: pa.Table) -> PartResult:
        start = time.perf_counter()
        self.setup()
        stats = StageStats()
        kept: list[Document] = []
        dropped: list[tuple[Document, str, str]] = []
        for doc in table_to_documents(table):
            stats.docs_in += 1
            stats.bytes_in += doc.n_bytes
            out = self._guarded(doc, stats)
            if isinstance(out, Reject):
                shown = out.doc or doc
                stats.reject(out.reason, shown.n_bytes)
                dropped.append((shown, self.name, out.reason))
            else:
                stats.docs_out += 1
                stats.bytes_out += out.n_bytes
                kept.append(out)
        out_schema = self.output_schema(table.schema)
        result = PartResult(
            documents_to_table(kept, out_schema),
            rejected_to_table(dropped, rejected_schema(table.schema)),
            stats,
        )
        stats.seconds = time.perf_counter() - start
        return result


    def _guarded(self, doc: Document, stats: StageStats) -> Document | Reject:
        try:
            return self.process_document(doc, stats)
        except Exception as error:  # one bad document must not stop a run: keep it, with why
            if isinstance(error, OSError) and error.errno in FULL:
                raise  # the disk, not the document (a model cached on first use): stop, commit nothing
            stats.count(f"errors.{type(error).__name__}")
            detail = f"{type(error).__name__}: {error}"[:500]
            return self.reject("error", doc.replace(metadata={**doc.metadata, "error": detail}))


class Filter(DocumentStage):
    """A pure keep/drop rule on one document. Implement `filter(doc) -> reason | None`."""

    def filter(self, doc: Document) -> str | None:
        raise NotImplementedError

    def process_document(self, doc: Document, stats: StageStats) -> Document | Reject:
        reason = self.filter(doc)
        return doc if reason is None else self.reject(reason)


class GlobalStage(Stage):
    """A stage that needs the whole dataset (a Dask collection of all partitions).

    The contract: `run(ctx)` writes into `ctx.dir` and returns a `GlobalResult` (its stats, the
    parts it committed and extra manifest fields); it changes nothing it was handed. Work per
    input part goes through `ctx.map_parts`, which skips the parts committed by a killed run
    and sums the parts' stats; a part function writes through `pipeline.io.commit_part` (kept
    rows, `rejected/` rows built by `pipeline.record.with_reason`, stats from
    `pipeline.stats.part_stats`, the commit record last). A stage that only removes rows
    writes views of its input parts instead of copies when `ctx.views` allows it
    (`pipeline.parts.commit_removal`)."""

    kind = "global"

    def run(self, ctx: GlobalContext) -> GlobalResult:
        raise NotImplementedError


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make a stage available to configs under `cls.name`."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"stage name {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def load_registry() -> dict[str, type[Stage]]:
    """Every stage by name: thresher's own (`pipeline.registry.STAGE_MODULES`), then those of
    installed plugins (modules in the `thresher.stages` entry-point group)."""
    _import_stage_modules()
    return REGISTRY


@functools.cache  # once per process: reading the installed entry points scans every distribution
def _import_stage_modules() -> None:
    for module in STAGE_MODULES:
        importlib.import_module(module)
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as error:
            raise ConfigError(f"stage plugin {entry.name} = {entry.value!r} (entry point group "
                              f"{ENTRY_POINT_GROUP!r}) does not import: {type(error).__name__}: {error}; "
                              "fix or uninstall that package") from error


def build_stage(name: str, params: dict[str, Any] | None, scope: Scope | None = None) -> Stage:
    """Build a registered stage from raw params (raises pydantic's ValidationError)."""
    cls = load_registry()[name]
    return cls(cls.Params.model_validate(params or {}), scope)


def stage_list(names: Iterable[str] | None = None) -> list[type[Stage]]:
    registry = load_registry()
    return [registry[n] for n in sorted(names or registry)]
