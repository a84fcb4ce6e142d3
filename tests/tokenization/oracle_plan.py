"""The reference planner: tokenize's planning as it ran before it was distributed, in one
process over the whole table of encoded documents (one row per document, numpy arrays). The
property test (`test_plan.py`) checks that `tokenization.plan` decides exactly what this does.

1. `choose_valid`: per domain, `valid_fraction` of the originals (smallest valid_key), one copy
   of each to validation (the lowest epoch, rank, part, row), the others dropped.
2. `trim_to_mixture`: each (domain, source) of a target key drops its excess, highest rank
   first, then highest trim_key, then input order.
3. `assign_shards`: training documents in input order fill shards of at most
   `max_shard_tokens` tokens.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tokenization.sample import doc_keys

VALID, COPY_OF_VALID, TRIMMED, EMPTY = "valid", "copy_of_valid_document", "trimmed_to_mixture", "empty_text"


NUMERIC = ("row", "epoch", "rank", "index", "tokens", "bytes", "valid_key", "part")


class Docs:
    """The encoded-documents table as numpy arrays, strings (domain, source) as codes into
    sorted name lists (one row per document: this is what the old planner held in one worker,
    which grew ~470 bytes a document in `bench/scale.py`). Copies of an original share its
    `valid_key`; `trim_key` comes from the table, or from `id` when the table has none."""

    def __init__(self, table: pa.Table, seed: int = 0):
        for name in NUMERIC:
            setattr(self, name, table.column(name).to_numpy())
        self.n = table.num_rows
        self.domain_names, self.domain_code = _codes(table.column("domain"))
        self.source_names, self.source_code = _codes(table.column("source"))
        if "id" in table.column_names:
            self.id = table.column("id").to_numpy(zero_copy_only=False)
        if "trim_key" in table.column_names and table.column("trim_key").null_count == 0:
            self.trim_key = table.column("trim_key").to_numpy()
        else:
            self.trim_key = doc_keys(seed, table.column("id").to_pylist())
        # Set by the planning steps: "" = training, else VALID or a rejection reason.
        self.fate = np.where(self.tokens > 0, "", EMPTY).astype(object)

    @property
    def domain(self) -> np.ndarray:
        return np.asarray(self.domain_names, dtype=object)[self.domain_code]

    @property
    def source(self) -> np.ndarray:
        return np.asarray(self.source_names, dtype=object)[self.source_code]

    def rows(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(mask)


def _codes(column: pa.ChunkedArray) -> tuple[list, np.ndarray]:
    """(names sorted by str, each row's position in them) of a string column (nulls allowed)."""
    values = column.combine_chunks() if column.num_chunks else pa.array([], column.type)
    encoded = values.dictionary_encode()
    names = encoded.dictionary.to_pylist() + ([None] if encoded.null_count else [])
    if not names:
        return [], np.zeros(len(values), dtype=np.int32)
    order = sorted(range(len(names)), key=lambda i: str(names[i]))
    position = np.empty(len(names), dtype=np.int32)
    position[order] = np.arange(len(names), dtype=np.int32)
    return [names[i] for i in order], position[encoded.indices.fill_null(len(names) - 1).to_numpy()]


def choose_valid(docs: Docs, fraction: float) -> None:
    train = docs.fate == ""
    for code in np.unique(docs.domain_code[train]):  # names are sorted, so codes are in name order
        rows = docs.rows(train & (docs.domain_code == code))
        # The originals, by key: the key, a seeded hash of the original id computed by the
        # encode tasks, stands for the id (equal keys = one original; 64 bits: at 10^9
        # originals the chance that two share a key is ~3%, and then they count as one).
        originals, inverse = np.unique(docs.valid_key[rows], return_inverse=True)
        if len(originals) < 2:
            continue
        n_valid = min(len(originals) - 1, max(1, round(fraction * len(originals))))
        chosen = np.zeros(len(originals), dtype=bool)
        chosen[:n_valid] = True
        members, member_original = rows[chosen[inverse]], inverse[chosen[inverse]]
        # The lowest (epoch, rank, input position) copy is the one kept for validation.
        order = np.lexsort((docs.row[members], docs.part[members], docs.rank[members], docs.epoch[members]))
        members, member_original = members[order], member_original[order]
        docs.fate[members] = COPY_OF_VALID
        docs.fate[members[np.unique(member_original, return_index=True)[1]]] = VALID


def target_key(domain: str, source: str | None, nested: set[str]) -> str:
    return f"{domain}/{source}" if domain in nested else domain


def _key_codes(docs: Docs, nested: set[str]) -> tuple[list[str], np.ndarray]:
    """(target key names, each row's position in them) of every row."""
    pairs, inverse = np.unique(np.stack([docs.domain_code, docs.source_code]), axis=1, return_inverse=True)
    names = [target_key(docs.domain_names[d], docs.source_names[s], nested) for d, s in pairs.T.tolist()]
    unique = sorted(set(names))
    code = np.asarray([unique.index(n) for n in names], dtype=np.int32)
    return unique, code[inverse.reshape(-1)] if len(code) else np.zeros(0, np.int32)


def trim_to_mixture(docs: Docs, targets: dict[str, float], nested: set[str], seed: int) -> dict[str, dict]:
    """Drop training documents so token shares match `targets` ({key: share}); return
    {key: {target, tokens_before, tokens_after}}. (`seed` chose the encode tasks' trim keys.)"""
    train = docs.fate == ""
    names, keys = _key_codes(docs, nested)
    code = {name: i for i, name in enumerate(names)}
    have = {k: int(docs.tokens[train & (keys == code.get(k, -1))].sum()) for k in targets}
    usable = {k: t for k, t in targets.items() if t > 0 and have[k] > 0}
    if not usable:
        return {}
    total = min(have[k] / t for k, t in usable.items())
    report = {}
    for key, share in usable.items():
        fraction = share * total / have[key]
        in_key = train & (keys == code[key])
        # Within a flat domain every source keeps the same fraction (its natural share).
        for source in np.unique(docs.source_code[in_key]):  # in the order of their names
            _drop_excess(docs, docs.rows(in_key & (docs.source_code == source)), fraction)
        report[key] = {"target": share, "tokens_before": have[key],
                       "tokens_after": int(docs.tokens[(docs.fate == "") & (keys == code[key])].sum())}
    return report


def _drop_excess(docs: Docs, rows: np.ndarray, keep_fraction: float) -> None:
    if keep_fraction >= 1 or not len(rows):
        return
    # Highest rank first, then highest key; ties (none in practice) keep input order.
    order = rows[np.lexsort((np.arange(len(rows)), ~docs.trim_key[rows], -docs.rank[rows]))]
    cumulative = np.cumsum(docs.tokens[order])
    excess = cumulative[-1] * (1 - keep_fraction)
    m = int(np.searchsorted(cumulative, excess))  # dropping m+1 rows reaches the excess
    below = cumulative[m - 1] if m else 0
    if m < len(order) and cumulative[m] - excess < excess - below:
        m += 1
    docs.fate[order[:m]] = TRIMMED


def _runs(docs: Docs, rows: np.ndarray, stems: list[str]) -> list[tuple[str, int, int]]:
    """The span (part stem, first index, last index + 1) of the shard's documents in each
    temporary file. A span may hold documents of other fates (validation, dropped) between
    the shard's; the shard writer skips them by the part's fate file, so a plan grows with
    the parts it spans, not with the documents dropped inside them."""
    part, index = docs.part[rows], docs.index[rows]
    breaks = np.flatnonzero(part[1:] != part[:-1]) + 1
    starts, stops = np.r_[0, breaks], np.r_[breaks, len(rows)]
    return [(stems[part[a]], int(index[a]), int(index[b - 1]) + 1) for a, b in zip(starts, stops)]


def _shard(docs: Docs, rows: np.ndarray, prefix: str, domain: str, stems: list[str]) -> dict:
    return {"prefix": prefix, "domain": domain, "runs": _runs(docs, rows, stems), "fate": docs.fate[rows[0]],
            "documents": len(rows), "tokens": int(docs.tokens[rows].sum())}


def assign_shards(docs: Docs, stems: list[str], max_shard_tokens: int) -> list[dict]:
    """Shard plans: per domain, training shards `<domain>/shard-NNNNN` then `valid-00000`."""
    plans = []
    in_order = np.lexsort((docs.row, docs.part))
    fate = docs.fate[in_order]
    for code in np.unique(docs.domain_code[(docs.fate == "") | (docs.fate == VALID)]):
        domain = docs.domain_names[code]
        in_domain = docs.domain_code[in_order] == code
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


def oracle(table: pa.Table, stems: list[str], fraction: float, targets: dict[str, float], nested: set[str],
           max_shard_tokens: int) -> dict:
    """Everything the planner decides, from `table` (docs.parquet rows of every part, in part
    order, with a `part` column): fates per part, shard plans, the trim's report, stats and
    the parts with dropped rows."""
    docs = Docs(table)
    choose_valid(docs, fraction)
    correction = trim_to_mixture(docs, targets, nested, 0) if targets else {}
    plans = assign_shards(docs, stems, max_shard_tokens)
    fates = [list(docs.fate[docs.part == i]) for i in range(len(stems))]
    kept = (docs.fate == "") | (docs.fate == VALID)
    rejected: dict[str, list[int]] = {}
    for r in docs.rows(~kept):
        counts = rejected.setdefault(f"tokenize.{docs.fate[r]}", [0, 0])
        counts[0] += 1
        counts[1] += int(docs.bytes[r])
    stats = {"docs_in": docs.n, "bytes_in": int(docs.bytes.sum()), "docs_out": int(kept.sum()),
             "bytes_out": int(docs.bytes[kept].sum()), "rejected": rejected,
             "tokens": {name: int(docs.tokens[docs.fate == fate].sum()) for name, fate in
                        (("tokens_train", ""), ("tokens_valid", VALID))}}
    return {"fates": fates, "plans": plans, "correction": correction, "stats": stats,
            "rejected_parts": [i for i, f in enumerate(fates) if any(x not in ("", VALID) for x in f)]}
