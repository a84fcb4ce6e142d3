"""The tokenize stage's planning work on the Dask workers, one encoded part (or one Dask
partition) at a time; `tokenization.plan` drives it from the client and explains the steps.

Every function reads a part's `WORK/<part>/docs.parquet` (numbers and the domain and source
names only) or gets a partition of a shuffle, and returns a summary that does not grow with
the documents: counts and tokens per domain or (domain, source), a histogram, a part's index
spans, or the few rows of one histogram bin. Domains are coded by their position in the
sorted list of the run's domain names (`names`), the same in every task.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from pipeline import storage
from pipeline.io import write_parquet
from pipeline.stats import StageStats

VALID, COPY_OF_VALID, TRIMMED, EMPTY = "valid", "copy_of_valid_document", "trimmed_to_mixture", "empty_text"
KEY_BITS = 16  # validation keys are histogrammed by their top 16 bits (65,536 bins per domain)
DIGIT_BITS = 8  # the trim's radix select narrows the order key 8 bits a pass
DIGITS = 1 << DIGIT_BITS
KEYS_META = pd.DataFrame({"domain": pd.Series([], dtype="int32"), "key": pd.Series([], dtype="int64")})
CHOSEN_META = pd.DataFrame({name: pd.Series([], dtype="int64")
                            for name in ("domain", "key", "epoch", "rank", "part", "row")})
ROWS_META = pd.DataFrame({"part": pd.Series([], dtype="int64"), "row": pd.Series([], dtype="int64")})


def read_docs(work: str, stem: str, columns: list[str]) -> pa.Table:
    return storage.read_table(storage.join(work, stem, "docs.parquet"), columns=columns)


def domain_codes(table: pa.Table, names: list[str]) -> np.ndarray:
    """Each row's domain as its position in `names`."""
    return pc.index_in(table["domain"], value_set=pa.array(names, pa.string())).to_numpy(zero_copy_only=False)


def chosen_mask(codes: np.ndarray, keys: np.ndarray, tokens: np.ndarray, limits: dict[int, int]) -> np.ndarray:
    """The training rows whose domain holds validation documents and whose valid_key is at
    most the domain's threshold: every copy of a validation original."""
    chosen = np.zeros(len(codes), dtype=bool)
    for code, limit in limits.items():
        chosen |= (codes == code) & (keys <= np.uint64(limit))
    return chosen & (tokens > 0)


# -- census ------------------------------------------------------------------------------------

def census(item: tuple[int, str], work: str) -> dict:
    """The part's domain names and its training rows (tokens > 0)."""
    table = read_docs(work, item[1], ["domain", "tokens"])
    return {"domains": set(pc.unique(table["domain"]).to_pylist()),
            "train": int(pc.sum(pc.greater(table["tokens"], 0)).as_py() or 0)}


def add_census(*summaries: dict) -> dict:
    return {"domains": set().union(*(s["domains"] for s in summaries)), "train": sum(s["train"] for s in summaries)}


# -- validation --------------------------------------------------------------------------------

def train_keys(batch: list[tuple[int, str]], work: str, names: list[str]) -> pd.DataFrame:
    """(domain, valid_key) of the batch's training rows, each pair once."""
    frames = []
    for _, stem in batch:
        table = read_docs(work, stem, ["domain", "tokens", "valid_key"])
        train = table["tokens"].to_numpy() > 0
        frames.append(pd.DataFrame({"domain": domain_codes(table, names)[train].astype(np.int32),
                                    "key": table["valid_key"].to_numpy()[train].view(np.int64)}))
    return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True) if frames else KEYS_META.copy()


def distinct(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop_duplicates(ignore_index=True)


def _bins(df: pd.DataFrame) -> np.ndarray:
    return (df["key"].to_numpy().view(np.uint64) >> np.uint64(64 - KEY_BITS)).astype(np.int64)


def key_histogram(df: pd.DataFrame, n_domains: int) -> np.ndarray:
    """Distinct keys per domain and bin (top KEY_BITS bits): an (n_domains, 2**KEY_BITS) array."""
    flat = df["domain"].to_numpy().astype(np.int64) * (1 << KEY_BITS) + _bins(df)
    return np.bincount(flat, minlength=n_domains << KEY_BITS).reshape(n_domains, 1 << KEY_BITS)


def bin_keys(df: pd.DataFrame, wanted: dict[int, int]) -> dict[int, np.ndarray]:
    """Per domain code: its keys in the bin `wanted[code]`, as uint64."""
    bins, codes = _bins(df), df["domain"].to_numpy()
    keys = df["key"].to_numpy().view(np.uint64)
    return {code: keys[(codes == code) & (bins == b)] for code, b in wanted.items()}


def add_arrays(*arrays):
    return sum(arrays[1:], arrays[0])


def concat_keys(*pools: dict) -> dict:
    return {code: np.concatenate([pool[code] for pool in pools]) for code in pools[0]}


def chosen_rows(batch: list[tuple[int, str]], work: str, names: list[str], limits: dict[int, int]) -> pd.DataFrame:
    """Every copy of the validation originals in the batch, with what picks the one kept."""
    frames = []
    for part, stem in batch:
        table = read_docs(work, stem, ["row", "domain", "epoch", "rank", "tokens", "valid_key"])
        codes, keys = domain_codes(table, names), table["valid_key"].to_numpy()
        mine = chosen_mask(codes, keys, table["tokens"].to_numpy(), limits)
        frames.append(pd.DataFrame({
            "domain": codes[mine].astype(np.int64), "key": keys[mine].view(np.int64),
            "epoch": table["epoch"].to_numpy()[mine].astype(np.int64), "rank": table["rank"].to_numpy()[mine],
            "part": np.full(int(mine.sum()), part, dtype=np.int64), "row": table["row"].to_numpy()[mine]}))
    return pd.concat(frames, ignore_index=True) if frames else CHOSEN_META.copy()


def valid_copies(df: pd.DataFrame) -> pd.DataFrame:
    """(part, row) of each original's lowest (epoch, rank, part, row) copy: the one that goes
    to the validation shard."""
    order = np.lexsort([df[c].to_numpy() for c in ("row", "part", "rank", "epoch", "key", "domain")])
    domain, key = df["domain"].to_numpy()[order], df["key"].to_numpy()[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = (domain[1:] != domain[:-1]) | (key[1:] != key[:-1])
    pick = order[first]
    return pd.DataFrame({"part": df["part"].to_numpy()[pick], "row": df["row"].to_numpy()[pick]})


def valid_path(folder: str, part: int) -> str:
    return storage.join(folder, f"{part}.parquet")


def write_valid_rows(df: pd.DataFrame, folder: str) -> pd.DataFrame:
    """Write the validation rows of each part in `df` to `folder/<part position>.parquet`."""
    for part, rows in df.groupby("part", sort=True):
        write_parquet(pa.table({"row": np.sort(rows["row"].to_numpy())}), valid_path(folder, int(part)))
    return pd.DataFrame({"written": [len(df)]})


# -- trim: a token-weighted radix select over (rank, trim_key) -----------------------------------
# A group is one (domain code, source) of a target key that keeps less than all its tokens; its
# rows are dropped in the order (rank desc, trim_key desc, part, row). The order key is the 128-bit
# number (~rank, ~trim_key), ascending; a state (prefix, bits) holds the rows whose order key
# starts with those bits.

def _trim_rows(work: str, stem: str, names: list[str], limits: dict[int, int]):
    """The part's table, domain codes, which rows are training rows once validation took its
    copies, and their order keys (hi, lo)."""
    table = read_docs(work, stem, ["row", "domain", "source", "rank", "tokens", "valid_key", "trim_key"])
    codes = domain_codes(table, names)
    tokens = table["tokens"].to_numpy()
    train = (tokens > 0) & ~chosen_mask(codes, table["valid_key"].to_numpy(), tokens, limits)
    return table, codes, train, *order_keys(table)


def in_group(table: pa.Table, codes: np.ndarray, group: tuple[int, str | None]) -> np.ndarray:
    code, source = group
    same = pc.is_null(table["source"]) if source is None else pc.fill_null(pc.equal(table["source"], source), False)
    return (codes == code) & same.to_numpy(zero_copy_only=False)


def order_keys(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    return ~table["rank"].to_numpy().astype(np.uint64), ~table["trim_key"].to_numpy()


def _matching(hi: np.ndarray, lo: np.ndarray, prefix: int, bits: int) -> np.ndarray:
    """Which order keys start with the `bits` bits `prefix`."""
    if bits == 0:
        return np.ones(len(hi), dtype=bool)
    if bits <= 64:
        return hi >> np.uint64(64 - bits) == np.uint64(prefix)
    low = bits - 64
    return (hi == np.uint64(prefix >> low)) & (lo >> np.uint64(64 - low) == np.uint64(prefix & ((1 << low) - 1)))


def _digits(hi: np.ndarray, lo: np.ndarray, bits: int) -> np.ndarray:
    """The order keys' DIGIT_BITS bits after the first `bits` (a multiple of DIGIT_BITS)."""
    word, at = (hi, bits) if bits < 64 else (lo, bits - 64)
    return ((word >> np.uint64(64 - at - DIGIT_BITS)) & np.uint64(DIGITS - 1)).astype(np.int64)


def trim_census(item: tuple[int, str], work: str, names: list[str], limits: dict[int, int]) -> dict:
    """Per (domain code, source) of the part's training rows: [tokens, documents, smallest and
    largest order key]."""
    table, codes, train, hi, lo = _trim_rows(work, item[1], names, limits)
    tokens = table["tokens"].to_numpy()
    out = {}
    for source in pc.unique(table["source"]).to_pylist():
        for code in np.unique(codes[train]).tolist():
            rows = np.flatnonzero(train & in_group(table, codes, (code, source)))
            if len(rows):
                order = rows[np.lexsort((lo[rows], hi[rows]))]
                out[code, source] = [int(tokens[rows].sum()), len(rows), (int(hi[order[0]]) << 64) | int(lo[order[0]]),
                                     (int(hi[order[-1]]) << 64) | int(lo[order[-1]])]
    return out


def add_trim_census(*summaries: dict) -> dict:
    out: dict = {}
    for summary in summaries:
        for group, (tokens, documents, low, high) in summary.items():
            have = out.get(group)
            out[group] = ([tokens, documents, low, high] if have is None
                          else [have[0] + tokens, have[1] + documents, min(have[2], low), max(have[3], high)])
    return out


def _in_state(trim: tuple, group: tuple, prefix: int, bits: int) -> np.ndarray:
    """The group's training rows whose order key starts with `prefix`."""
    table, codes, train, hi, lo = trim
    rows = np.flatnonzero(train & in_group(table, codes, group))
    return rows[_matching(hi[rows], lo[rows], prefix, bits)]


def trim_histogram(item: tuple[int, str], work: str, names: list[str], limits: dict[int, int],
                   states: dict) -> dict:
    """Per group: documents and tokens (a 2 x DIGITS array) by the next digit of the order
    keys that start with the group's (prefix, bits)."""
    trim = _trim_rows(work, item[1], names, limits)
    table, hi, lo = trim[0], trim[3], trim[4]
    out = {}
    for group, (prefix, bits) in states.items():
        rows = _in_state(trim, group, prefix, bits)
        digits = _digits(hi[rows], lo[rows], bits)
        tokens = table["tokens"].to_numpy()[rows]
        out[group] = np.stack([np.bincount(digits, minlength=DIGITS),
                               np.bincount(digits, weights=tokens, minlength=DIGITS).round().astype(np.int64)])
    return out


def trim_candidates(item: tuple[int, str], work: str, names: list[str], limits: dict[int, int],
                    states: dict) -> dict:
    """Per group: (hi, lo, part, row, tokens) of the part's rows whose order key starts with
    the group's prefix, as a 5 x n uint64 array."""
    trim = _trim_rows(work, item[1], names, limits)
    table, hi, lo = trim[0], trim[3], trim[4]
    out = {}
    for group, (prefix, bits) in states.items():
        rows = _in_state(trim, group, prefix, bits)
        out[group] = np.stack([hi[rows], lo[rows], np.full(len(rows), item[0], np.uint64),
                               table["row"].to_numpy()[rows].astype(np.uint64),
                               table["tokens"].to_numpy()[rows].astype(np.uint64)])
    return out


def trimmed(hi, lo, part: int, row: np.ndarray, cut: tuple) -> np.ndarray:
    """Which rows come before the cut (hi, lo, part, row, include) in the trim order, or are
    the cut itself when it is included."""
    chi, clo, cpart, crow, include = cut
    chi, clo = np.uint64(chi), np.uint64(clo)
    at = (part < cpart) | ((part == cpart) & ((row < crow) | ((row == crow) & include)))
    return (hi < chi) | ((hi == chi) & ((lo < clo) | ((lo == clo) & at)))


# -- fates -------------------------------------------------------------------------------------

def _span(index: np.ndarray, tokens: np.ndarray, mask: np.ndarray) -> list[int]:
    """[documents, tokens, first index, last index + 1] of the rows in `mask`."""
    if not mask.any():
        return [0, 0, 0, 0]
    rows = np.flatnonzero(mask)
    return [len(rows), int(tokens[rows].sum()), int(index[rows[0]]), int(index[rows[-1]]) + 1]


def write_fates(item: tuple[int, str], work: str, names: list[str], limits: dict[int, int], valid_dir: str,
                cuts: dict) -> dict:
    """Decide and write the part's `fate.parquet` (row, domain, index, fate, tokens); return
    its stats, training tokens per group, whether it drops documents and, per domain, its
    training and validation spans (documents, tokens, first index, stop: a 1 x domains x 8 array)."""
    part, stem = item
    table = read_docs(work, stem, ["row", "domain", "source", "epoch", "rank", "index", "tokens", "bytes",
                                   "valid_key", "trim_key"])
    codes, tokens = domain_codes(table, names), table["tokens"].to_numpy()
    fate = np.where(tokens > 0, "", EMPTY).astype(object)
    fate[chosen_mask(codes, table["valid_key"].to_numpy(), tokens, limits)] = COPY_OF_VALID
    valid = valid_path(valid_dir, part)
    if limits and storage.exists(valid):
        fate[storage.read_table(valid)["row"].to_numpy()] = VALID
    hi, lo = order_keys(table)
    row = table["row"].to_numpy()
    for group, cut in cuts.items():
        mine = (fate == "") & in_group(table, codes, group)
        fate[mine & trimmed(hi, lo, part, row, cut)] = TRIMMED
    write_parquet(pa.table({"row": row, "domain": table["domain"], "index": table["index"],
                            "fate": pa.array(fate, pa.string()), "tokens": tokens}),
                  storage.join(work, stem, "fate.parquet"))
    return _part_summary(table, codes, fate, len(names))


def _part_summary(table: pa.Table, codes: np.ndarray, fate: np.ndarray, n_domains: int) -> dict:
    tokens, n_bytes, index = table["tokens"].to_numpy(), table["bytes"].to_numpy(), table["index"].to_numpy()
    train, valid = fate == "", fate == VALID
    stats = StageStats(docs_in=table.num_rows, bytes_in=int(n_bytes.sum()), docs_out=int((train | valid).sum()),
                       bytes_out=int(n_bytes[train | valid].sum()))
    for reason in sorted(set(fate[~(train | valid)].tolist())):
        mine = fate == reason
        stats.docs_rejected += int(mine.sum())
        stats.bytes_rejected += int(n_bytes[mine].sum())
        stats.rejected[f"tokenize.{reason}"] += int(mine.sum())
        stats.rejected_bytes[f"tokenize.{reason}"] += int(n_bytes[mine].sum())
    stats.counters.update({"tokens_train": int(tokens[train].sum()), "tokens_valid": int(tokens[valid].sum())})
    kept: Counter = Counter()
    for source in pc.unique(table["source"]).to_pylist():
        for code in np.unique(codes[train]).tolist():
            kept[code, source] += int(tokens[train & in_group(table, codes, (code, source))].sum())
    spans = np.zeros((1, n_domains, 8), dtype=np.int64)
    for code in np.unique(codes[train | valid]).tolist():
        spans[0, code] = _span(index, tokens, train & (codes == code)) + _span(index, tokens, valid & (codes == code))
    return {"stats": stats, "kept": +kept, "spans": spans, "rejected": np.asarray([(~(train | valid)).any()])}


def add_part_summaries(*summaries: dict) -> dict:
    return {"stats": sum((s["stats"] for s in summaries), StageStats()),
            "kept": sum((s["kept"] for s in summaries), Counter()),
            "spans": np.concatenate([s["spans"] for s in summaries]),
            "rejected": np.concatenate([s["rejected"] for s in summaries])}


def train_documents(work: str, stem: str, domain: str) -> tuple[np.ndarray, np.ndarray]:
    """(index, tokens) of the part's training documents of `domain`, in row order."""
    table = storage.read_table(storage.join(work, stem, "fate.parquet"), columns=["domain", "fate", "index", "tokens"])
    table = table.filter(pc.and_(pc.equal(table["domain"], domain), pc.equal(table["fate"], "")))
    return table["index"].to_numpy(), table["tokens"].to_numpy()
