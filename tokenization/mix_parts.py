"""The mix stage's work on the Dask workers, one input part at a time.

1. `count_part`: every row's tokens (exact or estimated), UTF-8 bytes, target key
   (`domain`, `source`) or the reason it has none, and its sampling key, a seeded 64-bit hash
   of its id; written to a small work file, summed per key for the client.
2. `digit_hist` / `candidates`: the passes of a token-weighted radix select on the sampling
   keys, by which the client finds, per key, the document where the seeded sample reaches
   its wanted tokens (`tokenization.mix.find_cuts`).
3. `write_part`: the part's copies (whole epochs, plus the sampled documents below the cut)
   by epoch, and its rejected rows; returns the part's counts.

A document's position in the sample is its (sampling key, part, row): it depends on the seed
and the id only, not on how the data is split, so every decision is made per part, the same
on any number of workers. A copy's `rank` (its priority, lowest first; the tokenize stage
trims from the highest) is `epoch << 40 | sampling key >> 24`.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa

from pipeline import storage
from pipeline.io import write_parquet
from pipeline.parts import read_part
from pipeline.record import metadata_to_json, with_reason
from tokenization.sample import doc_keys

DIGIT_BITS = 8
DIGITS = 1 << DIGIT_BITS
RANK_SHIFT = 40
KEY_PREFIX = "mix:"  # a document's sampling key is doc_key(seed, "mix:" + id)


def key_name(domain: str, source: str | None) -> str:
    """A (domain, source) target key as one string (JSON: `source` may be null)."""
    return json.dumps([domain, source])


def _reason(domain, source, tokens: int, domain_targets: dict, nested: dict) -> str:
    if domain is None:
        return "missing_domain"
    if domain not in domain_targets:
        return "domain_not_in_targets"
    if domain in nested and source not in nested[domain]:
        return "source_not_in_targets"
    return "empty_text" if tokens == 0 else ""


def count_part(item: tuple[str, str], domain_targets: dict, nested: dict, tokenizer: str | None,
               bytes_per_token: float, seed: int) -> dict:
    """Write the work file of input part `item` = (input path, work path); return
    {keys: {key: [documents, tokens, bytes]} in order of first appearance, docs_in, bytes_in}."""
    in_path, work_path = item
    table = read_part(in_path, columns=["id", "domain", "source", "text"])
    n_bytes = np.asarray([len(t.encode("utf-8")) if t else 0 for t in table.column("text").to_pylist()],
                         dtype=np.int64)
    if tokenizer:
        from tokenization.encode import count_part_tokens

        tokens = np.asarray(count_part_tokens(in_path, tokenizer), dtype=np.int64)
    else:
        tokens = np.asarray([math.ceil(b / bytes_per_token) for b in n_bytes.tolist()], dtype=np.int64)
    domains, sources = table.column("domain").to_pylist(), table.column("source").to_pylist()
    reasons = [_reason(d, s, t, domain_targets, nested) for d, s, t in zip(domains, sources, tokens.tolist())]
    keys = [None if r else key_name(d, s) for d, s, r in zip(domains, sources, reasons)]
    work = pa.table({"key": pa.array(keys, pa.string()), "reason": pa.array(reasons, pa.string()),
                     "tokens": tokens, "bytes": n_bytes,
                     "hkey": doc_keys(seed, table.column("id").to_pylist(), KEY_PREFIX)})
    write_parquet(work, work_path)
    totals: dict[str, list[int]] = {}
    key_array = np.asarray(keys, dtype=object)
    for key in dict.fromkeys(k for k in keys if k is not None):
        mine = key_array == key
        totals[key] = [int(mine.sum()), int(tokens[mine].sum()), int(n_bytes[mine].sum())]
    return {"keys": totals, "docs_in": table.num_rows, "bytes_in": int(n_bytes.sum())}


def add_counts(*summaries: dict) -> dict:
    """Sum of `count_part` summaries, keys in order of first appearance."""
    out: dict = {"keys": {}, "docs_in": 0, "bytes_in": 0}
    for s in summaries:
        out["docs_in"] += s["docs_in"]
        out["bytes_in"] += s["bytes_in"]
        for key, values in s["keys"].items():
            have = out["keys"].setdefault(key, [0, 0, 0])
            out["keys"][key] = [a + b for a, b in zip(have, values)]
    return out


def _matching(hkey: np.ndarray, prefix: int, bits: int) -> np.ndarray:
    return hkey >> np.uint64(64 - bits) == np.uint64(prefix) if bits else np.ones(len(hkey), dtype=bool)


def _in_key(work_path: str, key: str, prefix: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, sampling keys, tokens) of the work file's rows of `key` whose sampling key
    starts with the `bits` bits `prefix`."""
    table = storage.read_table(work_path, columns=["key", "hkey", "tokens"])
    rows = np.flatnonzero(table.column("key").to_numpy(zero_copy_only=False) == key)
    hkey = table.column("hkey").to_numpy()[rows]
    match = _matching(hkey, prefix, bits)
    return rows[match], hkey[match], table.column("tokens").to_numpy()[rows][match]


def digit_hist(work_path: str, states: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """Per key: documents and tokens (a 2 x 256 array) by the next 8-bit digit of the
    sampling keys that start with the key's (prefix, bits)."""
    out = {}
    for key, (prefix, bits) in states.items():
        _, hkey, tokens = _in_key(work_path, key, prefix, bits)
        digits = ((hkey >> np.uint64(64 - bits - DIGIT_BITS)) & np.uint64(DIGITS - 1)).astype(np.int64)
        out[key] = np.stack([np.bincount(digits, minlength=DIGITS),
                             np.bincount(digits, weights=tokens, minlength=DIGITS).round().astype(np.int64)])
    return out


def add_hists(*hists: dict) -> dict:
    out: dict[str, np.ndarray] = {}
    for h in hists:
        for key, values in h.items():
            out[key] = out[key] + values if key in out else values
    return out


def candidates(item: tuple[int, str], states: dict[str, tuple[int, int]]) -> dict[str, np.ndarray]:
    """Per key: (sampling key, part, row, tokens) rows, as a 4 x n uint64 array, of the part
    `item` = (part index, work path) whose sampling key starts with the key's prefix."""
    part, work_path = item
    out = {}
    for key, (prefix, bits) in states.items():
        rows, hkey, tokens = _in_key(work_path, key, prefix, bits)
        out[key] = np.stack([hkey, np.full(len(rows), part, np.uint64), rows.astype(np.uint64),
                             tokens.astype(np.uint64)])
    return out


def concat_candidates(*pools: dict) -> dict:
    keys = dict.fromkeys(k for pool in pools for k in pool)
    return {k: np.concatenate([pool[k] for pool in pools if k in pool], axis=1) for k in keys}


def _sampled(hkey: np.ndarray, rows: np.ndarray, part: int, plan: dict) -> np.ndarray:
    """Which of the key's rows (their sampling keys `hkey` and positions `rows` in `part`) the
    key's fractional epoch takes: those before the cut (sampling key, part, row), and the cut
    itself when it is included. Rows are positions among all of the part's rows, as the cut's
    are (`candidates`), whatever other keys the part holds."""
    if plan["take"] != "cut":
        return np.full(len(hkey), plan["take"] == "all")
    ck, cp, cr, include = plan["cut"]
    ck = np.uint64(ck)
    before = (hkey < ck) | ((hkey == ck) & ((part < cp) | ((part == cp) & (rows < cr))))
    return before | ((hkey == ck) & (part == cp) & (rows == cr) & include)


def _copies(work: pa.Table, part: int, plans: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, epochs, ranks) of the part's copies, by row then epoch."""
    keys = work.column("key").to_numpy(zero_copy_only=False)
    hkey = work.column("hkey").to_numpy()
    epochs = np.full(len(keys), -1, dtype=np.int64)  # the last epoch of each row; -1: not used
    for key, plan in plans.items():
        mine = keys == key
        epochs[mine] = plan["full"] - 1 + _sampled(hkey[mine], np.flatnonzero(mine), part, plan).astype(np.int64)
    rows = np.repeat(np.arange(len(keys)), epochs + 1)
    first = np.repeat(np.cumsum(epochs + 1) - (epochs + 1), epochs + 1)
    copy_epoch = np.arange(len(rows)) - first
    ranks = (copy_epoch << RANK_SHIFT) | (hkey[rows] >> np.uint64(64 - RANK_SHIFT)).astype(np.int64)
    return rows, copy_epoch, ranks


def write_part(item: tuple[int, str, str], plans: dict, out_dir: str) -> dict:
    """Write one input part's copies by epoch and its rejected rows; return its counts.
    `item` = (part index, input path, work path); `plans` = {key: {full, take, cut}}."""
    part, in_path, work_path = item
    table, work = read_part(in_path), storage.read_table(work_path)
    rows, epochs, ranks = _copies(work, part, plans)
    stem = storage.stem(in_path).removeprefix("part-")
    names = []
    for epoch in sorted(set(epochs.tolist())):
        pick = epochs == epoch
        names.append(f"part-e{epoch:03d}-{stem}.parquet")
        _write_epoch(table.take(pa.array(rows[pick])), epoch, ranks[pick], storage.join(out_dir, names[-1]))
    return {**_counts(work, rows, epochs, table, in_path, out_dir), "parts": names}


def _write_epoch(part: pa.Table, epoch: int, ranks: np.ndarray, path: str) -> None:
    ids = part.column("id").to_pylist()
    metas = []
    for doc_id, meta, rank in zip(ids, part.column("metadata").to_pylist(), ranks.tolist()):
        metadata = json.loads(meta) if meta else {}
        metadata["mix"] = {"original_id": doc_id, "epoch": epoch, "rank": rank}
        metas.append(metadata_to_json(metadata))
    new_ids = ids if epoch == 0 else [f"{i}#epoch{epoch}" for i in ids]
    part = part.set_column(part.schema.get_field_index("id"), part.schema.field("id"), pa.array(new_ids, pa.string()))
    part = part.set_column(part.schema.get_field_index("metadata"), "metadata", pa.array(metas, pa.string()))
    write_parquet(part, path)


def _counts(work: pa.Table, rows: np.ndarray, epochs: np.ndarray, table: pa.Table, in_path: str, out_dir: str) -> dict:
    """The part's counts: per key [tokens, copies, unique documents]; documents/bytes out;
    repeated copies; tokens out; rejected {reason: [documents, bytes]}. Writes rejected/."""
    keys = work.column("key").to_numpy(zero_copy_only=False)
    tokens, n_bytes = work.column("tokens").to_numpy(), work.column("bytes").to_numpy()
    reasons = work.column("reason").to_numpy(zero_copy_only=False).copy()
    used = np.zeros(len(keys), dtype=bool)
    used[rows] = True
    reasons[~used & (reasons == "")] = "not_sampled"
    per_key = {}
    for key in dict.fromkeys(keys[rows].tolist()):
        mine = keys[rows] == key
        per_key[key] = [int(tokens[rows[mine]].sum()), int(mine.sum()), len(np.unique(rows[mine]))]
    rejected: dict[str, list[int]] = {}
    dropped = np.flatnonzero(~used)
    for reason in sorted(set(reasons[dropped].tolist())):
        mine = dropped[reasons[dropped] == reason]
        rejected[f"mix.{reason}"] = [len(mine), int(n_bytes[mine].sum())]
    if len(dropped):
        part = with_reason(table.take(pa.array(dropped, type=pa.int64())), "mix",
                           [f"mix.{r}" for r in reasons[dropped]])
        write_parquet(part, storage.join(out_dir, "rejected", storage.basename(in_path)))
    return {"keys": per_key, "docs_out": len(rows), "bytes_out": int(n_bytes[rows].sum()),
            "repeated": int((epochs > 0).sum()), "tokens_out": int(tokens[rows].sum()), "rejected": rejected}


def add_written(*counts: dict) -> dict:
    out: dict = {"keys": {}, "docs_out": 0, "bytes_out": 0, "repeated": 0, "tokens_out": 0, "rejected": {},
                 "parts": []}
    for c in counts:
        out["parts"] += c.get("parts", [])
        for name in ("docs_out", "bytes_out", "repeated", "tokens_out"):
            out[name] += c[name]
        for field in ("keys", "rejected"):
            for key, values in c[field].items():
                have = out[field].get(key, [0] * len(values))
                out[field][key] = [a + b for a, b in zip(have, values)]
    return out
