"""Checks of a run's paths before any stage runs, and before a cluster starts: `thresher run`
(with or without `--dry-run`) fails with one line naming the key instead of a traceback halfway
through the read stage.

- every input names at least one file: a literal path that does not exist, a folder, or a glob
  that matches nothing is `inputs[N].path: ...`;
- `output` is a folder or can become one: an existing file, or a local path under a file, is
  `output: ...`. (On an object store a key may sit "under" another key's object, so only the
  output key itself is checked there.)

The stage order and the artifacts stages need are checked with the config
(`pipeline.config.check_stage_order`, `check_artifacts`). All paths go through
`pipeline.storage`, so URLs (s3://...) are checked as fsspec sees them.

    check_paths(load_config("configs/demo.yaml"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline import storage
from pipeline.options import ConfigError
from pipeline.readers import list_files, no_files_message

if TYPE_CHECKING:
    from pipeline.config import RunConfig


def check_paths(config: RunConfig) -> None:
    check_output(config.output, config.storage_options)
    for index, spec in enumerate(config.inputs):
        if not list_files(spec):
            raise ConfigError(no_files_message(index, spec))


def check_output(output: str, storage_options: dict | None = None) -> None:
    """`output` is a folder, or nothing yet that could become one."""
    storage.configure(output, storage_options)
    if storage.isfile(output):
        raise ConfigError(f"output: {output!r} is a file; give a folder (it is created when missing)")
    if not storage.is_local(output):
        return
    above = storage.parent(storage.absolute(output.removeprefix("file://")))
    while not storage.exists(above):  # ends at the root at the latest
        above = storage.parent(above)
    if not storage.isdir(above):
        raise ConfigError(f"output: {output!r} is under {above!r}, which is a file; give a folder")
