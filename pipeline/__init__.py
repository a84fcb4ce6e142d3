"""thresher's pipeline package: config, readers, extraction, the Dask runner, stats and the
`thresher` CLI (`python -m pipeline.cli --help`). The modules that register stages are listed in
`pipeline.registry`."""

__version__ = "0.1.0"
