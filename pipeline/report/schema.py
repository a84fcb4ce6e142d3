"""The schema of the report's `stats.json` (`thresher.stats`, version 1), as pydantic models.

`thresher stats --print-schema` prints it as JSON Schema; every field carries its description.
The HTML report and the dataset card are rendered from a validated `stats.json` only.
Versioning: adding a field keeps the version; renaming, removing or changing the meaning of
one bumps `schema_version`. Fields marked "estimate" come from sketches or from bytes (listed
in `estimates`); every other count is exact.

This file is the report's own; a run's receipt `OUTPUT/stats.json` (schema_version, summary,
stages: see pipeline/runner.py `summarize`) is a different, smaller file that it never changes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_NAME = "thresher.stats"
SCHEMA_VERSION = 1
ESTIMATES = [
    {"field": "document_sets.*.lengths.*.quantiles", "method": "t-digest (fastdigest), merged over files"},
    {"field": "document_sets.*.distinct_texts_estimate",
     "method": "HyperLogLog++ (datasketch estimator, p=14, ~0.8% standard error) of a 64-bit hash of the text"},
    {"field": "document_sets.*.distinct_url_hosts_estimate", "method": "HyperLogLog++ as above, of the URL host"},
    {"field": "tokens where tokens_method is 'estimated'",
     "method": "per document ceil(UTF-8 bytes / 4), the mix stage's rule, when no tokenizer is known"},
    {"field": "dedup[].audit.false_positives", "method": "a deterministic sample of LSH candidate pairs (dedup.audit)"},
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Histogram(_Model):
    lo: list[float] = Field(description="lower edge of each non-empty bin (inclusive)")
    hi: list[float | None] = Field(description="upper edge (exclusive); null for the open last bin")
    count: list[int] = Field(description="exact number of values in the bin")


class Lengths(_Model):
    sum: int
    mean: float | None
    min: int | None
    max: int | None
    quantiles: dict[str, float | None] = Field(description="p1..p99 (estimate: t-digest)")
    histogram: Histogram = Field(description="exact counts over fixed log-spaced bins (10 per decade)")


class CategoryCount(_Model):
    documents: int
    bytes: int
    tokens: int


class ScoreStats(_Model):
    scored: int = Field(description="documents with a score")
    missing: int = Field(description="documents without one (null/NaN)")
    mean: float | None
    histogram: Histogram = Field(description="exact counts over 50 bins of [0, 1]")


class Sample(_Model):
    id: str | None
    url: str | None
    snippet: str = Field(description="first 300 characters, whitespace collapsed (HTML-escaped when shown)")


class DocumentSet(_Model):
    """Statistics of one set of documents (a stage's output, or a documents folder)."""

    documents: int
    bytes: int = Field(description="UTF-8 bytes of the text")
    tokens: int = Field(description="sum of the per-document token counts (see tokens_method)")
    documents_without_text: int
    unreadable_records: int = Field(description="JSONL records that were not JSON or had no text field")
    lengths: dict[Literal["chars", "words", "tokens"], Lengths]
    categories: dict[str, dict[str, CategoryCount]] = Field(
        description="source, domain, language -> value -> counts (exact; most documents first; "
                    "'(none)' = missing; beyond 10,000 values the rest are summed as '(other)')")
    scores: dict[str, ScoreStats] = Field(description="quality_score, domain_score, language_score when present")
    distinct_texts_estimate: int = Field(description="estimate: distinct texts (HyperLogLog++)")
    documents_with_url: int
    distinct_url_hosts_estimate: int = Field(description="estimate: distinct URL hosts (HyperLogLog++)")
    samples: dict[str, list[Sample]] = Field(description="per domain, a deterministic sample (smallest id hash)")


class FunnelRow(_Model):
    step: str = Field(description="'raw records', a stage name, or 'training shards'")
    dir: str
    documents: int = Field(description="documents after the step (stage manifest stats.docs_out)")
    bytes: int | None = Field(description="bytes after the step (stats.bytes_out); raw pages for WARC/HTML reads")
    tokens: int | None
    tokens_method: Literal["counted", "estimated", "shards"] | None = Field(
        description="counted: tokenizer over the documents; estimated: from bytes; shards: the shard index")
    documents_removed: int
    pct_documents: float | None = Field(description="% of the raw records")
    pct_bytes: float | None = Field(description="% of the raw bytes")
    pct_tokens: float | None = Field(description="% of the first row that has tokens")


class Funnel(_Model):
    rows: list[FunnelRow]
    raw_bytes_are_pages: bool = Field(description="the read stage's bytes are page bytes (HTML), not text")


class Example(_Model):
    id: str | None
    url: str | None
    snippet: str
    details: dict[str, Any] = Field(description="language and scores of the rejected document, when set")


class Reason(_Model):
    reason: str
    documents: int
    bytes: int
    pct_of_input: float | None
    examples: list[Example] = Field(description="up to 3, the smallest hashes of their ids")


class Removal(_Model):
    stage: str
    dir: str
    documents_in: int
    documents_rejected: int
    bytes_rejected: int
    reasons: list[Reason] = Field(description="most documents first")
    quarantine: list[dict[str, Any]] = Field(description="whole files set aside by the read stage")


class ReasonShare(_Model):
    reason: str
    documents: int
    pct_of_label: float = Field(description="% of the label's documents (in = kept + removed)")


class LabelRemoval(_Model):
    name: str = Field(description="the source or domain")
    documents_in: int = Field(description="kept + removed: documents that ended with the label or were removed with it")
    documents_kept: int = Field(description="documents at the end of curation (the input of mix, else the last stage)")
    documents_removed: int = Field(description="rejected rows with this label, every stage up to the end of curation")
    pct_removed: float | None
    reasons: list[ReasonShare] = Field(description="the top 5 removal reasons, most documents first")


class LabelRemovals(_Model):
    dir: str = Field(description="the end of curation: the stage whose documents count as kept")
    source: list[LabelRemoval] = Field(description="every source, one removed entirely included (0 kept)")
    domain: list[LabelRemoval] = Field(description="every domain; '(none)' only when documents end without one")


class Languages(_Model):
    dir: str = Field(description="the stage that identified languages (its documents carry one first)")
    input_dir: str | None = Field(description="the stage before it, whose documents `before` counts")
    before: dict[str, int] = Field(description="language -> documents entering `dir`: its kept + removed documents, "
                                               "by the language it found")
    after_dir: str | None
    after: dict[str, int] = Field(description="language -> final documents")


class ScoreCheck(_Model):
    column: str
    dir: str = Field(description="the first stage whose documents carry the column (before any cut on it)")
    scored: int
    mean: float | None
    window: list[float] = Field(description="the two adjacent 0.02 bins holding the most scored documents")
    share_in_window: float | None
    uninformative: bool = Field(description=">= 95% of >= 10 scored documents in one window: quality_score in any, "
                                            "domain_score in 0.48-0.52 (see pipeline/report/checks.py)")
    at_chance: bool = Field(description="uninformative, and the window is 0.48-0.52 (every score ~0.5)")


class Selection(_Model):
    dir: str
    input_dir: str | None = Field(description="the stage whose documents the cut was made on")
    column: str | None
    threshold: float | None = Field(description="the cut: documents scoring >= threshold are kept")
    threshold_tie_id: str | None
    keep_top: float | None
    alpha: float | None = Field(description="Pareto sampling instead of a cut")
    scored: int | None
    documents_in: int
    documents_kept: int
    rejected: dict[str, int]


class Dedup(_Model):
    stage: str
    dir: str
    documents_in: int
    documents_removed: int
    pct_removed: float | None
    params: dict[str, Any]
    lsh: dict[str, Any] | None = Field(description="bands, rows, jaccard_threshold, s_curve, as the stage wrote it")
    audit: dict[str, Any] | None = Field(
        description="group_size_histogram, removed_by_source/domain, false_positives (units, units_removed for "
                    "paragraph/line dedup; eval_sets for decontaminate), as the stage wrote it")


class ShardDomain(_Model):
    documents: int
    tokens: int
    weight: float = Field(description="target token share (the mix stage's, or the share written)")
    achieved: float = Field(description="share of the training tokens actually written")
    shards: int
    valid_documents: int
    valid_tokens: int


class Shards(_Model):
    dir: str
    format: str | None
    format_version: int | None
    dtype: str | None
    vocab_size: int | None
    eos_id: int | None
    bos_id: int | None
    tokenizer: dict[str, Any] = Field(description="path, sha256, vocab_size, model_type")
    documents: int = Field(description="training documents (validation shards excluded)")
    tokens: int = Field(description="training tokens, EOS included")
    valid_tokens: int
    domains: dict[str, ShardDomain]
    shards: list[dict[str, Any]] = Field(description="domain, prefix, documents, tokens of every training shard")
    mixture_correction: dict[str, Any] = Field(description="tokenize's trim to the mix targets by real token counts")
    sequence_lengths: Lengths | None = Field(description="exact, from the shards' .idx (tokens incl. EOS)")


class Plan(_Model):
    model_config = ConfigDict(extra="allow")
    tokens: float
    params: float = Field(description="compute-optimal parameters for these tokens (Chinchilla: D = 20 N)")
    flops: float = Field(description="training FLOPs, C = 6 N D")
    tokens_per_param: float
    pf_days: float
    source: str = Field(description="training.plan, or the local two-rule fallback")
    tokens_from: str


class Overview(_Model):
    documents_raw: int
    documents_final: int
    pct_documents_kept: float | None
    bytes_raw: int | None
    tokens_final: int | None
    tokens_final_method: str | None
    pct_tokens_kept: float | None
    training_tokens: int | None
    domains: list[str]
    languages: list[str] = Field(description="up to 10, most documents first")
    sources: list[str]


class Stats(_Model):
    """`stats.json` written by `thresher stats` (and `thresher demo`) beside report.html."""

    schema_: Literal["thresher.stats"] = Field(alias="schema")
    schema_version: Literal[1]
    thresher_version: str
    input: dict[str, str] = Field(description="path (as given) and kind: run | documents | shards")
    overview: Overview
    warnings: list[str] = Field(description="what to look at first")
    tokens_method: str = Field(description="how document tokens were counted")
    funnel: Funnel
    removals: list[Removal]
    label_removals: LabelRemovals | None = Field(None, description="kept and removed per source and domain (runs)")
    roles: dict[str, str] = Field(description="before / after / scored -> the document set (stage dir) measured")
    document_sets: dict[str, DocumentSet]
    languages: Languages | None = Field(None, description="languages at the language-id stage's input and at the end")
    score_checks: list[ScoreCheck] = Field(default_factory=list, description="is each score column informative")
    mixture: dict[str, Any] | None = Field(
        description="the mix stage's report (targets vs achieved, epochs), as written")
    selection: Selection | None
    dedup: list[Dedup]
    shards: Shards | None
    plan: Plan | None
    config: dict[str, str | None] | None = Field(description="the run's resolved config.yaml and its hash")
    processing: list[dict[str, Any]] = Field(description="every stage with its params, in order")
    timings: list[dict[str, Any]] = Field(description="wall seconds and worker seconds per stage")
    estimates: list[dict[str, str]] = Field(description="which fields are estimates, and how they are made")


def validate(stats: dict) -> dict:
    """`stats` checked against the schema (raises pydantic's ValidationError if it is not)."""
    Stats.model_validate(stats)
    return stats


def json_schema() -> dict:
    return Stats.model_json_schema(by_alias=True)
