"""The one list of the modules whose import registers thresher's own stages (and of those that add
`thresher` sub-commands), and the entry-point group through which an installed package adds
stages of its own.

The core (`pipeline.stage`, the config, the runner) names no stage and no stage package:
`pipeline.stage.load_registry` imports the modules below, then every module that an installed
distribution declares in the `thresher.stages` entry-point group. A plugin package says, in its
own pyproject.toml,

    [project.entry-points."thresher.stages"]
    my_filters = "my_package.filters"      # a module whose import runs @register

and its stages are in `thresher list` and usable in configs once it is installed (`pip install
-e path/to/plugin`: entry points are read from the installed metadata, so a changed list needs a
reinstall). thresher's own stages are listed here rather than as entry points of this project,
so that a checkout works as it is, with no reinstall after a stage module is added or moved.
"""

ENTRY_POINT_GROUP = "thresher.stages"

STAGE_MODULES = (
    "pipeline.extract",
    "pipeline.page_text",
    "tokenization.mix",
    "filters.language",
    "filters.classify",
    "filters.select",
    "filters.gopher",
    "filters.c4",
    "filters.fineweb",
    "filters.url",
    "filters.pii",
    "filters.generic",
    "filters.lm_score",
    "filters.lm_buckets",
    "dedup.exact",
    "dedup.stages",
    "dedup.decontaminate",
    "dedup.url",
    "dedup.units",
    "tokenization.stage",
)

# Modules that add sub-commands with `add_commands(subparsers)` (pipeline/cli.py); they import heavy
# libraries (torch, fasttext) inside their handlers, so `thresher --help` stays fast.
COMMAND_MODULES = ("filters.cli", "tokenization.cli", "training.cli", "training.ablate.cli", "pipeline.report",
                   "pipeline.head", "pipeline.trace")
