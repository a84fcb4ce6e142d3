"""The stage registry: the core names no stage package (pipeline/registry.py lists thresher's
own), every listed module registers stages, and an installed plugin's `thresher.stages` entry
point adds its stages to configs; a plugin that does not import fails with one line naming it."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from pipeline import stage as stage_module
from pipeline.config import parse_config
from pipeline.configbase import ConfigError
from pipeline.registry import COMMAND_MODULES, ENTRY_POINT_GROUP, STAGE_MODULES
from pipeline.stage import REGISTRY, load_registry
from tests.conftest import REPO

PLUGIN = '''
from pipeline.stage import Filter, StageParams, register


@register
class PluginMinLetters(Filter):
    """Drop documents with fewer letters than `min_letters` (a plugin's stage)."""

    name = "plugin_min_letters"

    class Params(StageParams):
        min_letters: int = 1

    def filter(self, doc):
        return None if sum(c.isalpha() for c in doc.text or "") >= self.params.min_letters else "too_few_letters"
'''


def test_every_listed_module_registers_a_stage_and_mix_is_beside_tokenize():
    registry = load_registry()
    modules = {cls.__module__ for cls in registry.values()}
    assert set(STAGE_MODULES) <= modules
    assert registry["mix"].__module__ == "tokenization.mix" and registry["tokenize"].__module__ == "tokenization.stage"


def test_the_core_imports_no_stage_package():
    """Only pipeline/registry.py names the packages that hold stages and sub-commands."""
    plugins = {"filters", "dedup", "tokenization", "training"}
    for path in sorted((REPO / "pipeline").glob("*.py")):
        if path.name == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not {n.split(".")[0] for n in names} & plugins, f"{path.name} imports {names}"
            if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a module named in a string
                assert node.value.split(".")[0] not in plugins or " " in node.value, f"{path.name}: {node.value!r}"
    assert "training.cli" in COMMAND_MODULES


@pytest.fixture
def plugin_entry_points(tmp_path, monkeypatch):
    """Install-free stand-in for `pip install` of a plugin: its module on sys.path and its entry
    point in what `importlib.metadata.entry_points` returns."""
    def install(module: str, source: str | None) -> None:
        if source is not None:
            Path(tmp_path, f"{module}.py").write_text(source)
        entry = EntryPoint(name="demo_plugin", value=module, group=ENTRY_POINT_GROUP)
        monkeypatch.setattr(stage_module, "entry_points", lambda group: [entry] if group == ENTRY_POINT_GROUP else [])
        stage_module._import_stage_modules.cache_clear()

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    REGISTRY.pop("plugin_min_letters", None)
    stage_module._import_stage_modules.cache_clear()


def test_a_plugin_entry_point_adds_its_stage_to_configs(plugin_entry_points, tmp_path):
    assert "plugin_min_letters" not in load_registry()
    plugin_entry_points("thresher_demo_plugin", PLUGIN)
    assert load_registry()["plugin_min_letters"].__module__ == "thresher_demo_plugin"
    config = parse_config({"output": str(tmp_path / "out"), "inputs": [{"path": "x.jsonl", "format": "jsonl",
                                                                        "source": "s"}],
                           "stages": [{"plugin_min_letters": {"min_letters": 3}}]})
    (stage,) = config.build_stages()
    assert stage.params.min_letters == 3


def test_a_plugin_that_does_not_import_is_named(plugin_entry_points):
    plugin_entry_points("thresher_missing_plugin", None)
    with pytest.raises(ConfigError, match=r"stage plugin demo_plugin = 'thresher_missing_plugin'.*does not import"):
        load_registry()
