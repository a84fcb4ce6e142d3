"""Generic YAML-config helpers, shared by the pipeline's run config (pipeline/config.py), the
trainer's (training/config.py) and the classifier recipes: the error type, the frozen model base,
`${VAR}` expansion, YAML loading and validation with one-line errors that name the dotted path
of the bad key. It imports neither the stage registry nor any stage, so a config of its own
(the trainer's) depends on this module only.

    data = expand_env(load_yaml("configs/train-tiny.yaml"))
    config = validate_config(TrainConfig, data)       # ConfigError: "optim.lr: ..." on a bad key
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


class ConfigError(ValueError):
    """Bad user configuration; the message names the key and what is valid."""


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def config_hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string of `value` from the environment."""
    if isinstance(value, str):
        return _ENV.sub(lambda m: os.environ.get(m.group(1), m.group(2) or ""), value)
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    return value


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _format_error(err: dict[str, Any], model: type[BaseModel], prefix: str) -> str:
    path = prefix + ("." if prefix and err["loc"] else "") + _loc(err["loc"])
    if err["type"] == "extra_forbidden":
        valid = _fields_at(model, err["loc"][:-1])
        return f"{path}: unknown key; valid keys are: {', '.join(valid)}"
    if err["type"] == "missing":
        return f"{path}: required key is missing"
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):  # without pydantic's "Value error, "
        return f"{path}: {err['ctx']['error']}"
    return f"{path}: {err['msg']}"


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (nested) model that `loc` points into, for error messages."""
    for part in loc:
        if isinstance(part, int):
            continue
        annotation = model.model_fields[part].annotation
        inner = getattr(annotation, "__args__", (annotation,))
        model = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), model)
    return list(model.model_fields)


def validate_config(model: type[BaseModel], data: Any, prefix: str = "") -> Any:
    """`model` validated from `data`, or a ConfigError naming the first bad key (under `prefix`)."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        errors = e.errors()
        # a misspelt key first: it explains the "required key is missing" that comes with it
        first = next((err for err in errors if err["type"] == "extra_forbidden"), errors[0])
        raise ConfigError(_format_error(first, model, prefix)) from None


def load_yaml(path: str | Path) -> Any:
    """The parsed YAML file at `path`, or a ConfigError saying why it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}".splitlines()[0]) from None
