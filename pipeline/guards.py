"""Run-level guards: a run that loses a whole source, reads nothing from an input, leaves a mix
domain empty or quarantines files fails (exit 3, one line) instead of exiting 0 with the reason
buried in a manifest.

    guards:                          # the run config's section; these are the defaults
      max_loss_fraction: 0.99        # a source that loses this fraction of its documents or more fails
      mix_share_tolerance: 0.02      # a mix domain whose token share is off its target by more fails
      max_quarantined_files: 0       # more quarantined input files than this fail (at the end)
      allow_empty_inputs: false      # an input that yields no document fails

Every check reads the manifests the runner writes, never the documents: the read stage's
`inputs` (per input: documents read and kept, reasons, quarantined files), every stage's
`stats.rejected_by_source` (per source and reason; filled on the workers, part by part) and the
mix stage's `mixture` report. The runner checks after every stage (a run of fused map stages
counts as one), so a run stops right after the stage that emptied an input or a source;
quarantined files are counted once the run is done (a damaged file loses only its own records).
A failure deletes nothing: the stages that finished stay committed, and a rerun resumes.
`thresher run --no-guards` turns them all off.

A source's loss is the share of the documents read for it that some stage rejected. Rejections
that only shape a mixture (the stage's `sampling_reasons`: the mix's `not_sampled`, tokenize's
trimming) are not losses; the mix's `missing_domain` and `domain_not_in_targets` are. A domain
needs no check of its own: it loses at most what its worst source loses.
"""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace
from typing import Any

import pyarrow as pa
from pydantic import Field

from pipeline import storage
from pipeline.options import Frozen
from pipeline.stage import load_registry

TOP_REASONS = 3
# A reader's reason for rejecting or quarantining everything -> the input key to look at.
HINTS = {"read.missing_text_field": "text_field", "read.text_not_a_string": "text_field", "read.wrong_format": "format",
         "read.invalid_json": "format", "read.invalid_utf8": "format", "read.not_an_object": "format"}


class GuardOptions(Frozen):
    """The `guards:` section; `null` turns one guard off, `thresher run --no-guards` all of them."""

    max_loss_fraction: float | None = Field(
        0.99, gt=0, le=1, description="fail when a source loses this fraction of its documents or more")
    mix_share_tolerance: float | None = Field(
        0.02, ge=0, lt=1, description="fail when a mix target domain has no documents or its token share is "
        "off its target by more")
    max_quarantined_files: int | None = Field(
        0, ge=0, description="fail when more input files than this are quarantined")
    allow_empty_inputs: bool = Field(False, description="let an input yield no document")


class GuardFailed(RuntimeError):
    """The run finished its stages (or stopped after one) but a guard failed; `summary` is the
    run's receipt when every stage ran."""

    def __init__(self, problems: list[str], summary: dict | None = None):
        self.problems, self.summary = problems, summary
        also = problems[1:4] + ([f"{len(problems) - 4} more"] if len(problems) > 4 else [])
        more = f"; also: {'; '.join(also)}" if also else ""
        super().__init__(f"guard: {problems[0]}{more} (finished stages are kept: fix the cause and rerun "
                         "to resume, or rerun with --no-guards)")


# -- counting rejections per source ----------------------------------------------------------

def count_rejected(table: pa.Table) -> Counter:
    """Rejected documents per (source, reason) of one rejected table."""
    if not table.num_rows:
        return Counter()
    grouped = table.select(["source", "reason"]).group_by(["source", "reason"]).aggregate([([], "count_all")])
    return Counter({(s, r): n for s, r, n in zip(*(grouped.column(c).to_pylist()
                                                   for c in ("source", "reason", "count_all")))})


def _count_file(path: str) -> dict:
    counts = count_rejected(storage.read_table(path, columns=["source", "reason"]))
    return {f"{s}\t{r}": n for (s, r), n in counts.items()}  # tab: no source name holds one


def _add(*counts: dict) -> dict:
    return dict(sum((Counter(c) for c in counts), Counter()))


def count_rejected_files(client, directory: str) -> Counter:
    """Rejected documents per (source, reason) in `directory/rejected/`, counted on the workers
    (a global stage writes its rejected rows itself; the runner counts them afterwards)."""
    from pipeline.aggregate import map_reduce  # distributed: not imported with the config

    folder = storage.join(directory, "rejected")
    paths = [storage.join(folder, rel) for rel in storage.walk_files(folder) if rel.endswith(".parquet")]
    ctx = SimpleNamespace(client=client, name=storage.basename(directory), progress=False)
    merged = map_reduce(ctx, _count_file, paths, _add, "count-rejected") or {}
    return Counter({tuple(key.split("\t", 1)): n for key, n in merged.items()})


# -- the checks --------------------------------------------------------------------------------

def _top(reasons: dict[str, int]) -> str:
    top = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_REASONS]
    return ", ".join(f"{reason} {n}" for reason, n in top)


def _sampling_reasons(stage: str) -> frozenset[str]:
    cls = load_registry().get(stage)  # None for the read stage
    return getattr(cls, "sampling_reasons", frozenset())


def source_losses(manifests: list[dict]) -> dict[str, dict[str, Any]]:
    """Per source: documents read, documents lost over the stages so far, and the losses by
    reason (most first). Empty when the read manifest has no `inputs` (an older thresher)."""
    read: Counter = Counter()
    domains: dict[str, set] = {}
    for entry in manifests[0].get("inputs", []):
        read[entry["source"]] += entry["docs_in"]
        domains.setdefault(entry["source"], set()).add(entry["domain"])
    lost: dict[str, Counter] = {source: Counter() for source in read}
    for manifest in manifests:
        exempt = _sampling_reasons(manifest["stage"])
        for source, reasons in manifest["stats"].get("rejected_by_source", {}).items():
            lost.setdefault(source, Counter()).update({r: n for r, n in reasons.items() if r not in exempt})
    out = {}
    for source in read:
        n_lost = min(sum(lost[source].values()), read[source])  # repeated copies can be rejected too
        out[source] = {"domain": ", ".join(sorted(d for d in domains[source] if d)) or None,
                       "documents_read": read[source], "documents_lost": n_lost,
                       "loss": round(n_lost / read[source], 6) if read[source] else 0.0,
                       "reasons": dict(sorted(lost[source].items(), key=lambda kv: (-kv[1], kv[0])))}
    return out


def empty_inputs(read_manifest: dict) -> list[tuple[int, str]]:
    """(input index, problem) of every input that yielded no document: why, and the key to check."""
    problems = []
    for entry in read_manifest.get("inputs", []):
        if entry["docs_out"]:
            continue
        where = f"inputs[{entry['index']}] ({entry['path']}, source {entry['source']})"
        quarantined = {r: len(files) for r, files in entry["quarantined_files"].items()}
        if entry["docs_in"]:
            what = f"all {entry['docs_in']} documents rejected by the reader ({_top(entry['rejected'])})"
        elif quarantined:
            what = "no documents read: " + ", ".join(f"{r} {n} file(s)" for r, n in quarantined.items())
        else:
            skipped = _top(entry["skipped"])
            what = f"no documents read ({skipped or 'its files hold no records'})"
        hint = next((HINTS[r] for r in [*entry["rejected"], *quarantined] if r in HINTS), None)
        check = f"; check inputs[{entry['index']}].{hint}" if hint else ""
        problems.append((entry["index"], f"{where}: {what}{check}"))
    return problems


def lossy_sources(losses: dict[str, dict], max_loss: float, reported: set[str]) -> list[str]:
    problems = []
    for source, s in losses.items():
        if source in reported or not s["documents_read"] or s["loss"] < max_loss:
            continue
        domain = f" (domain {s['domain']})" if s["domain"] else ""
        problems.append(f"source {source}{domain} lost {s['loss']:.1%} of its {s['documents_read']} documents "
                        f"({_top(s['reasons'])}); guards.max_loss_fraction is {max_loss:g}")
    return problems


def mix_shares(manifest: dict, tolerance: float) -> list[str]:
    """Target domains of a mix stage that got no documents, or a share off its target."""
    domains = (manifest.get("mixture") or {}).get("domains", {})
    empty = [f"mix: target domain {d} ({e['target']:.1%} of tokens) has no documents{_why_no_documents(manifest)}"
             for d, e in domains.items() if not e["available_tokens"]]
    if empty:  # the other domains' shares are off because of the empty one
        return empty
    problems = []
    for domain, entry in domains.items():
        if abs(entry["achieved"] - entry["target"]) > tolerance:
            problems.append(f"mix: domain {domain} got {entry['achieved']:.1%} of the tokens, target "
                            f"{entry['target']:.1%}; guards.mix_share_tolerance is {tolerance:g}")
    return problems


def _why_no_documents(manifest: dict) -> str:
    """The mix's drops of documents without a (targeted) domain, by source."""
    dropped = []
    for source, reasons in manifest["stats"].get("rejected_by_source", {}).items():
        for reason in ("mix.missing_domain", "mix.domain_not_in_targets"):
            if reasons.get(reason):
                dropped.append(f"source {source}: {reason} {reasons[reason]}")
    return f"; dropped instead: {', '.join(dropped)}" if dropped else "; no input or classifier labels any"


def quarantined_files(read_manifest: dict, limit: int) -> list[str]:
    entries = read_manifest["stats"].get("quarantine", [])
    files = sorted({q["file"] for q in entries})
    if len(files) <= limit:
        return []
    reasons = Counter(q["reason"] for q in {q["file"]: q for q in entries}.values())
    shown = ", ".join(files[:3]) + (", ..." if len(files) > 3 else "")
    return [f"{len(files)} input file(s) quarantined ({_top(reasons)}: {shown}); "
            f"guards.max_quarantined_files is {limit}"]


def _all_empty(read_manifest: dict, empty: list[tuple[int, str]]) -> set[str]:
    """Sources whose every input is reported empty already (their loss says nothing more)."""
    inputs = read_manifest.get("inputs", [])
    flagged = {index for index, _ in empty}
    return {e["source"] for e in inputs} - {e["source"] for e in inputs if e["index"] not in flagged}


class Guards:
    """The checks of one run's `guards:` options, over the manifests of the stages so far."""

    def __init__(self, options: GuardOptions):
        self.options = options

    def problems(self, manifests: list[dict], final: bool = False) -> list[str]:
        o = self.options
        empty = [] if o.allow_empty_inputs else empty_inputs(manifests[0])
        out = [problem for _, problem in empty]
        if o.max_loss_fraction is not None:
            out += lossy_sources(source_losses(manifests), o.max_loss_fraction, _all_empty(manifests[0], empty))
        if o.mix_share_tolerance is not None:
            out += [p for m in manifests if "mixture" in m for p in mix_shares(m, o.mix_share_tolerance)]
        if final and o.max_quarantined_files is not None:
            out += quarantined_files(manifests[0], o.max_quarantined_files)
        return out

    def check(self, manifests: list[dict], summary: dict | None = None) -> None:
        """Raise `GuardFailed` naming every problem; `summary` given: the run is done."""
        if problems := self.problems(manifests, final=summary is not None):
            raise GuardFailed(problems, summary)


def format_sources(losses: dict[str, dict]) -> list[str]:
    """One summary line per source: read, lost, and the top reasons."""
    lines = []
    for source, s in losses.items():
        reasons = f": {_top(s['reasons'])}" if s["documents_lost"] else ""
        lines.append(f"  source {source:<18} read {s['documents_read']:>8}  lost {s['documents_lost']:>8} "
                     f"({s['loss']:.1%}){reasons}")
    return lines
