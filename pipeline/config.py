"""Run configuration: YAML -> validated, frozen objects, once, at start-up.

    output: out/web                 # where every stage writes; --output overrides
    seed: 0
    inputs:                         # read in this order; paths are fsspec globs, relative to
      - path: data/*.warc.gz        #   the directory `thresher` runs in
        format: warc                # warc | html | jsonl | parquet | text
        source: crawl               # a name for this input, kept on every document
        domain: general             # optional: a domain label for every document
    read: {max_docs_per_part: 1000}
    stages:                         # run in order; each item is {stage_name: {params}}
      - extract: {favor_precision: false}
      - language: {keep: [en], min_score: 0.65}
    cluster: {kind: slurm, jobs: 4, cores: 8, memory: 16GB, walltime: "02:00:00"}   # optional
    guards: {max_loss_fraction: 0.99}   # optional: when a run fails instead of exiting 0 (pipeline/guards.py)

A bad key fails with one line that names its dotted path and says what is valid, e.g.
`stages[1].language.min_score: Input should be less than or equal to 1`; so does a stage put
where it cannot read its input (`lsh_buckets` not right after `minhash_signatures`), or after no
stage that produces an artifact it needs (`tokenize: {mixture: required}` without a `mix` before).
`${VAR}` and `${VAR:-default}` in strings are replaced from the environment.

    from pipeline.config import load_config
    config = load_config("configs/demo.yaml", output="out/demo")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from pipeline.configbase import (  # noqa: F401 (config_hash and ConfigError are imported from here too)
    ConfigError,
    Frozen,
    config_hash,
    expand_env,
    load_yaml,
    validate_config,
)
from pipeline.guards import GuardOptions
from pipeline.options import REDACTED, ClusterOptions, InputSpec, ReadOptions
from pipeline.stage import Scope, Stage, load_registry


class StageSpec(Frozen):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    scope: Scope = Scope()  # `only` / `skip`, given beside the stage's params
    materialize: bool | None = None  # `materialize: true|false` beside the params; None: the stage's default


class RunConfig(Frozen):
    output: str = Field(description="local path or fsspec URL (s3://bucket/prefix)")
    seed: int = 0
    inputs: list[InputSpec] = Field(min_length=1)
    read: ReadOptions = ReadOptions()
    stages: list[StageSpec] = Field(default_factory=list)
    cluster: ClusterOptions | None = None
    guards: GuardOptions = GuardOptions()
    storage_options: dict[str, Any] | None = Field(
        None, description="fsspec options for the output URL (never written out; default: the environment)")

    @field_validator("inputs")
    @classmethod
    def _unique_sources(cls, inputs: list[InputSpec]) -> list[InputSpec]:
        seen: set[tuple[str, str]] = set()
        for spec in inputs:
            if (spec.source, spec.path) in seen:
                raise ValueError(f"input {spec.path!r} is listed twice for source {spec.source!r}")
            seen.add((spec.source, spec.path))
        return inputs

    def build_stages(self) -> list[Stage]:
        registry = load_registry()
        stages = []
        for spec in self.stages:
            cls = registry[spec.name]
            stage = cls(cls.Params.model_validate(spec.params), spec.scope)
            if spec.materialize is not None:
                stage.materialize = spec.materialize
            stages.append(stage)
        return stages

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as written next to the output: storage options (credentials)
        show their keys only, never their values."""
        d = self.model_dump(mode="json")
        d["stages"] = [{s["name"]: {**s["params"], **Scope.model_validate(s["scope"]).model_dump(exclude_none=True),
                                    **({} if s["materialize"] is None else {"materialize": s["materialize"]})}}
                       for s in d["stages"]]
        if d["cluster"] is None:
            del d["cluster"]
        for holder in [d, *d["inputs"]]:
            options = holder.pop("storage_options", None)
            if options:  # absent when unset, so a config without them writes what it always did
                holder["storage_options"] = {k: REDACTED for k in options}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)


def _parse_stage(item: Any, index: int) -> StageSpec:
    registry = load_registry()
    where = f"stages[{index}]"
    if isinstance(item, str):
        item = {item: {}}
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(f"{where}: each stage is a mapping with one key, {{stage_name: {{params}}}}")
    (name, params), = item.items()
    if name not in registry:
        raise ConfigError(f"{where}: unknown stage {name!r}; known stages are: {', '.join(sorted(registry))}")
    if params is not None and not isinstance(params, dict):
        raise ConfigError(f"{where}.{name}: parameters must be a mapping, got {type(params).__name__}")
    params = dict(params or {})
    scope = validate_config(Scope, {k: params.pop(k) for k in ("only", "skip") if k in params}, f"{where}.{name}")
    if scope.mask_is_set() and registry[name].kind != "map":
        key = "only" if scope.only is not None else "skip"
        raise ConfigError(f"{where}.{name}.{key}: only map stages take a scope; {name} is a global stage and "
                          "sees every document")
    materialize = _materialize(params.pop("materialize", None), registry[name].kind, f"{where}.{name}")
    validated = validate_config(registry[name].Params, params, f"{where}.{name}")
    return StageSpec(name=name, params=validated.model_dump(mode="json"), scope=scope, materialize=materialize)


def _materialize(value: Any, kind: str, where: str) -> bool | None:
    """A stage's `materialize` key: whether a map stage's kept documents are written even when
    a map stage follows (the runner fuses consecutive map stages otherwise)."""
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"{where}.materialize: must be true or false, got {value!r}")
    if value is not None and kind != "map":
        raise ConfigError(f"{where}.materialize: only map stages take it; a global stage always writes its "
                          "documents")
    return value


def parse_config(data: Any, output: str | None = None, cluster: str | None = None) -> RunConfig:
    """The validated config of `data`; `output` and `cluster` (a kind) override its keys."""
    if not isinstance(data, dict):
        raise ConfigError("config: the top level must be a mapping with output, inputs, stages")
    data = expand_env(dict(data))
    if output is not None:
        data["output"] = output
    if cluster is not None:
        data["cluster"] = _with_kind(data.get("cluster"), cluster)
    stages = data.pop("stages", []) or []
    if not isinstance(stages, list):
        raise ConfigError("stages: must be a list of {stage_name: {params}}")
    config = validate_config(RunConfig, data)
    specs = [_parse_stage(item, i) for i, item in enumerate(stages)]
    check_stage_order([spec.name for spec in specs])
    check_artifacts(specs)
    return config.model_copy(update={"stages": specs})


def check_stage_order(names: list[str]) -> None:
    """A stage that reads what one particular stage wrote (its class's `follows`) must come
    right after it: found here, before the read stage runs, not when the stage starts."""
    registry = load_registry()
    for index, name in enumerate(names):
        follows = registry[name].follows
        before = names[index - 1] if index else "read"
        if follows and before not in follows:
            raise ConfigError(f"stages[{index}].{name}: must come right after {' or '.join(follows)}, whose "
                              f"output it reads ({_chain(name, registry)}); here it follows {before}")


def check_artifacts(specs: list[StageSpec]) -> None:
    """A stage that needs an artifact (its class's `needs`, given its params) must come after a
    stage that produces it: found here, before the read stage runs, not when the stage starts."""
    registry = load_registry()
    produced: set[str] = set()
    for index, spec in enumerate(specs):
        cls = registry[spec.name]
        for artifact in cls.needs(cls.Params.model_validate(spec.params)):
            if artifact not in produced:
                makers = " or ".join(n for n, c in sorted(registry.items()) if artifact in c.produces)
                raise ConfigError(f"stages[{index}].{spec.name}: needs the {artifact} artifact, which no earlier "
                                  f"stage produces; add {makers} before it")
        produced.update(cls.produces)


def _chain(name: str, registry: dict) -> str:
    """The run of stages linked by `follows` through `name`: `a -> b -> c`."""
    chain = [name]
    while len(registry[chain[0]].follows) == 1:
        chain.insert(0, registry[chain[0]].follows[0])
    while after := [n for n, cls in sorted(registry.items()) if chain[-1] in cls.follows and n not in chain]:
        chain.append(after[0])
    return " -> ".join(chain)


def _with_kind(section: Any, kind: str) -> dict[str, Any]:
    """The `cluster:` section with `kind` set (from `--cluster KIND`)."""
    if section is None:
        return {"kind": kind}
    if not isinstance(section, dict):
        raise ConfigError(f"cluster: must be a mapping of options, got {type(section).__name__}")
    return {**section, "kind": kind}


def load_config(path: str | Path, output: str | None = None, cluster: str | None = None) -> RunConfig:
    data = load_yaml(path)
    return parse_config(data, output=output, cluster=cluster)
