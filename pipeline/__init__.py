"""thresher's pipeline package: config, readers, extraction, the Dask runner, stats and the
`thresher` CLI (`python -m pipeline.cli --help`)."""

__version__ = "0.1.0"

# Modules whose import registers stages (see pipeline.stage.load_registry).
STAGE_MODULES = ("pipeline.extract", "pipeline.page_text", "pipeline.mix")
