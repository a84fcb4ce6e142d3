"""Where every encoded document goes: a validation shard, a training shard, or rejected/.

Decided from the encode tasks' `WORK/<part>/docs.parquet` (`tokenization.encode.DOCS_SCHEMA`),
deterministically from the seed and the documents and the same on any number of workers, with
the per-document work on the workers (`tokenization.plan_parts`): no process holds a row per
document. The client keeps a few numbers per domain and source, 64 bytes per part and domain
(its index spans) and, while a pass runs, one future per window of parts.

1. `choose_valid`: per domain, `valid_fraction` of the *original* documents (at least one when
   the domain has two or more): those with the smallest `valid_key`, a seeded hash of the
   original id that every copy of it shares. The (domain, key) pairs of the training rows are
   shuffled by key on Dask and made unique, then counted per domain in a histogram of the keys'
   top 16 bits; the keys of the one bin that holds the n-th smallest are gathered, and that key
   is the domain's threshold. The copies at or below it meet again in a shuffle by key; each
   original's lowest (epoch, rank, part, row) copy goes to the validation shard (its rows are
   written per part, `WORK/_plan/valid/`), and its other copies are dropped, so no validation
   text is ever trained on.
2. `find_trims`: the mix stage counts tokens by an estimate (or with another tokenizer); here
   the real counts correct it. The largest total at which every target key (domain, or
   domain/source for nested targets) still has enough tokens is kept, and each (domain, source)
   of a key drops the same fraction, highest mix rank first, then highest `trim_key`, then
   input order. The document where the dropped tokens reach the excess is found by a
   token-weighted radix select over (rank, trim_key), 8 bits a pass, then among the few
   documents of the last digit; it is dropped when that lands closer to the excess.
3. `write_fates` (per part): each document's fate, written to `WORK/<part>/fate.parquet`.
4. `assign_shards`: training documents in input order (part, row) fill shards of at most
   `max_shard_tokens` tokens (the longest run that fits, at least one document); each shard is
   a list of spans of the per-part temporary files, whose documents of the shard's fate it
   takes. Only the parts in which a shard ends are read again, to place the boundary.
"""

from __future__ import annotations

import dataclasses

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd

from pipeline import storage
from pipeline.aggregate import FANIN, map_reduce, n_partitions, persisted, shuffle_method
from pipeline.stats import StageStats
from tokenization import plan_parts as parts
from tokenization.mix_parts import add_hists, concat_candidates
from tokenization.plan_parts import COPY_OF_VALID, EMPTY, TRIMMED, VALID

__all__ = ["COPY_OF_VALID", "EMPTY", "TRIMMED", "VALID", "Planned", "plan", "target_key"]
PARTS_PER_TASK = 16  # encoded parts read by one task of the validation shuffles
COLLECT_LIMIT = 16_384  # a trim group's candidates (40 bytes each) are sorted in the client once this few remain
WRITTEN_META = pd.DataFrame({"written": pd.Series([], dtype="int64")})


@dataclasses.dataclass
class Planned:
    plans: list[dict]  # the shards: prefix, domain, runs [(part stem, first index, stop)], fate, documents, tokens
    correction: dict  # per target key: target, tokens_before, tokens_after
    stats: StageStats
    rejected_parts: list[int]  # positions of the parts with dropped rows


def target_key(domain: str, source: str | None, nested: set[str]) -> str:
    return f"{domain}/{source}" if domain in nested else domain


def plan(ctx, work: str, stems: list[str], valid_fraction: float, targets: dict[str, float], nested: set[str],
         max_shard_tokens: int) -> Planned:
    """Plan every document's fate and the shards (see the module's docstring). `targets`:
    {key: share} of the mix stage, or {} (nothing trimmed)."""
    folder = storage.join(work, "_plan")
    storage.rm(folder)  # a killed attempt's files
    items = list(enumerate(stems))
    if not items:
        return Planned([], {}, StageStats(), [])
    counted = map_reduce(ctx, parts.census, items, parts.add_census, "plan-count", work=work)
    names = sorted(counted["domains"])
    valid_dir = storage.join(folder, "valid")
    limits = choose_valid(ctx, work, items, names, valid_fraction, counted["train"], valid_dir)
    cuts, groups, correction = find_trims(ctx, work, items, names, limits, targets, nested)
    summary = map_reduce(ctx, parts.write_fates, items, parts.add_part_summaries, "fates", work=work, names=names,
                         limits=limits, valid_dir=valid_dir, cuts=cuts)
    for key, entry in correction.items():
        entry["tokens_after"] = sum(n for group, n in summary["kept"].items() if groups.get(group) == key)
    plans = assign_shards(work, stems, names, summary["spans"], max_shard_tokens)
    rejected = np.flatnonzero(summary["rejected"]).tolist()
    return Planned(plans, correction, summary["stats"], rejected)


# -- 1. validation -----------------------------------------------------------------------------

def _tree(pieces: list, combine):
    """`combine` of the delayed `pieces`, FANIN at a time."""
    while len(pieces) > 1:
        pieces = [dask.delayed(combine)(*pieces[i:i + FANIN]) for i in range(0, len(pieces), FANIN)]
    return pieces[0]


def choose_valid(ctx, work: str, items: list, names: list[str], fraction: float, train_rows: int,
                 valid_dir: str) -> dict[int, int]:
    """Per domain code that holds validation documents, the largest valid_key chosen; the
    validation copies' rows are written per part under `valid_dir`."""
    batches = [items[i:i + PARTS_PER_TASK] for i in range(0, len(items), PARTS_PER_TASK)]
    keys = dd.from_map(parts.train_keys, batches, work=work, names=names, meta=parts.KEYS_META,
                       enforce_metadata=False)
    n = n_partitions(train_rows)
    unique = keys.shuffle(on="key", npartitions=n, shuffle_method=shuffle_method(n))
    pieces = persisted(ctx.client, unique.map_partitions(parts.distinct, meta=parts.KEYS_META)).to_delayed()
    hist = ctx.client.compute(_tree([dask.delayed(parts.key_histogram)(p, len(names)) for p in pieces],
                                    parts.add_arrays)).result()
    wanted, need = {}, {}
    for code in range(len(names)):
        originals = int(hist[code].sum())
        if originals < 2:
            continue
        n_valid = min(originals - 1, max(1, round(fraction * originals)))
        cumulative = np.cumsum(hist[code])
        wanted[code] = int(np.searchsorted(cumulative, n_valid))  # the bin holding the n_valid-th key
        need[code] = n_valid - (int(cumulative[wanted[code] - 1]) if wanted[code] else 0)
    if not wanted:
        return {}
    pools = ctx.client.compute(_tree([dask.delayed(parts.bin_keys)(p, wanted) for p in pieces],
                                     parts.concat_keys)).result()
    del pieces  # releases the unique pairs
    limits = {code: int(np.sort(pools[code])[need[code] - 1]) for code in wanted}
    _write_valid_rows(ctx, work, batches, names, limits, n_partitions(int(fraction * train_rows) + len(wanted)),
                      valid_dir)
    return limits


def _write_valid_rows(ctx, work: str, batches: list, names: list[str], limits: dict[int, int], n: int,
                      valid_dir: str) -> None:
    chosen = dd.from_map(parts.chosen_rows, batches, work=work, names=names, limits=limits,
                         meta=parts.CHOSEN_META, enforce_metadata=False)
    valid = chosen.shuffle(on="key", npartitions=n, shuffle_method=shuffle_method(n))
    valid = valid.map_partitions(parts.valid_copies, meta=parts.ROWS_META)
    writes = valid.shuffle(on="part", npartitions=n, shuffle_method=shuffle_method(n))
    ctx.client.compute(writes.map_partitions(parts.write_valid_rows, valid_dir, meta=WRITTEN_META)).result()


# -- 2. trim -----------------------------------------------------------------------------------

def find_trims(ctx, work: str, items: list, names: list[str], limits: dict[int, int], targets: dict[str, float],
               nested: set[str]) -> tuple[dict, dict, dict]:
    """(the cut of every (domain code, source) that drops documents, each group's target key,
    per usable target key its share and tokens before the trim)."""
    if not targets:
        return {}, {}, {}
    census = map_reduce(ctx, parts.trim_census, items, parts.add_trim_census, "trim-count", work=work, names=names,
                        limits=limits)
    groups = {group: target_key(names[group[0]], group[1], nested) for group in census}
    have = {k: sum(census[g][0] for g, key in groups.items() if key == k) for k in targets}
    usable = {k: t for k, t in targets.items() if t > 0 and have[k] > 0}
    if not usable:
        return {}, groups, {}
    total = min(have[k] / t for k, t in usable.items())
    excess = {}
    for key, share in usable.items():
        fraction = share * total / have[key]
        if fraction < 1:  # every (domain, source) of the key keeps the same fraction
            excess.update({g: np.int64(census[g][0]) * (1 - fraction) for g, k in groups.items() if k == key})
    cuts = _select(ctx, work, items, names, limits, excess, {g: census[g][1:] for g in excess})
    return cuts, groups, {key: {"target": share, "tokens_before": have[key]} for key, share in usable.items()}


def _start(documents: int, low: int, high: int) -> tuple[int, int]:
    """The state (prefix, bits) of a group whose order keys lie in [low, high]: their shared
    leading bits, in whole digits, or all 128 when there are few enough to collect at once."""
    if documents <= COLLECT_LIMIT:
        return 0, 0
    bits = (128 - (low ^ high).bit_length()) // parts.DIGIT_BITS * parts.DIGIT_BITS
    return low >> (128 - bits), bits


def _select(ctx, work: str, items: list, names: list[str], limits: dict, excess: dict, bounds: dict) -> dict:
    """Per group, the document where the tokens dropped in trim order reach its excess: a
    token-weighted radix select, all groups at once."""
    states = {g: _start(*bounds[g]) for g in excess}
    offset = dict.fromkeys(excess, 0)  # tokens of the group's rows before its prefix
    collect = {g: s for g, s in states.items() if bounds[g][0] <= COLLECT_LIMIT or s[1] == 128}
    cuts = {}
    while states:
        narrowing = {g: s for g, s in states.items() if g not in collect}
        if narrowing:
            hists = map_reduce(ctx, parts.trim_histogram, items, add_hists, "trim-pass", work=work,
                               names=names, limits=limits, states=narrowing)
            for g, (prefix, bits) in narrowing.items():
                counts, tokens = hists[g]
                reach = offset[g] + np.cumsum(tokens)
                digit = min(int(np.searchsorted(reach, excess[g])), parts.DIGITS - 1)
                offset[g] = int(reach[digit] - tokens[digit])
                states[g] = ((prefix << parts.DIGIT_BITS) | digit, bits + parts.DIGIT_BITS)
                if counts[digit] <= COLLECT_LIMIT or bits + parts.DIGIT_BITS == 128:
                    collect[g] = states[g]
        if collect:
            pool = map_reduce(ctx, parts.trim_candidates, items, concat_candidates, "trim-candidates",
                              work=work, names=names, limits=limits, states=collect)
            cuts.update({g: _cut(pool[g], offset[g], excess[g]) for g in collect})
        states, collect = {g: s for g, s in states.items() if g not in cuts}, {}
    return cuts


def _cut(pool: np.ndarray, offset: int, excess: float) -> tuple:
    """The cut (hi, lo, part, row, include) among candidates (hi, lo, part, row, tokens): the
    first document in trim order whose running tokens reach the excess, included when that
    lands closer to the excess than stopping before it."""
    hi, lo, part, row, tokens = pool
    order = np.lexsort((row, part, lo, hi))
    cumulative = np.int64(offset) + np.cumsum(tokens[order].astype(np.int64))
    m = int(np.searchsorted(cumulative, excess))
    assert m < len(order), "the candidates hold the document that reaches the excess"
    below = cumulative[m - 1] if m else np.int64(offset)
    include = bool(cumulative[m] - excess < excess - below)
    first = order[m]
    return int(hi[first]), int(lo[first]), int(part[first]), int(row[first]), include


# -- 4. shards ---------------------------------------------------------------------------------

class _Shards:
    """One domain's training shards, filled in input order."""

    def __init__(self, domain: str, max_tokens: int):
        self.domain, self.max_tokens = domain, max_tokens
        self.plans: list[dict] = []
        self.runs: list[tuple[str, int, int]] = []
        self.documents = self.tokens = 0

    def add(self, run: tuple[str, int, int], documents: int, tokens: int) -> None:
        self.runs.append(run)
        self.documents += documents
        self.tokens += tokens

    def close(self) -> None:
        if self.documents:
            prefix = f"{self.domain}/shard-{len(self.plans):05d}"
            self.plans.append(_plan(prefix, self.domain, "", self.runs, self.documents, self.tokens))
            self.runs, self.documents, self.tokens = [], 0, 0

    def fill(self, work: str, stem: str, span: list[int]) -> None:
        """Add a part's training documents (span: documents, tokens, first index, stop)."""
        documents, tokens, first, stop = span
        if self.tokens + tokens <= self.max_tokens:  # the whole part fits
            self.add((stem, first, stop), documents, tokens)
            return
        index, size = parts.train_documents(work, stem, self.domain)
        start = 0
        while start < len(index):
            cumulative = np.cumsum(size[start:])
            take = int(np.searchsorted(cumulative, self.max_tokens - self.tokens, side="right"))
            take = max(take, 0 if self.documents else 1)  # a document longer than a shard is one shard
            if take:
                self.add((stem, int(index[start]), int(index[start + take - 1]) + 1), take, int(cumulative[take - 1]))
            start += take
            if start < len(index):
                self.close()


def _plan(prefix: str, domain: str, fate: str, runs: list, documents: int, tokens: int) -> dict:
    return {"prefix": prefix, "domain": domain, "runs": runs, "fate": fate, "documents": documents, "tokens": tokens}


def assign_shards(work: str, stems: list[str], names: list[str], spans: np.ndarray, max_tokens: int) -> list[dict]:
    """Shard plans: per domain, training shards `<domain>/shard-NNNNN` then `valid-00000`.
    `spans[part, domain code]`: the part's training span + validation span (documents, tokens,
    first index, stop each)."""
    plans = []
    for code, domain in enumerate(names):
        shards = _Shards(domain, max_tokens)
        for part in np.flatnonzero(spans[:, code, 0]).tolist():
            shards.fill(work, stems[part], spans[part, code, :4].tolist())
        shards.close()
        plans += shards.plans
        valid = [(stems[part], *spans[part, code, [6, 7, 4, 5]].tolist())
                 for part in np.flatnonzero(spans[:, code, 4]).tolist()]
        if valid:
            plans.append(_plan(f"{domain}/valid-00000", domain, VALID, [v[:3] for v in valid],
                               sum(v[3] for v in valid), sum(v[4] for v in valid)))
    return plans
