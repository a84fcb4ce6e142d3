"""Scale benchmark: does the client's memory stay flat as the number of documents grows?

Data: synthetic web-like documents (lognormal lengths around ~3 KB of Zipf-distributed
pseudo-words, ~1% exact and ~5% near-duplicates of earlier documents), in two domains with
one source each (financial/fin_news ~30%, general/web ~70%), written once per size as JSONL
under .bench/scale/<docs>/. A small sentencepiece model is trained once on a sample of them.

Run: the real runner on a LocalCluster of 2 worker processes, read -> bench_score (a seeded
`quality_score` per document, standing in for `classify`) -> exact_dedup -> minhash_signatures
-> lsh_buckets -> duplicate_clusters -> remove_duplicates -> select (keep_top 0.9) -> mix
(51/49) -> tokenize. Each size runs in a fresh process, so its peaks are its own.

Parts are the config's defaults (`read.max_bytes_per_part`, 128 MiB of text; the map stage
merges small ones); before parts were sized by bytes the config read 2,000 documents a part.
Printed per stage: wall time, documents in and docs/s, tasks the scheduler ran, the client
process's peak RSS (client and scheduler share it on a LocalCluster) and the largest worker
process's peak RSS (psutil, sampled every 0.1 s). Then per size: the whole run's peaks, and the
ratio of the client peak at each size to the smallest size's. The target: the client peak at
4x10^6 documents within 1.25x of its peak at 10^6, and no worker above 4 GiB.

    PYTHONPATH=. .venv/bin/python bench/scale.py --docs 100000 1000000 4000000
    PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/scale.py --docs 100000   # compare code
"""

from __future__ import annotations

import sys
from pathlib import Path

# bench/ last on sys.path: a sibling benchmark named like a stdlib module (bench/tokenize.py)
# would shadow it.
BENCH = Path(__file__).resolve().parent
sys.path = [p for p in sys.path if Path(p or ".").resolve() != BENCH] + [str(BENCH)]

import argparse
import json
import os
import shutil
import subprocess
import threading
import time
import zlib

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc

REPO = BENCH.parent
CACHE = REPO / ".bench" / "scale"
DOCS_PER_FILE = 50_000
GiB = 1 << 30
CONFIG = """output: {out}
seed: 0
inputs:
  - {{path: {data}/fin-*.jsonl, format: jsonl, source: fin_news, domain: financial}}
  - {{path: {data}/web-*.jsonl, format: jsonl, source: web, domain: general}}
stages:
  - bench_score: {{}}
  - exact_dedup: {{}}
  - minhash_signatures: {{ngram: 5, num_perm: 112, bands: 14, rows: 8}}
  - lsh_buckets: {{}}
  - duplicate_clusters: {{}}
  - remove_duplicates: {{}}
  - select: {{column: quality_score, keep_top: 0.9}}
  - mix: {{targets: {{financial: 0.51, general: 0.49}}, max_epochs: 4}}
  - tokenize: {{model: {model}, max_shard_tokens: 50000000}}
"""


# -- data --------------------------------------------------------------------------------------


def vocabulary(rng: np.random.Generator, size: int = 20_000) -> np.ndarray:
    letters = np.array(list("etaoinshrdlucmfwypvbgkjqxz"))
    p = np.linspace(2.0, 0.2, len(letters))
    lengths = np.clip(rng.poisson(4.5, size), 1, 14)
    return np.array(["".join(rng.choice(letters, n, p=p / p.sum())) for n in lengths])


MEDIAN_BYTES = 3000  # --median-bytes: a document's typical length


def make_text(rng: np.random.Generator, words: np.ndarray, median: int = MEDIAN_BYTES) -> str:
    n_bytes = min(rng.lognormal(np.log(median), 0.7), 200_000)
    picks = words[np.minimum(rng.zipf(1.3, max(8, int(n_bytes / 6))), len(words)) - 1]
    sentences = np.array_split(picks, max(1, len(picks) // 14))
    return " ".join(" ".join(s).capitalize() + "." for s in sentences)


def near_copy(rng: np.random.Generator, text: str, words: np.ndarray) -> str:
    tokens = text.split(" ")
    for i in rng.choice(len(tokens), max(1, len(tokens) // 50)):
        tokens[i] = words[rng.integers(len(words))]
    return " ".join(tokens)


def generate(n_docs: int, median: int = MEDIAN_BYTES) -> Path:
    """JSONL files of `n_docs` documents of `median` bytes typically (cached)."""
    folder = CACHE / (str(n_docs) if median == MEDIAN_BYTES else f"{n_docs}-{median}b")
    if (folder / "_done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(n_docs)
    words = vocabulary(rng)
    recent: list[str] = []
    files: dict[str, object] = {}
    counts = {"fin": 0, "web": 0}
    for i in range(n_docs):
        kind = rng.random()
        if recent and kind < 0.01:
            text = recent[rng.integers(len(recent))]
        elif recent and kind < 0.06:
            text = near_copy(rng, recent[rng.integers(len(recent))], words)
        else:
            text = make_text(rng, words, median)
        recent = (recent + [text])[-2000:] if i % 7 == 0 else recent
        name = "fin" if rng.random() < 0.3 else "web"
        index = counts[name] // DOCS_PER_FILE
        key = f"{name}-{index:04d}"
        if key not in files:
            files[key] = open(folder / f"{key}.jsonl", "w")
        files[key].write(json.dumps({"text": text, "url": f"https://{name}.example/{i}"}) + "\n")
        counts[name] += 1
    for f in files.values():
        f.close()
    (folder / "_done").write_text(json.dumps(counts))
    return folder


def tokenizer_model() -> Path:
    """A small sentencepiece model trained once on the 10^4-document sample's texts."""
    path = CACHE / "tokenizer" / "tokenizer.model"
    if not path.exists():
        from tokenization.train import TokenizerOptions, train_tokenizer

        data = generate(10_000)
        texts = [json.loads(line)["text"] for f in sorted(data.glob("*.jsonl")) for line in open(f)]
        train_tokenizer(texts[:3000], TokenizerOptions(vocab_size=2000), path)
    return path


def run_config(out: Path, data: Path, model: Path, docs_per_part: int | None = None) -> dict:
    """CONFIG for one run, as the dict `parse_config` takes; `docs_per_part` sets
    read.max_docs_per_part (many small parts: what a map costs the client per part)."""
    import yaml

    raw = yaml.safe_load(CONFIG.format(out=out, data=data, model=model))
    if docs_per_part:
        raw["read"] = {"max_docs_per_part": docs_per_part}
    return raw


# -- the stand-in score stage and the measurement ----------------------------------------------


def register_score_stage() -> None:
    from pipeline.record import rejected_schema
    from pipeline.stage import MapStage, PartResult, register
    from pipeline.stats import StageStats

    @register
    class BenchScore(MapStage):
        """A seeded quality_score per document from its id (a stand-in for `classify`)."""

        name = "bench_score"

        def process(self, table: pa.Table) -> PartResult:
            ids = table.column("id").to_pylist()
            scores = pa.array([zlib.crc32(i.encode()) / 2**32 for i in ids], pa.float64())
            index = table.schema.get_field_index("quality_score")
            kept = table.set_column(index, table.schema.field(index), scores.cast(table.schema.field(index).type))
            text = pc.sum(pc.binary_length(table.column("text"))).as_py() or 0
            stats = StageStats(docs_in=table.num_rows, docs_out=table.num_rows, bytes_in=text, bytes_out=text)
            return PartResult(kept, rejected_schema(table.schema).empty_table(), stats)


class Sampler(threading.Thread):
    """Peak RSS of this process and of its largest descendant, per labelled window."""

    def __init__(self):
        super().__init__(daemon=True)
        self.me = psutil.Process()
        self.label = "start"
        self.peaks: dict[str, list[int]] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.sample()

    def sample(self) -> None:
        client = self.me.memory_info().rss
        worker = 0
        for child in self.me.children(recursive=True):
            try:
                worker = max(worker, child.memory_info().rss)
            except psutil.Error:
                pass
        peak = self.peaks.setdefault(self.label, [0, 0])
        peak[0], peak[1] = max(peak[0], client), max(peak[1], worker)


def tasks_done(client) -> int:
    return client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.plugins["bench-task-count"].n)


def measure(n_docs: int, workers: int, median: int = MEDIAN_BYTES, docs_per_part: int | None = None) -> dict:
    """Run the pipeline once on `n_docs` documents in this process; per-stage numbers."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    import pipeline.runner as runner
    from pipeline import cluster
    from pipeline.config import parse_config
    from pipeline.io import read_json

    class TaskCount(SchedulerPlugin):
        name = "bench-task-count"

        def __init__(self):
            self.n = 0

        def transition(self, key, start, finish, *args, **kwargs):
            if start == "processing" and finish in ("memory", "erred"):
                self.n += 1

    register_score_stage()
    data, model = generate(n_docs, median), tokenizer_model()
    out = CACHE / f"run-{n_docs}-{os.getpid()}"  # concurrent runs (other code) must not share it
    shutil.rmtree(out, ignore_errors=True)
    config = parse_config(run_config(out, data, model, docs_per_part))
    sampler = Sampler()
    stages: list[dict] = []
    with cluster.open_client(workers=workers) as client:
        client.register_plugin(TaskCount())
        sampler.start()
        for method in ("_run_read", "_run_chain", "_run_global"):
            original = getattr(runner.Runner, method)

            def timed(self, *args, _original=original):
                index = args[0] if args and isinstance(args[0], int) else 0
                sampler.sample()
                sampler.label = f"{index:02d}"
                before, start = tasks_done(client), time.perf_counter()
                result = _original(self, *args)
                sampler.sample()
                outputs = result if isinstance(result, list) else [result]  # a chain of fused map stages
                manifest = read_json(outputs[0].path("_manifest.json"))
                name = outputs[0].name if len(outputs) == 1 else f"{outputs[0].name}..{outputs[-1].name}"
                stages.append({"stage": name, "seconds": time.perf_counter() - start,
                               "docs_in": manifest["stats"]["docs_in"], "tasks": tasks_done(client) - before,
                               "peaks": sampler.peaks.get(sampler.label, [0, 0])})
                return result

            setattr(runner.Runner, method, timed)
        runner.Runner(config, client, progress=False).run()
        sampler.label = "end"
        sampler.stop.set()
    total = [max(p[0] for p in sampler.peaks.values()), max(p[1] for p in sampler.peaks.values())]
    shutil.rmtree(out, ignore_errors=True)
    return {"docs": n_docs, "stages": stages, "peaks": total}


# -- the report ---------------------------------------------------------------------------------


def print_run(result: dict) -> None:
    print(f"\n{result['docs']:,} documents")
    print(f"{'stage':<24}{'seconds':>9}{'docs in':>11}{'docs/s':>10}{'tasks':>7}{'client MiB':>12}{'worker MiB':>12}")
    for s in result["stages"]:
        rate = s["docs_in"] / s["seconds"] if s["seconds"] else 0
        print(f"{s['stage']:<24}{s['seconds']:>9.1f}{s['docs_in']:>11,}{rate:>10,.0f}{s['tasks']:>7}"
              f"{s['peaks'][0] / 2**20:>12.0f}{s['peaks'][1] / 2**20:>12.0f}")
    total = sum(s["seconds"] for s in result["stages"])
    print(f"{'whole run':<24}{total:>9.1f}{result['docs']:>11,}{result['docs'] / total:>10,.0f}"
          f"{sum(s['tasks'] for s in result['stages']):>7}{result['peaks'][0] / 2**20:>12.0f}"
          f"{result['peaks'][1] / 2**20:>12.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, nargs="+", default=[100_000])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--median-bytes", type=int, default=MEDIAN_BYTES,
                        help="typical document length (lognormal median); shorter documents measure the "
                             "client's memory at many documents in less time, not realistic worker loads")
    parser.add_argument("--max-docs-per-part", type=int, help="read.max_docs_per_part (default: thresher's)")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # internal: one size, JSON out
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args.workers, args.median_bytes, args.max_docs_per_part)))
        return
    tokenizer_model()
    results = []
    for n in args.docs:
        generate(n, args.median_bytes)
        parts = ["--max-docs-per-part", str(args.max_docs_per_part)] if args.max_docs_per_part else []
        done = subprocess.run([sys.executable, __file__, "--one", str(n), "--workers", str(args.workers),
                               "--median-bytes", str(args.median_bytes), *parts],
                              capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"the run at {n:,} documents failed (status {done.returncode}):\n{done.stderr[-4000:]}")
        line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line.removeprefix("RESULT ")))
        print_run(results[-1])
    base = results[0]
    print(f"\n{'documents':>12}{'client peak MiB':>17}{'x smallest':>12}{'largest worker MiB':>20}")
    for r in results:
        print(f"{r['docs']:>12,}{r['peaks'][0] / 2**20:>17.0f}{r['peaks'][0] / base['peaks'][0]:>12.2f}"
              f"{r['peaks'][1] / 2**20:>20.0f}")
    over = [r["docs"] for r in results if r["peaks"][1] > 4 * GiB]
    print("workers over 4 GiB at: " + (", ".join(f"{n:,}" for n in over) if over else "none"))


if __name__ == "__main__":
    main()
