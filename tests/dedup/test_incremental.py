"""Incremental dedup (dedup/index.py): url_dedup, exact_dedup and the MinHash stages against an
index of what an earlier run kept, on real WikiText-2 paragraphs (../shared/data).

Run 1 deduplicates half of the paragraphs into a fresh index; run 2 gets the other half plus
exact, near and same-URL copies of run-1 paragraphs and one copy of its own, and must remove
those and only those, naming the run-1 documents; the index then holds both runs' entries with
their run ids. Also: the same bytes on 1 and 2 workers, a stage rerun after its commit commits
nothing twice, a run killed mid-stage (SIGKILL) and rerun, a second run refused while another
holds the index (one line naming it), and an index on S3 (moto's server)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO, shared_path
from tests.dedup.conftest import digest_outputs, rows, run, stage_dir, write_jsonl
from tests.pipeline import test_s3

server, fs = test_s3.server, test_s3.fs  # the S3 tests' moto server and client, as fixtures here

pytestmark = pytest.mark.slow

READ = {"max_docs_per_part": 16}
N_FIRST, N_SECOND = 60, 60
EXACT, NEAR, SAME_URL = range(0, 6), range(6, 12), range(12, 15)


def stages(index: str, verify: float | None = None) -> list:
    return [{"url_dedup": {"index": index}}, {"exact_dedup": {"index": index}},
            {"minhash_signatures": {"index": index}}, {"lsh_buckets": {}},
            {"duplicate_clusters": {"verify_threshold": verify}}, {"remove_duplicates": {}}]


def paragraphs(n: int) -> list[dict]:
    """The first `n` WikiText-2 paragraphs of 120+ words, with a URL per article and paragraph."""
    out, title, k = [], "", 0
    with gzip.open(shared_path("general_wikitext2", "wikitext-2-v1.valid.tokens.txt.gz"), "rt") as f:
        for line in f:
            if line.startswith(" = ") and not line.startswith(" = = "):
                title, k = line.strip(" =\n").replace(" ", "_"), 0
            elif len(line.split()) >= 120:
                k += 1
                out.append({"text": line.strip(), "url": f"https://en.wikipedia.org/wiki/{title}?para={k}"})
                if len(out) == n:
                    return out
    raise AssertionError("not enough paragraphs")


def near_copy(text: str) -> str:
    """A re-issue: a prefix, one changed word and a footer (true Jaccard ~0.9 of 5-word shingles)."""
    words = text.split()
    words[len(words) // 2] = "notably"
    return "UPDATED : " + " ".join(words) + " ( Reporting by staff )"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("corpus")
    paras = paragraphs(N_FIRST + N_SECOND + len(SAME_URL))
    first = [{**p, "tag": f"r1-{i}"} for i, p in enumerate(paras[:N_FIRST])]
    second = [{**p, "tag": f"r2-{i}"} for i, p in enumerate(paras[N_FIRST:N_FIRST + N_SECOND])]
    fresh = paras[N_FIRST + N_SECOND:]
    second += [{"text": "  " + first[i]["text"].upper(), "url": f"https://mirror.example/{i}", "tag": f"exact-{i}"}
               for i in EXACT]
    second += [{"text": near_copy(first[i]["text"]), "url": f"https://wire.example/{i}", "tag": f"near-{i}"}
               for i in NEAR]
    second += [{"text": fresh[j]["text"], "url": first[i]["url"] + "&utm_source=feed", "tag": f"url-{i}"}
               for j, i in enumerate(SAME_URL)]
    second += [{"text": second[0]["text"], "url": "https://mirror.example/own", "tag": "own-0"}]
    return {"first": [write_jsonl(root / "crawl1.jsonl", first)],
            "second": [write_jsonl(root / "crawl2.jsonl", second)]}


@pytest.fixture(scope="module")
def first_run(client, corpus, tmp_path_factory) -> dict:
    """Run 1 into a fresh index; returns the index folder (copy it before using it)."""
    root = tmp_path_factory.mktemp("first")
    summary = run(client, root / "out", corpus["first"], stages(str(root / "index")), read=READ)
    return {"index": root / "index", "out": root / "out", "summary": summary}


def index_copy(first_run: dict, where: Path) -> str:
    shutil.copytree(first_run["index"], where)
    return str(where)


@pytest.fixture(scope="module")
def second_run(client, corpus, first_run, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("second")
    index = index_copy(first_run, root / "index")
    run(client, root / "out", corpus["second"], stages(index), read=READ)
    return {"index": Path(index), "out": root / "out"}


def removed(out: Path) -> dict[str, tuple[str, str]]:
    """tag -> (reason, duplicate_of) of every document a stage of this run removed."""
    found = {}
    for stage in sorted(out.glob("[0-9][0-9]-*")):
        for r in rows(stage, "rejected"):
            found[r["metadata"]["tag"]] = (r["reason"], r["metadata"].get("duplicate_of"))
    return found


def ids_by_tag(out: Path) -> dict[str, str]:
    return {r["metadata"]["tag"]: r["id"] for r in rows(stage_dir(out, "read"))}


def index_manifest(index: Path, kind: str) -> dict:
    return json.loads((index / kind / "_index.json").read_text())


def index_rows(index: Path, kind: str) -> list[dict]:
    manifest = index_manifest(index, kind)
    return [r for c in manifest["commits"] for p in c["parts"]
            for r in pq.read_table(index / kind / p, columns=["id", "run"]).to_pylist()]


def test_first_run_keeps_everything_and_fills_the_index(first_run):
    assert not removed(first_run["out"])
    for kind in ("url", "exact", "minhash"):
        (commit,) = index_manifest(first_run["index"], kind)["commits"]
        assert commit["entries"] == N_FIRST and commit["output"].startswith(str(first_run["out"]))
        assert {r["run"] for r in index_rows(first_run["index"], kind)} == {commit["run"]}
    assert not list(first_run["index"].rglob("_lock.json"))  # given back


def test_second_run_removes_the_copies_of_the_first_and_only_those(first_run, second_run):
    first_ids, second_ids = ids_by_tag(first_run["out"]), ids_by_tag(second_run["out"])
    expected = {f"exact-{i}": ("exact_dedup.duplicate_in_index", first_ids[f"r1-{i}"]) for i in EXACT}
    expected |= {f"near-{i}": ("remove_duplicates.near_duplicate_in_index", first_ids[f"r1-{i}"]) for i in NEAR}
    expected |= {f"url-{i}": ("url_dedup.duplicate_url_in_index", first_ids[f"r1-{i}"]) for i in SAME_URL}
    # The copy of a run-2 paragraph is an ordinary duplicate: the smaller id is kept.
    own = sorted([second_ids["r2-0"], second_ids["own-0"]])
    lost = next(tag for tag in ("r2-0", "own-0") if second_ids[tag] == own[1])
    expected[lost] = ("exact_dedup.duplicate", own[0])
    assert removed(second_run["out"]) == expected
    exact = json.loads((stage_dir(second_run["out"], "exact_dedup") / "_manifest.json").read_text())
    assert exact["audit"]["documents_removed_in_index"] == len(EXACT) and exact["audit"]["documents_removed"] == 7
    assert exact["audit"]["index"] == {"commits": 1, "entries": N_FIRST} and exact["kind"] == "global"


def test_the_report_counts_the_copies_of_earlier_runs(client, second_run, tmp_path):
    from pipeline.report import write_report

    html = write_report(second_run["out"], tmp_path / "report", client=client).read_text()
    notes = re.findall(r"(\d+) of them copies of documents that earlier runs kept", html)
    assert sorted(map(int, notes)) == sorted([len(SAME_URL), len(EXACT), len(NEAR)])


def test_the_index_holds_both_runs_with_their_run_ids(first_run, second_run):
    first_ids = set(ids_by_tag(first_run["out"]).values())
    for kind in ("url", "exact", "minhash"):
        manifest = index_manifest(second_run["index"], kind)
        one, two = manifest["commits"]
        assert one == index_manifest(first_run["index"], kind)["commits"][0]
        kept = {r["id"] for r in rows(stage_dir(second_run["out"], {"url": "url_dedup", "exact": "exact_dedup",
                                                                    "minhash": "remove_duplicates"}[kind]))}
        entries = index_rows(second_run["index"], kind)
        assert Counter(r["run"] for r in entries) == {one["run"]: N_FIRST, two["run"]: len(kept)}
        assert {r["id"] for r in entries if r["run"] == two["run"]} == kept
        assert {r["id"] for r in entries if r["run"] == one["run"]} == first_ids
        assert two["output"].startswith(str(second_run["out"])) and two["run"] != one["run"]


def without_index_blocks(digests: dict[str, str]) -> dict[str, str]:
    """Manifests without what names the index copy (the `index` path in the params and so the
    fingerprint, the `index` block with the run id)."""
    out = {}
    for name, value in digests.items():
        if name.endswith("_manifest.json"):
            manifest = json.loads(value)
            for block in (manifest, manifest.get("minhash", {})):
                for key in ("index", "index_folder", "index_without", "fingerprint"):
                    block.pop(key, None)
                block.get("params", {}).pop("index", None)
            value = json.dumps(manifest, sort_keys=True)
        out[name] = value
    return out


@pytest.fixture(scope="module")
def one_worker_run(client1, corpus, first_run, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("one_worker")
    index = index_copy(first_run, root / "index")
    run(client1, root / "out", corpus["second"], stages(index), read=READ)
    return {"index": Path(index), "out": root / "out"}


def test_one_and_two_workers_give_identical_outputs_and_entries(one_worker_run, second_run):
    assert without_index_blocks(digest_outputs(one_worker_run["out"])) == without_index_blocks(
        digest_outputs(second_run["out"]))
    for kind in ("url", "exact", "minhash"):
        one, two = (index_manifest(r["index"], kind)["commits"][1] for r in (one_worker_run, second_run))
        assert one["rows"] == two["rows"] and [p.rsplit("/", 1)[1] for p in one["parts"]] == [
            p.rsplit("/", 1)[1] for p in two["parts"]]
        for a, b in zip(one["parts"], two["parts"]):
            columns = [c for c in pq.read_schema(one_worker_run["index"] / kind / a).names if c != "run"]
            assert pq.read_table(one_worker_run["index"] / kind / a, columns=columns).equals(
                pq.read_table(second_run["index"] / kind / b, columns=columns))


def test_a_stage_rerun_after_its_commit_commits_nothing_twice(client, corpus, one_worker_run):
    """As if killed after its commit, before its manifest: the stage runs again (deciding against
    the index without its own commit) and finds its commit there."""
    out, index = one_worker_run["out"], one_worker_run["index"]
    before = {k: index_manifest(index, k)["commits"] for k in ("url", "exact", "minhash")}
    expected = removed(out)
    for name in ("url_dedup", "exact_dedup", "remove_duplicates"):
        (stage_dir(out, name) / "_manifest.json").unlink()
    run(client, out, corpus["second"], stages(str(index)), read=READ)
    assert {k: index_manifest(index, k)["commits"] for k in before} == before
    assert [len(c) for c in before.values()] == [2, 2, 2]
    assert removed(out) == expected
    exact = json.loads((stage_dir(out, "exact_dedup") / "_manifest.json").read_text())
    assert exact["index"]["committed_before"] and exact["audit"]["index"] == {"commits": 1, "entries": N_FIRST}
    assert exact["audit"]["documents_removed_in_index"] == len(EXACT)


def test_pairs_with_indexed_documents_are_verified_by_their_signatures(client, first_run, second_run):
    """A near copy against its indexed original passes; against another indexed paragraph, not."""
    import dask.dataframe as dd
    import pandas as pd

    from dedup.index import index_nodes
    from dedup.index_minhash import verify_index_edges

    signatures = stage_dir(second_run["out"], "minhash_signatures") / "signatures"
    parts = tuple(sorted(p.name for p in signatures.glob("part-*.parquet")))
    by_id = {r["id"]: r["node"] for p in parts
             for r in pq.read_table(signatures / p, columns=["id", "node"]).to_pylist()}
    copy = by_id[ids_by_tag(second_run["out"])[f"near-{NEAR[0]}"]]
    folder = second_run["index"] / "minhash"
    commit = index_manifest(second_run["index"], "minhash")["commits"][0]
    indexed = {}
    for ipart, rel in enumerate(commit["parts"]):
        part_ids = pq.read_table(folder / rel, columns=["id"])["id"].to_pylist()
        indexed.update(zip(part_ids, index_nodes(ipart, len(part_ids)).tolist()))
    first_ids = ids_by_tag(first_run["out"])
    original, other = indexed[first_ids[f"r1-{NEAR[0]}"]], indexed[first_ids["r1-40"]]
    edges = dd.from_pandas(pd.DataFrame({"u": [copy, copy], "v": [original, other]}), npartitions=1)
    snap = (str(folder), 1, str(second_run["out"]))  # the first commit, as lsh_buckets records it
    kept = client.compute(verify_index_edges(edges, parts, str(signatures), snap, 0.7, 1)).result()
    assert kept[["u", "v"]].values.tolist() == [[copy, original]]


# -- the lock ---------------------------------------------------------------------------------

def thresher_run(config: Path, out: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "pipeline.cli", "run", str(config), "--output", str(out), "--workers", "2",
           "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def write_config(path: Path, corpus: dict, index: str) -> Path:
    path.write_text(yaml.safe_dump({"output": "unused", "inputs": corpus["second"], "stages": stages(index),
                                    "read": READ}))
    return path


def started(out: Path, name: str, rel: str) -> bool:
    return any(d.joinpath(rel).exists() for d in out.glob(f"[0-9][0-9]-{name}"))


def test_killed_mid_stage_and_rerun_commits_once_with_the_same_outputs(corpus, first_run, second_run, tmp_path):
    index, out = index_copy(first_run, tmp_path / "index"), tmp_path / "out"
    config = write_config(tmp_path / "run2.yaml", corpus, index)
    applying = lambda: any(out.glob("[0-9][0-9]-exact_dedup/_stats/*.json"))  # noqa: E731
    proc = thresher_run(config, out)
    try:  # killed while exact_dedup applies its decisions, holding its index's lock
        wait_for(proc, applying)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert Path(index, "exact", "_lock.json").exists() and len(index_manifest(Path(index), "exact")["commits"]) == 1
    proc = thresher_run(config, out)
    try:  # killed again once duplicate_clusters starts (the MinHash lock is kept from lsh_buckets on)
        deadline = time.monotonic() + 300
        while proc.poll() is None and not started(out, "duplicate_clusters", "_stage.json"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = thresher_run(config, out)
    assert proc.wait(300) == 0, proc.communicate()[1][-3000:]
    for kind in ("url", "exact", "minhash"):
        commits = index_manifest(Path(index), kind)["commits"]
        assert len(commits) == 2 and len({c["key"] for c in commits}) == 2
    assert removed(out) == removed(second_run["out"])
    assert without_index_blocks(digest_outputs(out)) == without_index_blocks(digest_outputs(second_run["out"]))
    assert not list(Path(index).rglob("_lock.json"))


def test_a_second_run_is_refused_while_another_holds_the_index(corpus, first_run, tmp_path):
    index, out = index_copy(first_run, tmp_path / "index"), tmp_path / "a"
    config = write_config(tmp_path / "run2.yaml", corpus, index)
    first = thresher_run(config, out)
    try:  # stop run A while it holds a lock, run B, then let A go on
        wait_for(first, lambda: list(Path(index).glob("*/_lock.json")))
        os.killpg(first.pid, signal.SIGSTOP)
        second = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(config), "--output",
                                 str(tmp_path / "b"), "--workers", "1", "--no-progress"], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        os.killpg(first.pid, signal.SIGCONT)
        assert second.returncode == 75
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith("thresher: error: ") and ".index: " in line and "is in use by host" in line
        assert f"pid {first.pid} " in line and f"output {tmp_path / 'a'}" in line
        assert first.wait(300) == 0, first.communicate()[1][-3000:]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert len(index_manifest(Path(index), "exact")["commits"]) == 2  # A committed; B nothing


# -- an index on S3 -------------------------------------------------------------------------------

def test_an_index_on_s3(server, fs, corpus, second_run, tmp_path):
    """Both runs against s3://.../idx (moto's S3 server, as tests/pipeline/test_s3.py starts it),
    with candidate pairs verified (against an indexed document: by its stored signature)."""
    fs.mkdir("index-bucket")
    for name, inputs in (("first", corpus["first"]), ("second", corpus["second"])):
        config = tmp_path / f"{name}.yaml"
        config.write_text(yaml.safe_dump({"output": str(tmp_path / name), "inputs": inputs,
                                          "stages": stages("s3://index-bucket/idx", verify=0.7), "read": READ}))
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", str(config), "--workers", "2",
                               "--no-progress"], cwd=REPO, env=server, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert removed(tmp_path / "second") == removed(second_run["out"])
    fs.invalidate_cache()
    for kind in ("url", "exact", "minhash"):
        commits = json.loads(fs.cat_file(f"index-bucket/idx/{kind}/_index.json"))["commits"]
        local = index_manifest(second_run["index"], kind)["commits"]
        assert [c["entries"] for c in commits] == [c["entries"] for c in local]
        assert all(fs.exists(f"index-bucket/idx/{kind}/{p}") for c in commits for p in c["parts"])
    assert not fs.glob("index-bucket/idx/*/_lock.json")
