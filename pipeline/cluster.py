"""Dask workers as batch jobs: Slurm, PBS, SGE or LSF through dask-jobqueue.

The scheduler runs inside `thresher run` on the submitting host; each of `cluster.jobs` jobs starts
`cluster.processes` single-threaded workers that connect back to it. The workers get the same
quiet Dask settings as the local cluster (as DASK_* variables in the job script) and start in
the directory thresher runs in, so relative input paths mean the same on every node. The client
waits until every worker has arrived, and closing it cancels the jobs (scancel, qdel, bkill).

    with job_queue_client(config.cluster) as client:   # config.cluster.kind: slurm | pbs | sge | lsf
        Runner(config, client).run()
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shlex
import signal
import threading
from collections.abc import Iterator
from typing import Any

import dask
from distributed import Client, LocalCluster, Status
from distributed.diagnostics.plugin import WorkerPlugin

from pipeline.interrupts import stop_signals_blocked
from pipeline.options import ClusterError, ClusterOptions
from pipeline.progress import log

CLUSTER_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}


def _jobqueue():
    """dask_jobqueue, imported when a batch-job cluster is asked for. dask-jobqueue 0.9.0 replaces
    the SIGINT handler with sys.exit() when imported (dask/dask-jobqueue #696, fixed after 0.9.0),
    so Ctrl-C would end a run with status 0; the handler is put back. Imported before any
    dask.config.set of jobqueue.* keys: it adds its defaults on import."""
    handler = signal.getsignal(signal.SIGINT)
    import dask_jobqueue

    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    return dask_jobqueue

# The local cluster's housekeeping, made quieter: no statistical profiler (it samples every
# task's stack 100 times a second for the dashboard, which the local cluster doesn't start;
# ~15% of a CPU-bound task), and the event-loop tick (a blocked-loop warning), the system
# monitor (dashboard metrics) and the memory monitor (spill/pause/terminate) less often. An
# idle 2-worker cluster then takes ~3% of a core instead of ~12% (measured with psutil),
# CPU that a busy 2-core machine would otherwise take from the tasks.
LOCAL_WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "500ms",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


@contextlib.contextmanager
def open_client(scheduler: str | None = None, workers: int | None = None,
                cluster: ClusterOptions | None = None) -> Iterator[Client]:
    """A Dask client: on `scheduler` if given, else on batch jobs if `cluster.kind` is a batch
    system (pipeline/cluster.py), else on a LocalCluster of worker processes (one thread each:
    stages are CPU-bound Python)."""
    if scheduler:
        with Client(scheduler, set_as_default=False) as client:
            yield client
        return
    if cluster is not None and cluster.kind != "local":
        with job_queue_client(cluster) as client:
            yield client
        return
    n = workers or os.cpu_count() or 1
    # No dashboard; the scheduler's small HTTP server (health, metrics) takes a free port
    # instead of 8787, so parallel runs on one machine don't warn about each other. The worker
    # processes start with SIGINT and SIGTERM blocked: they are the client's alone (pipeline/interrupts.py).
    # A Ctrl-C pressed while they start arrives on leaving the block; the stack closes the cluster.
    with dask.config.set(LOCAL_WORKER_CONFIG), contextlib.ExitStack() as stack:
        with stop_signals_blocked():
            local = stack.enter_context(LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"}, silence_logs=logging.ERROR))
        client = stack.enter_context(Client(local, set_as_default=False))
        if not os.environ.get("THRESHER_DEBUG"):
            client.register_plugin(QuietTaskErrors(), name=QuietTaskErrors.name)
        yield client


# A local worker's scheduler lives in the client's process: when the client stops a run (Ctrl-C,
# SIGTERM) the scheduler can close while a worker's heartbeat is on its way, and the worker logs
# the failed heartbeat with a traceback although nothing went wrong.
_QUIET = ("Compute Failed", "Failed to communicate with scheduler during heartbeat")


def _not_a_task_error(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(_QUIET)


class QuietTaskErrors(WorkerPlugin):
    """A local worker does not log a task's error ("Compute Failed" and its traceback, once per
    failed task): the client re-raises the first one, which `thresher` prints as one line (with
    THRESHER_DEBUG=1, the workers log them as Dask does). Nor a heartbeat lost to the client
    stopping the run."""

    name = "thresher-quiet-task-errors"

    def setup(self, worker) -> None:
        logging.getLogger("distributed.worker").addFilter(_not_a_task_error)


# What the batch system calls the account a job is charged to.
ACCOUNT_KEYWORD = {"slurm": "account", "pbs": "account", "sge": "project", "lsf": "project"}
# Where a user looks when jobs do not start.
QUEUE_COMMAND = {"slurm": "squeue --me", "pbs": "qstat -u $USER", "sge": "qstat", "lsf": "bjobs"}


def quiet_dask_env() -> list[str]:
    """`export DASK_...=...` lines that give a job's workers LOCAL_WORKER_CONFIG."""
    lines = []
    for key, value in LOCAL_WORKER_CONFIG.items():
        name = "DASK_" + key.upper().replace(".", "__").replace("-", "_")
        lines.append(f"export {name}={shlex.quote(str(value))}")
    return lines


def job_kwargs(options: ClusterOptions) -> dict[str, Any]:
    """Keyword arguments of dask-jobqueue's cluster class for `options`."""
    kwargs: dict[str, Any] = {
        "cores": options.cores,
        "processes": options.processes or options.cores,
        "memory": options.memory,
        "walltime": options.walltime,
        "queue": options.queue,
        ACCOUNT_KEYWORD[options.kind]: options.account,
        "job_name": "thresher-worker",
        "job_extra_directives": list(options.job_extra_directives),
        "job_script_prologue": [f"cd {shlex.quote(os.getcwd())}", *quiet_dask_env(),
                                *options.job_script_prologue],
        "interface": options.interface,
        "local_directory": options.local_directory,
        "log_directory": options.log_directory,
        "scheduler_options": {"dashboard_address": options.dashboard_address},
    }
    if options.scheduler_host:
        kwargs["scheduler_options"]["host"] = options.scheduler_host
    return kwargs


def job_config(options: ClusterOptions) -> dict[str, Any]:
    """Dask settings while the cluster lives: the scheduler (in this process) gets the local
    cluster's quiet housekeeping, and an unset walltime writes no time-limit directive (the
    queue's default applies) instead of dask-jobqueue's 30 minutes, which would kill a long run."""
    _jobqueue()  # imported before this config is set: the import adds the jobqueue.* defaults
    return {**LOCAL_WORKER_CONFIG, f"jobqueue.{options.kind}.walltime": options.walltime}


def make_cluster(options: ClusterOptions):
    """A dask-jobqueue cluster for `options`, its scheduler listening, no job submitted yet;
    build it inside `dask.config.set(job_config(options))` (jobs read that config when created)."""
    cls = getattr(_jobqueue(), CLUSTER_CLASSES[options.kind])
    return cls(**job_kwargs(options), silence_logs=logging.ERROR)


@contextlib.contextmanager
def job_queue_client(options: ClusterOptions) -> Iterator[Client]:
    """A client on `options.jobs` batch jobs' workers, all of them arrived; the jobs end with it."""
    with dask.config.set(job_config(options)), make_cluster(options) as cluster, \
            Client(cluster, set_as_default=False) as client:
        submit_jobs(cluster, options)
        workers = options.jobs * (options.processes or options.cores)
        wait_for_workers(client, workers, options)
        log(f"cluster: {workers} workers in {options.jobs} {options.kind} job(s) named {cluster.job_name}; "
            f"scheduler {cluster.scheduler_address}; {_dashboard(cluster)}")
        yield client


def submit_jobs(cluster, options: ClusterOptions) -> None:
    """Submit the jobs now, so a refused submission (bad queue, account, directive) is raised
    here with the batch system's words instead of being logged while the client waits."""
    try:
        cluster.sync(_scale, cluster, options.jobs)
    except Exception as error:
        raise ClusterError(f"cluster.kind {options.kind}: submitting {options.jobs} job(s) failed: "
                           f"{_last_line(str(error))}") from None


async def _scale(cluster, jobs: int) -> None:
    # What `cluster.scale(jobs=...)` does, minus its queued state correction, which would log a
    # refused submission and drop it; run on the cluster's event loop.
    for _ in range(jobs):
        cluster.worker_spec.update(cluster.new_worker_spec())
    try:
        await cluster._correct_state()
    except Exception:
        for name, job in list(cluster.workers.items()):
            if job.job_id is None:  # never submitted: nothing to cancel (closing checks the status)
                job.status = Status.failed
                del cluster.workers[name], cluster.worker_spec[name]
        raise


def wait_for_workers(client: Client, n: int, options: ClusterOptions) -> None:
    try:
        client.wait_for_workers(n, timeout=options.start_timeout_s)
    except TimeoutError:
        arrived = len(client.scheduler_info(n_workers=-1)["workers"])
        logs = f"the job logs in {options.log_directory}" if options.log_directory else "the jobs' output files"
        raise ClusterError(f"cluster.kind {options.kind}: {arrived} of {n} workers arrived within "
                           f"{options.start_timeout_s:g} s (cluster.start_timeout_s); see "
                           f"`{QUEUE_COMMAND[options.kind]}` and {logs}") from None


def _dashboard(cluster) -> str:
    if importlib.util.find_spec("bokeh") is None:  # the scheduler serves no dashboard pages without it
        return "no dashboard (pip install bokeh)"
    return f"dashboard {cluster.dashboard_link}"


def _last_line(text: str) -> str:
    """The last non-empty line of a command's error (where sbatch/qsub say what was wrong)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
