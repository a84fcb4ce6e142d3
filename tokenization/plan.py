"""Where every encoded document goes: a validation shard, a training shard, or rejected/.

Pure functions on the table of encoded documents (`tokenization.encode.DOCS_SCHEMA` plus
`part`, the input part's position), all deterministic from the seed and the documents, and
vectorised with numpy (the client runs them while the workers wait):

1. `choose_valid`: per domain, `valid_fraction` of the *original* documents (at least one
   when the domain has two or more), chosen by a seeded hash of the original id (the
   `valid_key` column, which the encode tasks compute in parallel). One copy
   of each goes to the validation shard; the mix stage's other copies of it are dropped, so
   no validation text is ever trained on.
2. `trim_to_mixture`: the mix stage counts tokens by an estimate (or with another
   tokenizer); here the real token counts correct it. The largest total at which every
   target key (domain, or domain/source for nested targets) still has enough tokens is
   kept, and each key drops its excess, highest mix rank first (the last sampled copies).
3. `assign_shards`: training documents in input order (part, row) fill shards of at most
   `max_shard_tokens` tokens; each shard is a list of runs of consecutive documents in
   the per-part temporary files.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tokenization.sample import doc_keys

VALID, COPY_OF_VALID, TRIMMED, EMPTY = "valid", "copy_of_valid_document", "trimmed_to_mixture", "empty_text"


class Docs:
    """Columns of the encoded-documents table as numpy arrays (strings as object arrays)."""

    def __init__(self, table: pa.Table):
        for name in table.column_names:
            setattr(self, name, table.column(name).to_numpy(zero_copy_only=False))
        self.n = table.num_rows
        # Set by the planning steps: "" = training, else VALID or a rejection reason.
        self.fate = np.where(self.tokens > 0, "", EMPTY).astype(object)

    def rows(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)


def choose_valid(docs: Docs, fraction: float) -> None:
    train = docs.fate == ""
    for domain in sorted(set(docs.domain[train])):
        rows = docs.rows(train & (docs.domain == domain))
        originals, first, inverse = np.unique(docs.original_id[rows], return_index=True, return_inverse=True)
        if len(originals) < 2:
            continue
        n_valid = min(len(originals) - 1, max(1, round(fraction * len(originals))))
        # By (key, original id): `originals` is sorted, so its position breaks key ties. The
        # key, a seeded hash of the original id, was computed by the encode tasks.
        by_key = np.lexsort((np.arange(len(originals)), docs.valid_key[rows[first]]))
        chosen = np.zeros(len(originals), dtype=bool)
        chosen[by_key[:n_valid]] = True
        members, member_original = rows[chosen[inverse]], inverse[chosen[inverse]]
        # The lowest (epoch, rank, input position) copy is the one kept for validation.
        order = np.lexsort((docs.row[members], docs.part[members], docs.rank[members], docs.epoch[members]))
        members, member_original = members[order], member_original[order]
        docs.fate[members] = COPY_OF_VALID
        docs.fate[members[np.unique(member_original, return_index=True)[1]]] = VALID


def target_key(domain: str, source: str | None, nested: set[str]) -> str:
    return f"{domain}/{source}" if domain in nested else domain


def trim_to_mixture(docs: Docs, targets: dict[str, float], nested: set[str], seed: int) -> dict[str, dict]:
    """Drop training documents so token shares match `targets` ({key: share}); return
    {key: {target, tokens_before, tokens_after}}."""
    train = docs.fate == ""
    if nested:
        keys = np.asarray([target_key(d, s, nested) for d, s in zip(docs.domain, docs.source)], dtype=object)
    else:
        keys = docs.domain
    have = {k: int(docs.tokens[train & (keys == k)].sum()) for k in targets}
    usable = {k: t for k, t in targets.items() if t > 0 and have[k] > 0}
    if not usable:
        return {}
    total = min(have[k] / t for k, t in usable.items())
    report = {}
    for key, share in usable.items():
        fraction = share * total / have[key]
        in_key = train & (keys == key)
        # Within a flat domain every source keeps the same fraction (its natural share).
        for source in sorted(set(docs.source[in_key]), key=str):
            _drop_excess(docs, docs.rows(in_key & (docs.source == source)), fraction, seed)
        report[key] = {"target": share, "tokens_before": have[key],
                       "tokens_after": int(docs.tokens[(docs.fate == "") & (keys == key)].sum())}
    return report


def _drop_excess(docs: Docs, rows: np.ndarray, keep_fraction: float, seed: int) -> None:
    if keep_fraction >= 1 or not len(rows):
        return
    # Highest rank first, then highest key; ties (none in practice) keep input order.
    keys = doc_keys(seed, docs.id[rows])
    order = rows[np.lexsort((np.arange(len(rows)), ~keys, -docs.rank[rows]))]
    cumulative = np.cumsum(docs.tokens[order])
    excess = cumulative[-1] * (1 - keep_fraction)
    m = int(np.searchsorted(cumulative, excess))  # dropping m+1 rows reaches the excess
    below = cumulative[m - 1] if m else 0
    if m < len(order) and cumulative[m] - excess < excess - below:
        m += 1
    docs.fate[order[:m]] = TRIMMED


def _runs(docs: Docs, rows: np.ndarray, stems: list[str]) -> list[tuple[str, int, int]]:
    """Consecutive documents of one temporary file as (part stem, start, stop) runs."""
    part, index = docs.part[rows], docs.index[rows]
    breaks = np.flatnonzero((part[1:] != part[:-1]) | (index[1:] != index[:-1] + 1)) + 1
    starts, stops = np.r_[0, breaks], np.r_[breaks, len(rows)]
    return [(stems[part[a]], int(index[a]), int(index[b - 1]) + 1) for a, b in zip(starts, stops)]


def _shard(docs: Docs, rows: np.ndarray, prefix: str, domain: str, stems: list[str]) -> dict:
    return {"prefix": prefix, "domain": domain, "runs": _runs(docs, rows, stems),
            "documents": len(rows), "tokens": int(docs.tokens[rows].sum())}


def assign_shards(docs: Docs, stems: list[str], max_shard_tokens: int) -> list[dict]:
    """Shard plans: per domain, training shards `<domain>/shard-NNNNN` then `valid-00000`."""
    plans = []
    in_order = np.lexsort((docs.row, docs.part))
    fate = docs.fate[in_order]
    for domain in sorted(set(docs.domain[(docs.fate == "") | (docs.fate == VALID)])):
        in_domain = docs.domain[in_order] == domain
        train = in_order[in_domain & (fate == "")]
        cumulative = np.cumsum(docs.tokens[train])
        start = n = 0
        while start < len(train):  # each shard: the longest run that fits, at least one document
            base = int(cumulative[start - 1]) if start else 0
            stop = max(start + 1, int(np.searchsorted(cumulative, base + max_shard_tokens, side="right")))
            plans.append(_shard(docs, train[start:stop], f"{domain}/shard-{n:05d}", domain, stems))
            start, n = stop, n + 1
        valid = in_order[in_domain & (fate == VALID)]
        if len(valid):
            plans.append(_shard(docs, valid, f"{domain}/valid-00000", domain, stems))
    return plans
