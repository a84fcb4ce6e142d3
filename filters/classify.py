"""The `classify` stage: classifier scores (fastText or logistic models) for every document, no
filtering (scoring is kept apart from selection, as in dolma; the `select` stage keeps
documents by these scores).

With `quality_model` it adds `quality_score`, the model's probability of its positive label
(DCLM-style: "how much like the reference text"). With `domain_model` it adds `domain` (the
positive label at or above the threshold calibrated at training time, else the other label;
the most probable label for more than two) and `domain_score`, the probability of the
document's domain label. A document whose input already set `domain` (the config's
`inputs[].domain`) keeps it: the classifier labels the others. Documents over `max_bytes`
are scored on their first `max_bytes`; documents without a single token get null scores.
Models are trained by `thresher classifier train` and loaded once per worker process (a
module-level cache keyed by path), never shipped inside the task graph.

Config:
    - classify: {quality_model: models/quality/model.bin, domain_model: models/domain/model.bin}
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from filters.classifier import ModelBundle, bounded_prefix, load_bundle, local_model, normalize
from pipeline import storage
from pipeline.io import file_sha256
from pipeline.record import ensure_schema, rejected_schema
from pipeline.stage import MapStage, PartResult, StageParams, register
from pipeline.stats import StageStats

_BUNDLES: dict[tuple, ModelBundle] = {}


def cached_bundle(path: str, positive_label: str | None, threshold: float | None) -> ModelBundle:
    """The model at `path` (local or a URL), loaded once per process (reloaded if the file changes)."""
    resolved = Path(local_model(path)).resolve()
    if not resolved.is_file():
        raise ValueError(f"model {path!r} does not exist; train one with `thresher classifier train`")
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size, positive_label, threshold)
    if key not in _BUNDLES:
        _BUNDLES[key] = load_bundle(resolved, positive_label, threshold)
    return _BUNDLES[key]


@register
class Classify(MapStage):
    """Classifier scores: quality_score and/or domain + domain_score (no documents dropped)."""

    name = "classify"

    class Params(StageParams):
        quality_model: str | None = Field(None, description="quality model.bin; adds quality_score")
        quality_label: str | None = Field(None, description="its positive label (default: from its config.yaml)")
        domain_model: str | None = Field(None, description="domain model.bin; adds domain, domain_score")
        domain_label: str | None = Field(None, description="its positive label (default: from its config.yaml)")
        domain_threshold: float | None = Field(
            None, ge=0, le=1, description="positive-label threshold (default: calibrated, from report.json)")
        max_bytes: int = Field(1_000_000, gt=0, description="score longer documents on this many leading bytes")

        @model_validator(mode="after")
        def _some_model(self):
            if self.quality_model is None and self.domain_model is None:
                raise ValueError("give quality_model, domain_model or both")
            return self

    def check(self) -> None:
        if self.params.quality_model is not None and self._quality().positive_label is None:
            raise ValueError(f"quality_model {self.params.quality_model!r}: set quality_label, the label to score")
        if self.params.domain_model is not None:
            self._domain()

    def fingerprint_extra(self) -> dict[str, str]:
        """The models' bytes decide the scores: a retrained model at the same path reruns."""
        paths = {"quality": self.params.quality_model, "domain": self.params.domain_model}
        return {k: file_sha256(v) for k, v in paths.items() if v is not None and storage.isfile(v)}

    def _quality(self) -> ModelBundle:
        return cached_bundle(self.params.quality_model, self.params.quality_label, None)

    def _domain(self) -> ModelBundle:
        p = self.params
        return cached_bundle(p.domain_model, p.domain_label, p.domain_threshold)

    def output_schema(self, input_schema: pa.Schema) -> pa.Schema:
        return ensure_schema(input_schema)

    def process(self, table: pa.Table) -> PartResult:
        start = time.perf_counter()
        stats = StageStats(docs_in=table.num_rows, docs_out=table.num_rows)
        stats.bytes_in = stats.bytes_out = _text_bytes(table)
        texts = [t or "" for t in table.column("text").to_pylist()] if "text" in table.column_names else []
        prefixes = [bounded_prefix(t, self.params.max_bytes) for t in texts]
        stats.count("truncated", sum(len(p) < len(t) for p, t in zip(prefixes, texts)))
        normalized = [normalize(p) for p in prefixes]
        has_text = np.array([bool(n) for n in normalized], dtype=bool)
        stats.count("no_text", int((~has_text).sum()))
        out = _with_core_columns(table)
        if self.params.quality_model is not None:
            out = self._add_quality(out, normalized, has_text)
        if self.params.domain_model is not None:
            out = self._add_domain(out, normalized, has_text, stats)
        result = PartResult(out.cast(self.output_schema(table.schema)), _empty_rejected(out.schema), stats)
        stats.seconds = time.perf_counter() - start
        return result

    def _add_quality(self, table: pa.Table, normalized: list[str], has_text: np.ndarray) -> pa.Table:
        bundle = self._quality()
        scores = bundle.proba_normalized(normalized)[:, bundle.labels.index(bundle.positive_label)]
        return _set(table, "quality_score", pa.array(np.round(scores, 6), mask=~has_text, type=pa.float64()))

    def _add_domain(self, table: pa.Table, normalized: list[str], has_text: np.ndarray,
                    stats: StageStats) -> pa.Table:
        bundle = self._domain()
        labels, probs = bundle.labels, bundle.proba_normalized(normalized)
        predicted = bundle.predict(probs)
        given = table.column("domain").to_pylist()
        domains, scores = [], []
        for i, (label, preset) in enumerate(zip(predicted, given)):
            domain = preset if preset is not None else (label if has_text[i] else None)
            domains.append(domain)
            scores.append(round(float(probs[i, labels.index(domain)]), 6) if has_text[i] and domain in labels else None)
            stats.count(f"domain.{domain}" + (".from_input" if preset is not None else ""))
        table = _set(table, "domain", pa.array(domains, type=pa.string()))
        return _set(table, "domain_score", pa.array(scores, type=pa.float64()))


def _text_bytes(table: pa.Table) -> int:
    if "text" not in table.column_names or table.num_rows == 0:
        return 0
    return int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0)


def _with_core_columns(table: pa.Table) -> pa.Table:
    """`table` with any missing core column added as nulls (canonical order)."""
    schema = ensure_schema(table.schema)
    columns = [table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    index = table.schema.get_field_index(name)
    return table.set_column(index, pa.field(name, values.type), values)


def _empty_rejected(schema: pa.Schema) -> pa.Table:
    return rejected_schema(schema).empty_table()
