"""The `mix` stage: sample and repeat documents so that domains (and sources) reach target
shares of the *tokens*, BloombergGPT-style, and report what it did.

    - mix: {targets: {financial: 0.51, general: 0.49}, max_epochs: 4, seed: 0}
    - mix:                                  # nested: shares of the total per source
        targets: {financial: {fin_web: 0.42, fin_news: 0.09}, general: {pile: 0.26, c4: 0.23}}
        total_tokens: 50_000_000            # a budget; default: use everything, keep the ratios

Tokens are counted with `tokenizer` (a sentencepiece model) when given; otherwise they are
estimated as UTF-8 bytes / `bytes_per_token` (fast; real tokens per byte differ by domain by
~20%), and the `tokenize` stage corrects the estimate with the real counts
(`tokenization.plan.trim_to_mixture`). Per source (domain, source): target tokens =
share x total; needing `e` epochs of its tokens it gets floor(e) whole epochs plus a seeded
sample of documents for the fraction (e < 1 down-samples), at most `max_epochs`. Without a
budget the total is the largest at which every document is used at least once, lowered when
that would need more than `max_epochs` of a source. A target the cap keeps from being met
gives a warning naming the share achieved instead. Repeated copies get ids `<id>#epoch<k>`,
and every output row records `metadata.mix = {original_id, epoch, rank}`. Epoch `k`'s copies
go to `part-e<kkk>-*.parquet`, so repeats are far apart in input order. The report (targets
vs achieved per domain and source, epochs, documents, tokens, warnings) is the stage's
`_manifest.json` field `mixture`.
"""

from __future__ import annotations

import json
import math
import sys
import zlib
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from pipeline import storage
from pipeline.io import file_sha256, write_parquet
from pipeline.record import metadata_to_json, rejected_schema
from pipeline.stage import GlobalStage, StageParams, register


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


def count_part(in_path: str, tokenizer: str | None, bytes_per_token: float) -> dict[str, list]:
    """Domain, source and tokens (exact or estimated) of every row; runs on a Dask worker."""
    table = storage.read_table(in_path, columns=["domain", "source", "text"])
    texts = table.column("text").to_pylist()
    n_bytes = [len(t.encode("utf-8")) if t else 0 for t in texts]
    if tokenizer:
        from tokenization.encode import count_part_tokens

        tokens = count_part_tokens(in_path, tokenizer)
    else:
        tokens = [math.ceil(b / bytes_per_token) for b in n_bytes]
    return {"domain": table.column("domain").to_pylist(), "source": table.column("source").to_pylist(),
            "tokens": tokens, "bytes": n_bytes}


def allocate(available: dict, targets: dict, total: float | None, max_epochs: float) -> tuple[float, dict]:
    """(total tokens, {key: epochs}) for sources with `available` tokens and target shares."""
    present = {k: t for k, t in targets.items() if t > 0 and available.get(k, 0) > 0}
    if not present:
        return 0.0, {}
    if total is None:
        use_all = max(available[k] / t for k, t in present.items())
        total = min(use_all, min(available[k] * max_epochs / t for k, t in present.items()))
    return total, {k: min(t * total / available[k], max_epochs) for k, t in present.items()}


def select(tokens: np.ndarray, epochs: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Copies as (document, epoch, rank) arrays: whole epochs, then a sampled prefix of one
    seeded permutation for the fraction; rank orders copies by priority (lowest first)."""
    n = len(tokens)
    order = rng.permutation(n)
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    full = math.floor(epochs + 1e-9)
    doc = [np.tile(np.arange(n), full)]
    epoch = [np.repeat(np.arange(full), n)]
    wanted = (epochs - full) * tokens.sum()
    if wanted > 0:
        cumulative = np.cumsum(tokens[order])
        m = int(np.searchsorted(cumulative, wanted))  # m + 1 documents reach `wanted`
        below = cumulative[m - 1] if m else 0
        if m < n and cumulative[m] - wanted <= wanted - below:
            m += 1
        doc.append(order[:m])
        epoch.append(np.full(m, full))
    doc_a, epoch_a = np.concatenate(doc).astype(np.int64), np.concatenate(epoch).astype(np.int64)
    return doc_a, epoch_a, epoch_a * n + position[doc_a]


@register
class Mix(GlobalStage):
    """Sample/repeat documents to target token shares per domain and source; report it."""

    name = "mix"
    Params = MixParams

    def check(self) -> None:
        if self.params.tokenizer is not None and not storage.isfile(self.params.tokenizer):
            raise ValueError(f"mix.tokenizer: {self.params.tokenizer!r} does not exist")

    def fingerprint_extra(self) -> str | None:
        """Exact token counts depend on the tokenizer's bytes, not only its path."""
        model = self.params.tokenizer
        return file_sha256(model) if model is not None and storage.isfile(model) else None

    def run(self, ctx) -> dict[str, Any]:
        p = self.params
        seed = ctx.seed if p.seed is None else p.seed
        paths = ctx.input.paths()
        counted = ctx.map(count_part, paths, "count", tokenizer=p.tokenizer, bytes_per_token=p.bytes_per_token)
        docs = _Docs(counted)
        domain_targets, nested = leaf_targets(p.targets)
        docs.classify(domain_targets, nested)
        targets = docs.source_targets(domain_targets, nested)
        available = {k: int(docs.tokens[docs.members(k)].sum()) for k in targets}
        total, epochs = allocate(available, targets, p.total_tokens, p.max_epochs)
        copies = {}
        for key in sorted(epochs, key=str):
            index = docs.members(key)
            doc, epoch, rank = select(docs.tokens[index], epochs[key], _rng(seed, key))
            copies[key] = (index[doc], epoch, rank)  # global row index, epoch, rank
        work = docs.work_by_part(copies, len(paths))
        written = ctx.client.gather(ctx.client.map(write_mix_part, paths, work, out_dir=ctx.dir, pure=False))
        ctx.commit_parts(name for names in written for name in names)
        report = _report(docs, copies, targets, available, total, p, seed, domain_targets, nested)
        _fill_stats(ctx.stats, docs, copies)
        for line in report["warnings"]:
            print(f"[{ctx.name}] warning: {line}", file=sys.stderr, flush=True)
        return {"mixture": report}


def _rng(seed: int, key: tuple) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(f"{key[0]}/{key[1]}".encode())])


class _Docs:
    """Every input row (in part, row order) with its key (domain, source) or its reason."""

    def __init__(self, counted: list[dict]):
        self.part = np.concatenate([np.full(len(c["tokens"]), i) for i, c in enumerate(counted)]
                                   + [[]]).astype(np.int64)
        self.row = np.concatenate([np.arange(len(c["tokens"])) for c in counted] + [[]]).astype(np.int64)
        self.domain = [d for c in counted for d in c["domain"]]
        self.source = [s for c in counted for s in c["source"]]
        self.tokens = np.asarray([t for c in counted for t in c["tokens"]], dtype=np.int64)
        self.bytes = np.asarray([b for c in counted for b in c["bytes"]], dtype=np.int64)
        self.key_id = np.full(len(self.tokens), -1, dtype=np.int64)  # index into self.key_names
        self.key_names: list[tuple] = []
        self.reason = np.full(len(self.tokens), "", dtype=object)

    def classify(self, domain_targets: dict, nested: dict) -> None:
        codes: dict[tuple, int] = {}
        for i, (domain, source) in enumerate(zip(self.domain, self.source)):
            if domain is None:
                self.reason[i] = "missing_domain"
            elif domain not in domain_targets:
                self.reason[i] = "domain_not_in_targets"
            elif domain in nested and source not in nested[domain]:
                self.reason[i] = "source_not_in_targets"
            elif self.tokens[i] == 0:
                self.reason[i] = "empty_text"
            else:
                self.key_id[i] = codes.setdefault((domain, source), len(codes))
        self.key_names = list(codes)

    def members(self, key: tuple) -> np.ndarray:
        if key not in self.key_names:
            return np.zeros(0, np.int64)
        return np.flatnonzero(self.key_id == self.key_names.index(key))

    def source_targets(self, domain_targets: dict, nested: dict) -> dict[tuple, float]:
        """Share per (domain, source): nested shares as given; inside a flat domain, each
        source's share of the domain's available tokens."""
        targets = {(d, s): share for d, sources in nested.items() for s, share in sources.items()}
        for domain, share in domain_targets.items():
            if domain in nested:
                continue
            sizes = {k[1]: int(self.tokens[self.members(k)].sum()) for k in self.key_names if k[0] == domain}
            whole = sum(sizes.values())
            targets.update({(domain, s): share * n / whole for s, n in sizes.items()}
                           if whole else {(domain, None): share})
        return targets

    def work_by_part(self, copies: dict, n_parts: int) -> list[dict]:
        """Per input part: its copies (row, epoch, rank) and its rejected rows (row, reason)."""
        glob, epoch, rank = (np.concatenate([c[j] for c in copies.values()] + [[]]).astype(np.int64) for j in range(3))
        order = np.lexsort((epoch, self.row[glob], self.part[glob]))
        glob, epoch, rank = glob[order], epoch[order], rank[order]
        used = np.zeros(len(self.tokens), dtype=bool)
        used[glob] = True
        self.reason[~used & (self.reason == "")] = "not_sampled"
        work = [{"rows": [], "epochs": [], "ranks": [], "rejected": []} for _ in range(n_parts)]
        for g, e, r in zip(glob.tolist(), epoch.tolist(), rank.tolist()):
            w = work[self.part[g]]
            w["rows"].append(int(self.row[g]))
            w["epochs"].append(e)
            w["ranks"].append(r)
        for i in np.flatnonzero(~used):
            work[self.part[i]]["rejected"].append((int(self.row[i]), f"mix.{self.reason[i]}"))
        return work


def write_mix_part(in_path: str, work: dict, out_dir: str) -> list[str]:
    """Write one input part's chosen copies by epoch, and its rejected rows; on a worker.
    Returns the names of the parts written."""
    table = storage.read_table(in_path)
    stem = storage.stem(in_path).removeprefix("part-")
    names = []
    rows, epochs, ranks = (np.asarray(work[k], dtype=np.int64) for k in ("rows", "epochs", "ranks"))
    for epoch in sorted(set(epochs.tolist())):
        pick = epochs == epoch
        part = table.take(pa.array(rows[pick]))
        ids = part.column("id").to_pylist()
        metas = []
        for doc_id, meta, rank in zip(ids, part.column("metadata").to_pylist(), ranks[pick].tolist()):
            metadata = json.loads(meta) if meta else {}
            metadata["mix"] = {"original_id": doc_id, "epoch": epoch, "rank": rank}
            metas.append(metadata_to_json(metadata))
        new_ids = ids if epoch == 0 else [f"{i}#epoch{epoch}" for i in ids]
        part = part.set_column(part.schema.get_field_index("id"), part.schema.field("id"),
                               pa.array(new_ids, pa.string()))
        part = part.set_column(part.schema.get_field_index("metadata"), "metadata", pa.array(metas, pa.string()))
        names.append(f"part-e{epoch:03d}-{stem}.parquet")
        write_parquet(part, storage.join(out_dir, names[-1]))
    if work["rejected"]:
        rejected = work["rejected"]
        part = table.take(pa.array([r for r, _ in rejected], type=pa.int64()))
        part = part.append_column("stage", pa.array(["mix"] * len(rejected), pa.string()))
        part = part.append_column("reason", pa.array([r for _, r in rejected], pa.string()))
        out = storage.join(out_dir, "rejected", storage.basename(in_path))
        write_parquet(part.select(rejected_schema(table.schema).names), out)
    return names


def _entry(target: float, tokens: int, docs: int, available: int, total: int) -> dict:
    return {"target": round(target, 6), "achieved": round(tokens / total, 6) if total else 0.0,
            "tokens": tokens, "documents": docs, "available_tokens": available,
            "epochs": round(tokens / available, 4) if available else 0.0}


def _report(docs, copies, targets, available, total, p, seed, domain_targets, nested) -> dict:
    chosen = {k: (int(docs.tokens[c[0]].sum()), len(c[0]), len(set(c[0].tolist()))) for k, c in copies.items()}
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
    entry["available_documents"] = len(docs.members(key))
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


def _fill_stats(stats, docs: _Docs, copies: dict) -> None:
    stats.docs_in = len(docs.tokens)
    stats.bytes_in = int(docs.bytes.sum())
    used = np.zeros(len(docs.tokens), dtype=bool)
    for index, epoch, _ in copies.values():
        used[index] = True
        stats.docs_out += len(index)
        stats.bytes_out += int(docs.bytes[index].sum())
        stats.count("repeated_copies", int((epoch > 0).sum()))
        stats.count("tokens_out", int(docs.tokens[index].sum()))
    for i in np.flatnonzero(~used):
        stats.reject(f"mix.{docs.reason[i]}", int(docs.bytes[i]))
