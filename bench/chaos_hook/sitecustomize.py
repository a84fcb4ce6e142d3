"""bench/chaos.py --write-points: imported by every Python process of a run that has this folder
first on PYTHONPATH (the client, the Dask workers, the sandboxes). With $CHAOS_OUTPUT set, it
appends the path of every file committed into that folder (an `os.replace`, the last step of
every local write in pipeline/io.py) to $CHAOS_COUNTER, a file shared by the processes, and
SIGKILLs its own process group right after the $CHAOS_KILL_AT-th one (0: count only), once."""

import os

if os.environ.get("CHAOS_OUTPUT"):
    import signal

    _replace = os.replace
    _OUTPUT, _COUNTER = os.environ["CHAOS_OUTPUT"], os.environ["CHAOS_COUNTER"]
    _KILL_AT = int(os.environ.get("CHAOS_KILL_AT", "0"))

    def _counted_replace(src, dst, *args, **kwargs):
        _replace(src, dst, *args, **kwargs)
        path = os.fspath(dst)
        if not path.startswith(_OUTPUT):
            return
        with open(_COUNTER, "a") as counter:  # one short append: whole lines under concurrency
            counter.write(path[len(_OUTPUT):] + "\n")
        if _KILL_AT:
            with open(_COUNTER) as counter:
                done = sum(1 for _ in counter)
            if done >= _KILL_AT and _first_kill():
                os.killpg(os.getpgid(0), signal.SIGKILL)

    def _first_kill() -> bool:
        try:
            os.close(os.open(_COUNTER + ".killed", os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            return False

    os.replace = _counted_replace
