"""The `mix` stage: sample and repeat documents so that domains (and sources) reach target
shares of the *tokens*, BloombergGPT-style, and report what it did.

    - mix: {targets: {financial: 0.51, general: 0.49}, max_epochs: 4, seed: 0}
    - mix:                                  # nested: shares of the total per source
        targets: {financial: {fin_web: 0.42, fin_news: 0.09}, general: {pile: 0.26, c4: 0.23}}
        total_tokens: 50_000_000            # a budget; default: use everything, keep the ratios

Tokens are counted with `tokenizer` (a sentencepiece model) when given; otherwise they are
estimated as UTF-8 bytes / `bytes_per_token` (fast; real tokens per byte differ by domain by
~20%), and the `tokenize` stage corrects the estimate with the real counts
(`tokenization.plan.find_trims`). Per source (domain, source): target tokens =
share x total; needing `e` epochs of its tokens it gets floor(e) whole epochs plus a seeded
sample of documents for the fraction (e < 1 down-samples), at most `max_epochs`: the
documents in order of a seeded hash of their id until their tokens reach the fraction's. Without a
budget the total is the largest at which every document is used at least once, lowered when
that would need more than `max_epochs` of a source. A target the cap keeps from being met
gives a warning naming the share achieved instead. Repeated copies get ids `<id>#epoch<k>`,
and every output row records `metadata.mix = {original_id, epoch, rank}`. Epoch `k`'s copies
go to `part-e<kkk>-*.parquet`, so repeats are far apart in input order. The report (targets
vs achieved per domain and source, epochs, documents, tokens, warnings) is the stage's
`_manifest.json` field `mixture`.

The client plans from per-key sums only (`tokenization.mix_parts` does the per-document work on
the workers, part by part, and the sums are merged in a tree there): it holds a few numbers
per (domain, source) and, while a pass runs, one future per part, whatever the number of
documents.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
from pydantic import Field, field_validator

from pipeline import storage
from pipeline.aggregate import map_reduce
from pipeline.context import GlobalResult
from pipeline.io import file_sha256
from pipeline.stage import GlobalStage, StageParams, register
from pipeline.stats import StageStats
from tokenization import mix_parts as parts

COLLECT_LIMIT = 200_000  # candidates sorted on the client once a key's digit holds this few


class MixParams(StageParams):
    targets: dict[str, float | dict[str, float]] = Field(
        description="domain -> share of tokens, or domain -> {source: share of the total}")
    total_tokens: int | None = Field(None, gt=0, description="token budget (default: use everything, keep ratios)")
    max_epochs: float = Field(4.0, gt=0, description="times one source's documents may be used at most")
    seed: int | None = Field(None, description="sampling seed (default: the run's seed)")
    tokenizer: str | None = Field(None, description="sentencepiece .model for exact counts (default: estimate)")
    bytes_per_token: float = Field(4.0, gt=0, description="the estimate's UTF-8 bytes per token")

    @field_validator("targets")
    @classmethod
    def _shares(cls, targets: dict) -> dict:
        if not targets:
            raise ValueError("name at least one domain with its share of tokens")
        total = 0.0
        for domain, share in targets.items():
            shares = share.values() if isinstance(share, dict) else [share]
            if not shares or any(not 0 < s <= 1 for s in shares):
                raise ValueError(f"{domain}: shares must be in (0, 1] (a nested domain names at least one source)")
            total += sum(shares)
        if abs(total - 1) > 0.01:
            raise ValueError(f"shares add up to {total:.4f}; they must add up to 1")
        return targets


def leaf_targets(targets: dict) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Normalised (domain shares, nested source shares) of a `targets` mapping."""
    total = sum(sum(v.values()) if isinstance(v, dict) else v for v in targets.values())
    domains = {d: (sum(v.values()) if isinstance(v, dict) else v) / total for d, v in targets.items()}
    nested = {d: {s: x / total for s, x in v.items()} for d, v in targets.items() if isinstance(v, dict)}
    return domains, nested


def allocate(available: dict, targets: dict, total: float | None, max_epochs: float) -> tuple[float, dict]:
    """(total tokens, {key: epochs}) for sources with `available` tokens and target shares."""
    present = {k: t for k, t in targets.items() if t > 0 and available.get(k, 0) > 0}
    if not present:
        return 0.0, {}
    if total is None:
        use_all = max(available[k] / t for k, t in present.items())
        total = min(use_all, min(available[k] * max_epochs / t for k, t in present.items()))
    return total, {k: min(t * total / available[k], max_epochs) for k, t in present.items()}


@register
class Mix(GlobalStage):
    """Sample/repeat documents to target token shares per domain and source; report it."""

    name = "mix"
    Params = MixParams
    sampling_reasons = frozenset({"mix.not_sampled"})
    produces = ("mixture",)  # the report in its _manifest.json, which tokenize corrects by real tokens

    def check(self) -> None:
        if self.params.tokenizer is not None and not storage.isfile(self.params.tokenizer):
            raise ValueError(f"mix.tokenizer: {self.params.tokenizer!r} does not exist")

    def fingerprint_extra(self) -> str | None:
        """Exact token counts depend on the tokenizer's bytes, not only its path."""
        model = self.params.tokenizer
        return file_sha256(model) if model is not None and storage.isfile(model) else None

    def run(self, ctx) -> GlobalResult:
        p = self.params
        seed = ctx.seed if p.seed is None else p.seed
        paths = ctx.input.paths()
        work = [ctx.path("_work", storage.basename(x)) for x in paths]
        domain_targets, nested = leaf_targets(p.targets)
        counted = map_reduce(ctx, parts.count_part, list(zip(paths, work)), parts.add_counts, "count",
                             domain_targets=domain_targets, nested=nested, tokenizer=p.tokenizer,
                             bytes_per_token=p.bytes_per_token, seed=seed) or parts.add_counts()
        docs = {tuple(json.loads(k)): v for k, v in counted["keys"].items()}  # key -> [docs, tokens, bytes]
        targets = source_targets(docs, domain_targets, nested)
        available = {k: docs[k][1] if k in docs else 0 for k in targets}
        total, epochs = allocate(available, targets, p.total_tokens, p.max_epochs)
        plans = plan_copies(ctx, work, epochs, available)
        items = [(i, path, w) for i, (path, w) in enumerate(zip(paths, work))]
        written = map_reduce(ctx, parts.write_part, items, parts.add_written, "write", plans=plans,
                             out_dir=ctx.dir) or parts.add_written()
        storage.rm(ctx.path("_work"))
        chosen = {tuple(json.loads(k)): tuple(v) for k, v in written["keys"].items()}
        report = _report(docs, chosen, targets, available, total, p, seed, domain_targets, nested)
        report["warnings"] += _unplaced_warnings(written["rejected"])
        for line in report["warnings"]:
            print(f"[{ctx.name}] warning: {line}", file=sys.stderr, flush=True)
        return GlobalResult(_stats(counted, written, bool(epochs)), tuple(written["parts"]), {"mixture": report})


def source_targets(docs: dict, domain_targets: dict, nested: dict) -> dict[tuple, float]:
    """Share per (domain, source): nested shares as given; inside a flat domain, each
    source's share of the domain's available tokens (`docs`: key -> [documents, tokens, bytes])."""
    targets = {(d, s): share for d, sources in nested.items() for s, share in sources.items()}
    for domain, share in domain_targets.items():
        if domain in nested:
            continue
        sizes = {k[1]: v[1] for k, v in docs.items() if k[0] == domain}
        whole = sum(sizes.values())
        targets.update({(domain, s): share * n / whole for s, n in sizes.items()} if whole else {(domain, None): share})
    return targets


def plan_copies(ctx, work: list[str], epochs: dict, available: dict) -> dict[str, dict]:
    """Per key (as `parts.key_name`): whole epochs, and where its seeded sample for the
    fraction of an epoch stops. The sample is the documents in order of sampling key (then
    part, row) until their tokens reach the fraction's; the document that crosses it is
    taken when that lands closer to the wanted tokens (a tie takes it)."""
    plans, wanted = {}, {}
    for key in sorted(epochs, key=str):
        full = math.floor(epochs[key] + 1e-9)
        name = parts.key_name(*key)
        plans[name] = {"full": full, "take": "none", "cut": None}
        if (epochs[key] - full) * available[key] > 0:
            wanted[name] = (epochs[key] - full) * available[key]
    for name, cut in find_cuts(ctx, work, wanted).items():
        plans[name].update(cut)
    return plans


def find_cuts(ctx, work: list[str], wanted: dict[str, float]) -> dict[str, dict]:
    """A token-weighted radix select on the sampling keys, all keys at once: each pass
    histograms the next 8 bits of the keys still in play (documents and tokens per digit,
    summed in a tree on the workers) and narrows every key to the digit where its running
    tokens reach what it wants; once a digit holds at most COLLECT_LIMIT documents (or all
    64 bits are fixed) its documents are fetched and the cut is found among them."""
    states = {name: (0, 0) for name in wanted}  # prefix, bits
    need, cuts = dict(wanted), {}
    while states:
        hists = map_reduce(ctx, parts.digit_hist, work, parts.add_hists, "cut-pass", states=states)
        collect = {}
        for name, (prefix, bits) in states.items():
            counts, tokens = hists[name]
            before = np.concatenate([[0], np.cumsum(tokens)])
            digit = int(np.searchsorted(before[1:], need[name]))  # the first digit reaching it
            if digit == parts.DIGITS:  # rounding left the want above every token: take all
                cuts[name] = {"take": "all"}
                continue
            need[name] -= float(before[digit])
            states[name] = ((prefix << parts.DIGIT_BITS) | digit, bits + parts.DIGIT_BITS)
            if counts[digit] <= COLLECT_LIMIT or bits + parts.DIGIT_BITS == 64:
                collect[name] = states[name]
        if collect:
            items = list(enumerate(work))
            pool = map_reduce(ctx, parts.candidates, items, parts.concat_candidates, "cut-candidates",
                              states=collect)
            for name in collect:
                cuts[name] = _cut(pool[name], need[name])
        states = {n: s for n, s in states.items() if n not in cuts}
    return cuts


def _cut(pool: np.ndarray, want: float) -> dict:
    """The cut among candidates (sampling key, part, row, tokens) that want `want` tokens."""
    order = np.lexsort((pool[2], pool[1], pool[0]))
    cumulative = np.cumsum(pool[3][order].astype(np.int64))
    m = int(np.searchsorted(cumulative, want))  # taking m + 1 documents reaches `want`
    if m >= len(order):
        return {"take": "all"}
    below = cumulative[m - 1] if m else 0
    include = bool(cumulative[m] - want <= want - below)
    k, part, row = (int(pool[j][order[m]]) for j in range(3))
    return {"take": "cut", "cut": (k, part, row, include)}


def _entry(target: float, tokens: int, docs: int, available: int, total: int) -> dict:
    return {"target": round(target, 6), "achieved": round(tokens / total, 6) if total else 0.0,
            "tokens": tokens, "documents": docs, "available_tokens": available,
            "epochs": round(tokens / available, 4) if available else 0.0}


def _report(docs, chosen, targets, available, total, p, seed, domain_targets, nested) -> dict:
    """`chosen`: key -> (tokens, copies, unique documents) written; `docs`: key -> [documents,
    tokens, bytes] available."""
    achieved_total = sum(c[0] for c in chosen.values())
    domains: dict[str, dict] = {}
    for d, share in domain_targets.items():
        keys = [k for k in targets if k[0] == d]
        tok, n = (sum(chosen.get(k, (0, 0, 0))[i] for k in keys) for i in (0, 1))
        entry = _entry(share, tok, n, sum(available.get(k, 0) for k in keys), achieved_total)
        entry["sources"] = {str(k[1]): _source_entry(k, targets[k], chosen, available, docs, achieved_total)
                            for k in keys}
        domains[d] = entry
    return {"token_count": "sentencepiece" if p.tokenizer else "estimate",
            "tokenizer": p.tokenizer, "bytes_per_token": None if p.tokenizer else p.bytes_per_token,
            "budget": p.total_tokens, "max_epochs": p.max_epochs, "seed": seed,
            "planned_tokens": round(total), "total_tokens": achieved_total,
            "targets": {d: round(s, 6) for d, s in domain_targets.items()},
            "source_targets": {d: {s: round(x, 6) for s, x in v.items()} for d, v in nested.items()},
            "domains": domains, "warnings": _warnings(domains, targets, available, total, p.max_epochs)}


def _source_entry(key, target, chosen, available, docs, total) -> dict:
    tokens, n, unique = chosen.get(key, (0, 0, 0))
    entry = _entry(target, tokens, n, available.get(key, 0), total)
    entry["unique_documents"] = unique
    entry["available_documents"] = docs[key][0] if key in docs else 0
    e = entry["epochs"]
    entry["full_epochs"] = math.floor(tokens / available[key] + 1e-9) if available.get(key) else 0
    entry["decision"] = ("absent" if not available.get(key) else "repeat" if e > 1.0001
                         else "down-sample" if e < 0.9999 else "all")
    return entry


def _warnings(domains, targets, available, total, max_epochs) -> list[str]:
    out = []
    for key, share in sorted(targets.items(), key=str):
        name = key[0] if key[1] is None else f"{key[0]}/{key[1]}"
        if available.get(key, 0) == 0:
            out.append(f"{name}: target {share:.2%} of tokens but no documents; its share is 0")
        elif share * total / available[key] > max_epochs * (1 + 1e-9):
            need = share * total / available[key]
            got = domains[key[0]]["sources"][str(key[1])]["achieved"]
            out.append(f"{name}: target {share:.2%} of {round(total)} tokens needs {need:.2f} epochs but "
                       f"max_epochs is {max_epochs:g}; achieved {got:.2%} instead")
    for d, entry in domains.items():
        if abs(entry["achieved"] - entry["target"]) > 0.005:
            out.append(f"domain {d}: target {entry['target']:.2%} but achieved {entry['achieved']:.2%} "
                       f"of {sum(e['tokens'] for e in domains.values())} tokens")
    return out


def _unplaced_warnings(rejected: dict) -> list[str]:
    """Documents that no target could take (they count as lost in the run's guards)."""
    out = []
    if n := rejected.get("mix.missing_domain", [0])[0]:
        out.append(f"{n} document(s) have no domain and were dropped (mix.missing_domain); give their inputs "
                   "a `domain:` or classify them before the mix")
    if n := rejected.get("mix.domain_not_in_targets", [0])[0]:
        out.append(f"{n} document(s) have a domain that no target names and were dropped "
                   "(mix.domain_not_in_targets)")
    return out


def _stats(counted: dict, written: dict, any_copies: bool) -> StageStats:
    stats = StageStats(docs_in=counted["docs_in"], bytes_in=counted["bytes_in"], docs_out=written["docs_out"],
                       bytes_out=written["bytes_out"])
    if any_copies:
        stats.count("repeated_copies", written["repeated"])
        stats.count("tokens_out", written["tokens_out"])
    for reason, (n, n_bytes) in written["rejected"].items():
        stats.docs_rejected += n
        stats.bytes_rejected += n_bytes
        stats.rejected[reason] += n
        stats.rejected_bytes[reason] += n_bytes
    return stats
