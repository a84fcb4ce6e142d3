"""Tests for `lm_score` and `lm_buckets`: a tiny reference LM built with the shipped recipe
(configs/lm-reference-data.yaml + configs/lm-reference.yaml, shortened) on WikiText-2; scores
are deterministic, clean prose beats boilerplate and garbage, the token cap holds, the model
loads once per worker, `select` keeps by `lm_logprob`, and buckets split at global terciles."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from distributed import Client, LocalCluster

import filters.lm_score as lm
from filters.lm_buckets import LmBuckets
from filters.lm_score import LmScore, normalize_for_lm
from filters.select import Select
from pipeline.cli import main
from pipeline.context import GlobalContext, StageOutput
from pipeline.record import DOCUMENT_SCHEMA
from tests.conftest import shared_path
from tests.pipeline import test_s3

server, fs = test_s3.server, test_s3.fs  # moto's S3 server and an s3fs client, as fixtures here

REPO = Path(__file__).resolve().parents[2]
SHORT = ["model.dim=64", "model.ffn_hidden=192", "train.steps=60", "train.warmup_steps=6",
         "train.global_batch_size=8", "train.micro_batch_size=8", "data.seq_len=64", "checkpoint.every=60",
         "eval.every=60", "eval.samples=8", "log.every=30"]
CLEAN = ("The city is located on the north bank of the river, and its population grew rapidly during the "
         "nineteenth century, when the railway reached the region and new industries were established.")
BOILERPLATE = "Home | About us | Contact | Login | Register | Privacy Policy | Terms of Use | Sitemap | FAQ"
GARBAGE = "xq7 zzkv ##@@ 0x3f9a qwrtp lkjh vbnm ;;;; ~~~ kjhg 99x8 ppqw zxcv"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    """A tiny reference LM, built the way `make lm-reference` builds one (shorter)."""
    root = tmp_path_factory.mktemp("lm-reference")
    data = yaml.safe_load((REPO / "configs" / "lm-reference-data.yaml").read_text())
    data["inputs"][0]["path"] = str(shared_path("general_wikitext2") / "*.txt.gz")
    data["stages"][1]["tokenize"]["train"]["vocab_size"] = 1000
    (root / "data.yaml").write_text(yaml.safe_dump(data))
    assert main(["run", str(root / "data.yaml"), "--output", str(root / "data"), "--workers", "1"]) == 0
    sets = [f"data.manifest={root / 'data'}", *SHORT]
    assert main(["train", str(REPO / "configs" / "lm-reference.yaml"), "--output", str(root / "lm"),
                 *(f"--set={s}" for s in sets)]) == 0
    return str(root / "lm")


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as c:
        yield c


def score(reference: str, texts: list[str], **params) -> pa.Table:
    rows = [{"id": f"d{i}", "text": t, "metadata": json.dumps({"keep": i})} for i, t in enumerate(texts)]
    stage = LmScore(LmScore.Params(model=reference, **params))
    stage.check()
    return stage.process(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA)).kept


def test_normalize_for_lm_matches_wikitext_and_web_forms():
    wiki = "The 1 @,@ 200 @-@ year old <unk> city , founded in 1850 ."
    web = "The 1,200-year old city, founded in 1850."
    assert normalize_for_lm(wiki) == normalize_for_lm(web) == "the 0 , 000 - year old city , founded in 0000 ."


def test_scores_are_deterministic_and_clean_text_beats_boilerplate_and_garbage(reference):
    texts = [CLEAN, BOILERPLATE, GARBAGE, ""]
    first, second = score(reference, texts), score(reference, texts)
    assert first.equals(second)
    ppl = first.column("lm_score").to_pylist()
    assert ppl[0] < ppl[1] and ppl[0] < ppl[2]
    assert ppl[3] is None and first.column("lm_logprob").to_pylist()[3] is None
    assert math.isclose(first.column("lm_logprob")[0].as_py(), -math.log(ppl[0]), rel_tol=1e-4)
    meta = [json.loads(m) for m in first.column("metadata").to_pylist()]
    assert [m["lm_score"] for m in meta] == ppl and [m["keep"] for m in meta] == [0, 1, 2, 3]


def test_long_documents_are_scored_on_a_prefix(reference):
    tail = " ".join(GARBAGE for _ in range(40))
    capped = score(reference, [CLEAN, CLEAN + " " + tail], max_tokens=16)
    assert capped.column("lm_score")[0] == capped.column("lm_score")[1]  # the garbage is past the cap
    full = score(reference, [CLEAN, CLEAN + " " + tail], max_tokens=400)
    assert full.column("lm_score")[1].as_py() > full.column("lm_score")[0].as_py()
    stage = LmScore(LmScore.Params(model=reference, max_tokens=16))
    texts = pa.Table.from_pylist([{"id": "a", "text": CLEAN}, {"id": "b", "text": "short"}], schema=DOCUMENT_SCHEMA)
    assert stage.process(texts).stats.counters["truncated"] == 1


def test_max_tokens_beyond_the_model_context_is_a_config_error(reference):
    with pytest.raises(ValueError, match=r"lm_score.max_tokens: at most 511"):
        LmScore(LmScore.Params(model=reference, max_tokens=600)).check()


def test_a_folder_without_a_trained_model_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is not a `thresher train` output"):
        LmScore(LmScore.Params(model=str(tmp_path))).check()


def test_the_model_loads_once_per_worker_process(reference):
    score(reference, [CLEAN])
    loads = lm.LOADS["count"]
    for _ in range(3):
        score(reference, [CLEAN, BOILERPLATE])
    assert lm.LOADS["count"] == loads


def write_scored(reference: str, root: Path, texts: list[str], parts: int = 3) -> StageOutput:
    table = score(reference, texts)
    root.mkdir(parents=True)
    names = []
    for p in range(parts):
        names.append(f"part-{p:05d}.parquet")
        pq.write_table(table.take(list(range(p, table.num_rows, parts))), root / names[-1])
    return StageOutput(root, "fp", tuple(names), table.schema)


def texts_of_mixed_quality() -> list[str]:
    lines = [CLEAN, BOILERPLATE, GARBAGE] * 4
    return [f"{line} {i}" for i, line in enumerate(lines)]


def read_parts(folder: Path) -> list[dict]:
    return [r for p in sorted(folder.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]


def test_select_keeps_the_lowest_perplexity_documents(reference, client, tmp_path):
    source = write_scored(reference, tmp_path / "in", texts_of_mixed_quality())
    ctx = GlobalContext(client, source, tmp_path / "out", 0, progress=False)
    result = Select(Select.Params(column="lm_logprob", keep_top=1 / 3)).run(ctx)
    kept = read_parts(tmp_path / "out")
    assert result.extra["selection"]["kept"] == len(kept) == 4
    everything = read_parts(tmp_path / "in")
    best = sorted(everything, key=lambda r: (r["lm_score"], r["id"]))[:4]
    assert sorted(r["id"] for r in kept) == sorted(r["id"] for r in best)


def test_buckets_split_at_global_terciles(reference, client, tmp_path):
    source = write_scored(reference, tmp_path / "in", texts_of_mixed_quality() + [""])
    ctx = GlobalContext(client, source, tmp_path / "out", 0, progress=False)
    result = LmBuckets(LmBuckets.Params()).run(ctx)
    rows = read_parts(tmp_path / "out")
    labels = {r["id"]: r["lm_bucket"] for r in rows}
    ranked = [r["id"] for r in sorted((r for r in rows if r["lm_score"] is not None),
                                      key=lambda r: (r["lm_score"], r["id"]))]
    assert [labels[i] for i in ranked] == ["head"] * 4 + ["middle"] * 4 + ["tail"] * 4
    assert labels["d12"] is None
    assert result.extra["buckets"]["head"]["kept"] == 4 and result.stats.counters["bucket.tail"] == 4
    assert result.stats.docs_in == result.stats.docs_out == 13 and result.parts == source.parts


def test_bucket_fractions_must_leave_a_tail():
    with pytest.raises(ValueError, match="head \\+ middle must be below 1"):
        LmBuckets.Params(head=0.5, middle=0.5)


@pytest.mark.slow
def test_a_reference_model_on_s3_scores_as_the_local_one(reference, server, fs, tmp_path):
    """A worker without the shared filesystem: the reference run (config.yaml and checkpoints) and
    its tokenize output copied to moto's S3, `thresher run` with `lm_score.model: s3://...` writes
    the scores the local model gives."""
    import subprocess
    import sys

    run, data = Path(reference), Path(reference).parent / "data"
    fs.mkdir("lm-reference")
    tokenize = next(data.glob("*-tokenize"))
    fs.put(str(tokenize), f"lm-reference/data/{tokenize.name}", recursive=True)
    fs.put(str(run / "checkpoints"), "lm-reference/run/checkpoints", recursive=True)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["data"]["manifest"] = "s3://lm-reference/data"  # its tokenizer, from S3 too
    fs.pipe_file("lm-reference/run/config.yaml", yaml.safe_dump(config).encode())
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                            for i, t in enumerate(texts_of_mixed_quality())))
    scores = {}
    for where, model in (("local", reference), ("s3", "s3://lm-reference/run")):
        pipeline = {"inputs": [{"path": str(docs), "format": "jsonl", "source": "t"}],
                    "stages": [{"lm_score": {"model": model, "max_tokens": 32}}]}
        (tmp_path / f"{where}.yaml").write_text(yaml.safe_dump(pipeline))
        command = [sys.executable, "-m", "pipeline.cli", "run", str(tmp_path / f"{where}.yaml"),
                   "--output", str(tmp_path / where), "--workers", "1"]
        done = subprocess.run(command, cwd=REPO, env=server, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        rows = read_parts(next((tmp_path / where).glob("*-lm_score")))
        scores[where] = {r["id"]: r["lm_score"] for r in rows}
    assert len(scores["s3"]) == 12 and scores["s3"] == scores["local"]
