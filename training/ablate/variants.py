"""Each variant of an ablation as token shards made with the one shared tokenizer.

A `pipeline` variant runs under `OUTPUT/variants/<name>/` with `thresher run`'s runner, so a
rerun reuses every finished stage. With `tokenizer: {model: ...}` it runs once, its own tokenize
stage (if any) replaced by `tokenize: {model: <shared>}`. With `tokenizer: {train: ...}` it runs
in two passes: first the curation stages alone, then (after the tokenizer is trained on an
equal-bytes sample of every variant's final documents, `tokenization.sample`, so no variant's
vocabulary dominates) again with the tokenize stage appended; the second pass reuses the first's
stages. A `shards` variant is used as it is, once its manifest's tokenizer is the shared one.

    model, manifests = prepare_variants(config, client, progress=True)   # client: () -> a Dask client
"""

from __future__ import annotations

from pathlib import Path

from pipeline import storage
from pipeline.config import ConfigError, RunConfig, StageSpec, config_hash
from pipeline.io import file_sha256, read_json, write_json
from pipeline.report.sources import run_stages
from pipeline.runner import Runner
from tokenization.sample import iter_parquet_documents, sample_texts
from tokenization.train import train_tokenizer
from training.ablate.config import AblateConfig
from training.shards import find_manifest


def log(message: str) -> None:
    print(f"[ablate] {message}", flush=True)


def variant_dir(config: AblateConfig, name: str) -> str:
    return str(Path(config.output) / "variants" / name)


def curation_config(config: AblateConfig, name: str) -> RunConfig:
    """Variant `name`'s pipeline without its tokenize stage (the ablation adds its own)."""
    run = config.pipeline_config(name, variant_dir(config, name))
    stages = [s for s in run.stages if s.name != "tokenize"]
    return run.model_copy(update={"stages": stages})


def with_tokenize(config: AblateConfig, run: RunConfig, model: str) -> RunConfig:
    params = {"model": model, "mixture": "none", **config.tokenize.model_dump()}
    return run.model_copy(update={"stages": [*run.stages, StageSpec(name="tokenize", params=params)]})


def final_documents(output: str) -> list[str]:
    """The parquet parts of the last stage of a run that wrote documents."""
    for stage in reversed(run_stages(output)):
        if stage.manifest.get("parts"):
            return [storage.join(stage.dir, p) for p in stage.manifest["parts"]]
    raise ValueError(f"{output}: the run wrote no documents; check its stages")


def finished(run: RunConfig) -> bool:
    """Whether `run` ran to its end with exactly this config (its stats.json is written last)."""
    stats = Path(run.output) / "stats.json"
    return stats.is_file() and read_json(stats)["config_hash"] == config_hash(run.to_dict())


def tokenized_with(run: RunConfig, model: Path) -> bool:
    """Whether `run` finished, tokenize stage included, with the tokenizer now at `model`."""
    if not (model.is_file() and finished(run)):
        return False
    return read_json(find_manifest(run.output))["tokenizer"]["sha256"] == file_sha256(model)


def shared_tokenizer(config: AblateConfig, client, progress: bool) -> str:
    """The shared tokenizer's path: the given one, or one trained here (once: reused while the
    options and every variant's final documents are the same). A variant whose full run already
    finished with the tokenizer in place is not run again to find its documents."""
    if config.tokenizer.model is not None:
        if not storage.isfile(config.tokenizer.model):
            raise ConfigError(f"tokenizer.model: {config.tokenizer.model!r} does not exist")
        return config.tokenizer.model
    folder = Path(config.output) / "tokenizer"
    model = folder / "tokenizer.model"
    parts = {}
    for name in config.variants:
        run = curation_config(config, name)
        if not tokenized_with(with_tokenize(config, run, str(model)), model):
            log(f"variant {name}: curation stages ({len(run.stages)}) -> {run.output}")
            Runner(run, client(), progress=progress).run()
        parts[name] = final_documents(run.output)
    options = config.tokenizer.train
    documents = {n: [(p, storage.size(p)) for p in ps] for n, ps in parts.items()}
    fingerprint = config_hash([options.model_dump(), documents])
    receipt = folder / "tokenizer.json"
    if receipt.is_file() and read_json(receipt).get("fingerprint") == fingerprint:
        log(f"tokenizer: reusing {model}")
        return str(model)
    share = options.max_sample_bytes // len(parts)
    texts = [text for name in config.variants for text in sample_texts(iter_parquet_documents(parts[name]), 0, share)]
    info = train_tokenizer(texts, options, model)
    write_json({"fingerprint": fingerprint, **info.to_dict()}, receipt)  # last: marks it done
    log(f"tokenizer: trained {info.vocab_size} pieces on {info.documents} documents ({info.sample_bytes:,} bytes)")
    return info.path


def prepare_variants(config: AblateConfig, client, progress: bool = True) -> tuple[str, dict[str, str]]:
    """(shared tokenizer path, variant name -> its manifest.json), running what is missing."""
    model = shared_tokenizer(config, client, progress)
    sha = file_sha256(model)
    manifests = {}
    for name, spec in config.variants.items():
        if spec.shards is not None:
            manifests[name] = str(find_manifest(spec.shards))
            if not storage.isfile(manifests[name]):
                raise ConfigError(f"variants.{name}.shards: {manifests[name]} does not exist")
        else:
            run = with_tokenize(config, curation_config(config, name), model)
            if not tokenized_with(run, Path(model)):
                log(f"variant {name}: pipeline ({len(run.stages)} stages) -> {run.output}")
                Runner(run, client(), progress=progress).run()
            manifests[name] = str(find_manifest(run.output))
        made_with = read_json(manifests[name])["tokenizer"]["sha256"]
        if made_with != sha:
            raise ConfigError(f"variants.{name}: its shards were made with another tokenizer (sha256 "
                              f"{made_with[:12]}, shared {sha[:12]}); retokenize with tokenizer.model")
    return model, manifests


def kept(manifest_path: str) -> dict:
    """Documents and tokens a variant kept (training shards; the held-out `valid` shards apart),
    and, for a pipeline variant, the documents it read."""
    manifest = read_json(manifest_path)
    domains = manifest["domains"].values()
    summary = {"documents": sum(d["documents"] for d in domains), "tokens": sum(d["tokens"] for d in domains),
               "valid_tokens": sum((d.get("valid") or {}).get("tokens", 0) for d in domains)}
    stats = Path(manifest_path).parent.parent / "stats.json"
    if stats.is_file():
        summary["documents_read"] = read_json(stats)["summary"]["documents_read"]
    return summary
