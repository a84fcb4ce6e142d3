"""Run by `tests/training/test_train.py` under torchrun: train, then write the native threads
this rank still has (their /proc names) to OUTPUT/threads-RANK.json. gloo's worker threads
(`pt_gloo_runloop`, `gloo_tcp_loop`) alive at interpreter exit can abort a finished rank (see
`training.train.Distributed.__exit__`), so none may outlive `train()`.

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m tests.training.rank_threads CONFIG K=V ...
"""

from __future__ import annotations

import json
import os
import sys

from training.config import load_train_config
from training.train import train


def thread_names() -> list[str]:
    tasks = f"/proc/{os.getpid()}/task"
    return sorted(open(f"{tasks}/{t}/comm").read().strip() for t in os.listdir(tasks))


if __name__ == "__main__":
    train(load_train_config(sys.argv[1], sys.argv[3:], sys.argv[2]))
    rank = int(os.environ["RANK"])
    with open(os.path.join(sys.argv[2], f"threads-{rank}.json"), "w") as f:  # not stdout: ranks share it
        json.dump({"rank": rank, "threads": thread_names()}, f)
