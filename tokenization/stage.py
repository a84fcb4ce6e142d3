"""The `tokenize` stage: documents -> per-domain Megatron shards + `manifest.json`.

    - tokenize: {model: tokenizers/fin.model}                      # encode with a given model
    - tokenize: {train: {vocab_size: 8000, model_type: bpe}}      # train in-run, then encode

Steps: (1) the tokenizer: copy the given model, or train one on a deterministic sample of
the stage's input (`tokenization.sample`, `tokenization.train`), as `tokenizer.model`;
(2) encode every input part in parallel on Dask (`tokenization.encode`: the model is loaded
once per worker, tasks only get its path); (3) plan on the workers from per-part summaries and shuffles
(`tokenization.plan`: no process holds a row per document; the client gets the shard plans):
hold out a validation shard per domain, correct the mix stage's token estimate by the real
counts, fill bounded shards in input order; (4) copy the planned runs into
`<domain>/shard-NNNNN.bin|.idx` and `<domain>/valid-00000.bin|.idx` in parallel, each with a
`.docs.parquet` sidecar (per sequence: `sequence`, the document's `id`, `original_id` and mix
`epoch`, its `token_offset` in the shard and `tokens` with EOS; what `thresher trace` reads to go
from a sequence back to its document, and back), route dropped
documents to `rejected/` with their reason, and write `manifest.json` (see
`tokenization.manifest`). Document order is fixed by (part name, row) and every choice is
seeded, so the shards are byte-identical across reruns and worker counts. The stage writes
no `part-*.parquet`: it is meant to be the last one.

The mixture is the `mixture` artifact of the latest mix stage earlier in the run, however many
stages come in between (`ctx.artifacts`); `mixture: required` refuses a config without one
before the run, `mixture: none` ignores it (the weights are then the shares of tokens written).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from pipeline import storage
from pipeline.context import GlobalResult
from pipeline.io import file_sha256, read_json, write_bytes, write_parquet
from pipeline.parts import read_part
from pipeline.record import with_reason
from pipeline.stage import GlobalStage, StageParams, register
from tokenization import plan as planning
from tokenization.encode import DOCS_SCHEMA, domain_dir_name, encode_part, load_processor
from tokenization.indexed import IndexedDataset, IndexedWriter, token_dtype
from tokenization.manifest import write_manifest
from tokenization.sample import iter_parquet_documents, sample_texts
from tokenization.train import TokenizerOptions, train_tokenizer

MODEL_NAME = "tokenizer.model"
# Beside every shard `<prefix>.bin|.idx`: which document each sequence holds (`thresher trace`).
DOCS_SUFFIX = ".docs.parquet"
SIDECAR_SCHEMA = pa.schema([("sequence", pa.int64()), ("id", pa.string()), ("original_id", pa.string()),
                            ("epoch", pa.int32()), ("token_offset", pa.int64()), ("tokens", pa.int64())])


class TokenizeParams(StageParams):
    omitted_at_default = ("mixture",)  # added later: old fingerprints hold
    model: str | None = Field(None, description="sentencepiece .model to encode with")
    train: TokenizerOptions | None = Field(None, description="train a tokenizer on a sample of the input")
    max_shard_tokens: int = Field(500_000_000, gt=0, description="tokens per training shard at most")
    valid_fraction: float = Field(0.01, ge=0, lt=1, description="original documents per domain held out")
    mixture: Literal["auto", "required", "none"] = Field(
        "auto", description="the mix stage's targets: auto (used when a mix stage ran earlier in the run), "
        "required (a config without an earlier mix is refused) or none (ignored: weights are the tokens written)")

    @model_validator(mode="after")
    def _one_tokenizer(self) -> TokenizeParams:
        if (self.model is None) == (self.train is None):
            raise ValueError("give exactly one of `model` (a .model path) or `train` (tokenizer options)")
        return self


@register
class Tokenize(GlobalStage):
    """Encode with sentencepiece into per-domain Megatron shards + manifest.json."""

    name = "tokenize"
    Params = TokenizeParams
    # Trimming to the mixture and dropping repeated copies of validation documents lose nothing.
    sampling_reasons = frozenset({f"tokenize.{planning.TRIMMED}", f"tokenize.{planning.COPY_OF_VALID}"})
    uses = ("mixture",)

    @classmethod
    def needs(cls, params: TokenizeParams) -> tuple[str, ...]:
        return ("mixture",) if params.mixture == "required" else ()

    def check(self) -> None:
        import sentencepiece  # noqa: F401  (a missing dependency fails before the run)

        if self.params.model is not None:
            if not storage.isfile(self.params.model):
                raise ValueError(f"tokenize.model: {self.params.model!r} does not exist")
            if load_processor(self.params.model).eos_id() < 0:
                raise ValueError(f"tokenize.model: {self.params.model!r} has no EOS piece; train it with eos_id >= 0")

    def fingerprint_extra(self) -> str | None:
        """A retrained model at the same path must re-encode."""
        model = self.params.model
        return file_sha256(model) if model is not None and storage.isfile(model) else None

    def run(self, ctx) -> GlobalResult:
        info = self._tokenizer(ctx)
        work = _work_dir(ctx.dir, info["sha256"])
        dtype = np.dtype(token_dtype(info["vocab_size"])).name
        paths = ctx.input.paths()
        # A part's docs.parquet is written after its token files: it commits the part's work.
        encoded = set(storage.walk_files(work))  # one listing, not a request per part
        todo = [p for p in ctx.input.parts if f"{storage.stem(p)}/docs.parquet" not in encoded]
        ctx.map(encode_task, [ctx.input.path(p) for p in todo], "encode", cost=ctx.input.costs(todo), work_dir=work,
                model_path=info["path"], sha256=info["sha256"], dtype=dtype, seed=ctx.seed)
        stems = [storage.stem(p) for p in paths]
        mixture = self._mixture(ctx)
        targets, nested, epochs = _targets(mixture)
        planned = planning.plan(ctx, work, stems, self.params.valid_fraction, targets, nested,
                                self.params.max_shard_tokens)
        plans = planned.plans
        ctx.map(write_shard, plans, "shards", cost=[p["tokens"] for p in plans], work_dir=work,
                out_dir=ctx.dir, dtype=dtype)
        rejected = [paths[i] for i in planned.rejected_parts]
        ctx.map(write_rejected_part, rejected, "rejected", work_dir=work, out_dir=ctx.dir)
        manifest = _manifest(info, dtype, plans, mixture)
        write_manifest(manifest, ctx.dir)
        storage.rm(work)
        return GlobalResult(planned.stats, (), _summary(info, manifest, _corrected(planned.correction, epochs)))

    def _mixture(self, ctx) -> dict | None:
        """The report of the latest mix stage before this one, however many stages came in
        between (None without one, or with `mixture: none`)."""
        folder = ctx.artifacts.get("mixture")
        if self.params.mixture == "none" or folder is None:
            if self.params.mixture == "required":  # the config check refuses this before the run
                raise ValueError("tokenize.mixture: required, but no mix stage ran before tokenize")
            return None
        return read_json(storage.join(folder, "_manifest.json"))["mixture"]

    def _tokenizer(self, ctx) -> dict[str, Any]:
        """Copy or train the model into the stage's folder; return its manifest entry."""
        path = ctx.path(MODEL_NAME)
        if self.params.model is not None:
            model = storage.read_bytes(self.params.model)
            write_bytes(model, path)
            write_bytes(f"{hashlib.sha256(model).hexdigest()}  {MODEL_NAME}\n".encode(), f"{path}.sha256")
        elif not _finished(path):  # a resumed run keeps the model it already trained
            texts = sample_texts(iter_parquet_documents(ctx.input.paths()), ctx.seed,
                                 self.params.train.max_sample_bytes)
            train_tokenizer(texts, self.params.train, path)
        sha = file_sha256(path)
        sp = load_processor(path, sha)
        if sp.eos_id() < 0:
            raise ValueError("tokenize: the tokenizer has no EOS piece; train it with eos_id >= 0")
        return {"path": storage.absolute(path), "sha256": sha, "vocab_size": sp.get_piece_size(),
                "model_type": _model_type(sp.serialized_model_proto()), "eos_id": sp.eos_id(), "bos_id": sp.bos_id()}


def _work_dir(directory: str, sha256: str) -> str:
    """Temporary per-part token files; parts encoded by another model (a file replaced at
    the same path between a killed run and its resumption) or written with other docs.parquet
    columns (by an older thresher) are thrown away."""
    work = storage.join(directory, "_work")
    marker = storage.join(work, "tokenizer.sha256")
    expected = f"{sha256} {','.join(DOCS_SCHEMA.names)}"
    if storage.exists(work) and (not storage.exists(marker) or storage.read_bytes(marker).decode() != expected):
        storage.rm(work)
    write_bytes(expected.encode(), marker)
    return work


def _finished(model: str) -> bool:
    sha = f"{model}.sha256"
    return (storage.exists(model) and storage.exists(sha)
            and storage.read_bytes(sha).decode().split()[0] == file_sha256(model))


def _model_type(serialized: bytes) -> str:
    """TrainerSpec.model_type of a serialized sentencepiece ModelProto (field 2, then its
    field 3), read without the protobuf package."""
    spec = _proto_field(serialized, 2)
    value = _proto_field(spec, 3) if isinstance(spec, bytes) else None
    return {1: "unigram", 2: "bpe", 3: "word", 4: "char"}.get(value if isinstance(value, int) else 1, "unknown")


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _proto_field(data: bytes, number: int) -> bytes | int | None:
    pos = 0
    if number != 1:  # skip the leading run of field-1 entries (a ModelProto's pieces) fast
        while pos < len(data) and data[pos] == 0x0A:
            size, pos = _varint(data, pos + 1)
            pos += size
    while pos < len(data):
        tag, pos = _varint(data, pos)
        wire = tag & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            size, pos = _varint(data, pos)
            value, pos = data[pos:pos + size], pos + size
        else:  # fixed 64 / 32 bit
            size = 8 if wire == 1 else 4
            value, pos = data[pos:pos + size], pos + size
        if tag >> 3 == number:
            return value
    return None


def encode_task(in_path: str, **kwargs: Any) -> int:
    """`encode_part` on a worker; only its row count comes back (the client reads what it
    needs from docs.parquet: no strings)."""
    return encode_part(in_path, **kwargs).num_rows


def _targets(mixture: dict | None) -> tuple[dict[str, float], set[str], dict[str, float]]:
    """The mix stage's targets as ({key: share}, the nested domains, {key: epochs}): a key is a
    domain, or domain/source for a domain with per-source targets. No mix stage: nothing."""
    if not mixture:
        return {}, set(), {}
    targets: dict[str, float] = {}
    epochs: dict[str, float] = {}
    nested = {domain_dir_name(d) for d in mixture.get("source_targets", {})}
    for domain, share in mixture["targets"].items():
        report = mixture["domains"].get(domain, {})
        if domain_dir_name(domain) in nested:
            for source, value in mixture["source_targets"][domain].items():
                key = f"{domain_dir_name(domain)}/{source}"
                targets[key] = value
                epochs[key] = report.get("sources", {}).get(source, {}).get("epochs", 0.0)
        else:
            targets[domain_dir_name(domain)] = share
            epochs[domain_dir_name(domain)] = report.get("epochs", 0.0)
    return targets, nested, epochs


def _corrected(correction: dict, epochs: dict[str, float]) -> dict:
    """The trim's report with each key's achieved share and `epochs`: the mix stage's figure
    scaled by the share of tokens kept."""
    total = sum(entry["tokens_after"] for entry in correction.values()) or 1
    for key, entry in correction.items():
        kept = entry["tokens_after"] / entry["tokens_before"]
        entry.update(achieved=round(entry["tokens_after"] / total, 6), epochs=round(epochs[key] * kept, 4))
    return correction


def _taken(fates: dict, work: str, stem: str, domain: str, fate: str) -> np.ndarray:
    """Sorted indices into `stem`'s temporary `domain` file of its documents of `fate`."""
    if stem not in fates:
        fates[stem] = storage.read_table(storage.join(work, stem, "fate.parquet"), columns=["domain", "index", "fate"])
    table = fates[stem]
    mask = pc.and_(pc.equal(table["domain"], domain), pc.equal(table["fate"], fate))
    return np.sort(table["index"].filter(mask).to_numpy())


def write_shard(plan: dict, work_dir: str, out_dir: str, dtype: str) -> dict:
    """Copy a shard's documents from the temporary files, run by run of consecutive ones;
    runs on a Dask worker. A plan with a `fate` takes that fate's documents of each span
    (by the parts' fate files); one without takes every document of each run."""
    opened: dict[str, IndexedDataset] = {}
    fates: dict[str, pa.Table] = {}
    sequences: list[pa.Table] = []  # the shard's documents, in sequence order (the doc-id sidecar)
    prefix = storage.join(out_dir, plan["prefix"])
    with IndexedWriter(prefix, dtype=np.dtype(dtype).type) as writer:
        for stem, start, stop in plan["runs"]:
            if stem not in opened:
                opened[stem] = IndexedDataset(storage.join(work_dir, stem, plan["domain"]))
            ds = opened[stem]
            if "fate" in plan:  # a span: the documents of the shard's fate in it
                index = _taken(fates, work_dir, stem, plan["domain"], plan["fate"])
                index = index[(index >= start) & (index < stop)]
            else:  # a run: every document in it
                index = np.arange(start, stop)
            sequences.append(_sequence_ids(work_dir, stem, plan["domain"], index))
            breaks = np.flatnonzero(index[1:] != index[:-1] + 1) + 1
            for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(index)]):
                first_doc, stop_doc = int(index[a]), int(index[b - 1]) + 1
                first = int(ds.pointers[first_doc]) // ds.dtype.itemsize
                lengths = ds.lengths[first_doc:stop_doc]
                writer.add_documents(ds.read_range(first, first + int(lengths.sum(dtype=np.int64))), lengths)
    assert len(writer.lengths) == plan["documents"] and writer.num_tokens == plan["tokens"]
    write_parquet(_sidecar(sequences, writer.lengths), f"{prefix}{DOCS_SUFFIX}")
    return {"prefix": plan["prefix"], "documents": plan["documents"], "tokens": plan["tokens"]}


def _sequence_ids(work_dir: str, stem: str, domain: str, index: np.ndarray) -> pa.Table:
    """id, original_id and epoch of the documents at positions `index` of `stem`'s temporary
    `domain` file (docs.parquet's `index` column names those positions)."""
    docs = storage.read_table(storage.join(work_dir, stem, "docs.parquet"),
                              columns=["id", "original_id", "epoch", "domain", "index"])
    docs = docs.filter(pc.equal(docs["domain"], domain))
    order = np.argsort(docs["index"].to_numpy())
    position = np.searchsorted(docs["index"].to_numpy()[order], index)
    return docs.select(["id", "original_id", "epoch"]).take(pa.array(order[position]))


def _sidecar(sequences: list[pa.Table], lengths: list[int]) -> pa.Table:
    """The shard's `<prefix>.docs.parquet`: per sequence (row `sequence`), the document it holds,
    its first token's offset in the shard and its length with EOS."""
    empty = SIDECAR_SCHEMA.empty_table().select(["id", "original_id", "epoch"])
    table = pa.concat_tables(sequences) if sequences else empty
    sizes = np.asarray(lengths, dtype=np.int64)
    return pa.table([np.arange(len(sizes), dtype=np.int64), table["id"], table["original_id"], table["epoch"],
                     np.cumsum(sizes) - sizes, sizes], schema=SIDECAR_SCHEMA)


def write_rejected_part(in_path: str, work_dir: str, out_dir: str) -> None:
    """Write one input part's dropped rows (by its fate file) to rejected/; on a worker."""
    fates = storage.read_table(storage.join(work_dir, storage.stem(in_path), "fate.parquet"), columns=["row", "fate"])
    fate = fates["fate"].to_numpy(zero_copy_only=False)
    dropped = (fate != "") & (fate != planning.VALID)
    rows = fates["row"].to_numpy()[dropped]
    table = read_part(in_path).take(pa.array(rows, type=pa.int64()))
    table = with_reason(table, "tokenize", [f"tokenize.{f}" for f in fate[dropped]])
    write_parquet(table, storage.join(out_dir, "rejected", storage.basename(in_path)))


def _manifest(info: dict, dtype: str, plans: list[dict], mixture: dict | None) -> dict:
    domains: dict[str, dict] = {}
    for p in plans:
        entry = domains.setdefault(p["domain"],
                                   {"documents": 0, "tokens": 0, "weight": 0.0, "shards": [], "valid": None})
        shard = {"prefix": p["prefix"], "documents": p["documents"], "tokens": p["tokens"]}
        if p["prefix"].split("/")[-1].startswith("valid-"):
            entry["valid"] = shard
        else:
            entry["shards"].append(shard)
            entry["documents"] += p["documents"]
            entry["tokens"] += p["tokens"]
    if mixture:  # the mix stage's targets, over the domains that have shards
        targets = {domain_dir_name(d): share for d, share in mixture["targets"].items()}
        raw = {d: float(targets.get(d, 0.0)) for d in domains}
    else:  # no mix stage: the shares actually written
        raw = {d: float(e["tokens"]) for d, e in domains.items()}
    total = sum(raw.values()) or 1.0
    weights = {d: round(v / total, 6) for d, v in raw.items()}
    for d, entry in domains.items():
        entry["weight"] = weights[d]
    tokenizer = {k: info[k] for k in ("path", "sha256", "vocab_size", "model_type")}
    return {"format": "megatron-indexed", "format_version": 1, "tokenizer": tokenizer,
            "vocab_size": info["vocab_size"], "dtype": dtype, "eos_id": info["eos_id"],
            "bos_id": info["bos_id"] if info["bos_id"] >= 0 else None, "mixture": weights, "domains": domains}


def _summary(info: dict, manifest: dict, correction: dict) -> dict:
    total = sum(e["tokens"] for e in manifest["domains"].values()) or 1
    domains = {d: {"documents": e["documents"], "tokens": e["tokens"], "target": manifest["mixture"][d],
                   "achieved": round(e["tokens"] / total, 6), "shards": len(e["shards"]),
                   "valid_documents": e["valid"]["documents"] if e["valid"] else 0}
               for d, e in manifest["domains"].items()}
    return {"tokenizer": {k: info[k] for k in ("path", "sha256", "vocab_size", "model_type", "eos_id")},
            "shards": {"manifest": "manifest.json", "dtype": manifest["dtype"], "domains": domains},
            "mixture_correction": correction}
