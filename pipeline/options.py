"""The run configuration's building blocks, below every module that uses them.

`Frozen` (immutable pydantic models, unknown keys refused) and `ConfigError`, from
`pipeline.configbase`, and the sections that the readers and the cluster launcher need without
the whole run config: `InputSpec` (one input), `ReadOptions` (`read:`) and `ClusterOptions`
(`cluster:`). `pipeline.config` composes them into `RunConfig` and re-exports them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from dask.utils import parse_bytes
from pydantic import Field, ValidationInfo, field_validator

from pipeline.configbase import ConfigError, Frozen  # noqa: F401 (ConfigError: imported from here too)

FORMATS = ("warc", "html", "jsonl", "parquet", "text")
REDACTED = "<redacted>"


class ClusterError(RuntimeError):
    """Batch jobs could not be submitted, or their workers did not arrive (pipeline/cluster.py)."""


class InputSpec(Frozen):
    path: str = Field(description="fsspec path or glob")
    format: Literal["warc", "html", "jsonl", "parquet", "text"]
    source: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.\-]+$")
    domain: str | None = None
    text_field: str = Field("text", description="jsonl/parquet: field holding the text")
    url_field: str = Field("url", description="jsonl/parquet: field holding the URL (dotted)")
    separator: str | None = Field(None, description="text: regex of the line that starts a new document")
    storage_options: dict[str, Any] | None = Field(
        None, description="fsspec options for this input's URL (never written out; default: the environment)")

    @field_validator("separator")
    @classmethod
    def _valid_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value


class ReadOptions(Frozen):
    """How documents are cut into parts (one task each). A part holds up to `max_bytes_per_part`
    of text (page bytes before extraction) and, when set, `max_docs_per_part` documents; the
    first map stage after the read stage or a global stage merges consecutive small parts up to
    the same limits (pipeline/fuse.py). With `materialize: false` and a map stage first, the read
    stage's chunks go straight into the first chain of map stages, unwritten and unmerged."""

    max_bytes_per_part: int = Field(128 << 20, gt=0, description="text (or page) bytes per part, e.g. 128MiB")
    # A per-document stage holds a part's documents as Python objects, ~1.6 KB each beyond their
    # text: 128 MiB of 200-byte documents would take ~1 GB per worker, 100,000 of them ~160 MB.
    max_docs_per_part: int | None = Field(100_000, gt=0, description="documents per part (null: no limit)")
    max_record_bytes: int = Field(64 << 20, gt=0, description="larger records are rejected")
    files_per_task: int = Field(64, gt=0, description="small files (html) read per task")
    limit: int | None = Field(None, gt=0, description="read only the first N documents of each input, its files in "
                              "order (quick trials; `thresher run --sample N`)")
    # None (the default) is true; unset, it leaves the read stage's fingerprint as it was.
    materialize: bool | None = Field(None, description="write the read documents (raw pages) as 00-read parts; "
                                     "false: feed them straight into the first map stages (no raw copy)")

    @field_validator("max_bytes_per_part", "max_record_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse_bytes(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a size; write e.g. 128MiB or 134217728") from None
        return value


CLUSTER_KINDS = ("local", "slurm", "pbs", "sge", "lsf")


class ClusterOptions(Frozen):
    """Where the Dask workers run: `local` processes (`--workers N`), or batch jobs through
    dask-jobqueue (pipeline/cluster.py), each job `cores` CPUs and `memory`, split into `processes`
    single-threaded workers (stages are CPU-bound Python)."""

    kind: Literal["local", "slurm", "pbs", "sge", "lsf"] = "local"
    jobs: int = Field(1, gt=0, description="batch jobs to submit")
    cores: int = Field(1, gt=0, description="CPU cores per job")
    processes: int | None = Field(None, gt=0, description="workers per job (default: cores, one thread each)")
    memory: str | None = Field(None, validate_default=True, description="memory per job, e.g. 16GB")
    walltime: str | None = Field(None, description="job time limit, e.g. 02:00:00 (default: the queue's)")
    queue: str | None = Field(None, description="partition (Slurm) or queue")
    account: str | None = Field(None, description="account (Slurm, PBS) or project (SGE, LSF) to charge")
    job_extra_directives: list[str] = Field(default_factory=list, description="extra #SBATCH/#PBS/... lines")
    job_script_prologue: list[str] = Field(default_factory=list, description="shell lines run before the worker")
    interface: str | None = Field(None, description="network interface of workers and scheduler, e.g. ib0")
    scheduler_host: str | None = Field(None, description="address the scheduler listens on (default: interface's)")
    dashboard_address: str = Field(":8787", description="[host]:port of the scheduler's dashboard (pages need bokeh)")
    local_directory: str | None = Field(None, description="workers' scratch directory on the compute nodes")
    log_directory: str | None = Field(None, description="where the jobs' stdout/stderr go")
    start_timeout_s: float = Field(300.0, gt=0, description="how long to wait for every worker to arrive")

    @field_validator("processes")
    @classmethod
    def _at_most_cores(cls, value: int | None, info: ValidationInfo) -> int | None:
        cores = info.data.get("cores")
        if value is not None and cores is not None and value > cores:
            raise ValueError(f"must be at most cluster.cores ({cores}): each worker needs a core")
        return value

    @field_validator("memory")
    @classmethod
    def _memory_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")
        if value is None and kind not in (None, "local"):
            raise ValueError(f"required for kind {kind}: memory per job, e.g. 16GB")
        if value is not None:
            try:
                parse_bytes(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a size; write e.g. 16GB or 512MiB") from None
        return value
