"""The MinHash stages end to end: the plagiarism corpus with the default config (recall per
category printed next to each pair's true Jaccard), dedup across and within sources on real
Reuters near-duplicates, the audit, verification, the Dask components path, stage order."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow as pa
import pytest
from datasketch.lsh import _optimal_param

from dedup.minhash import MinHashParams, hash_sets, jaccard
from dedup.normalize import Normalization, normalize
from pipeline.config import ConfigError, parse_config
from tests.conftest import shared_path
from tests.dedup.conftest import (
    digest_outputs,
    manifest,
    recipe_stages,
    reuters_near_duplicates,
    rows,
    run,
    stage_dir,
    write_jsonl,
)

MINHASH = [{"minhash_signatures": {}}, {"lsh_buckets": {}}, {"duplicate_clusters": {}}, {"remove_duplicates": {}}]
FULL = Normalization(strip_punctuation=True)  # the MinHash default


def word5_jaccard(a: str, b: str) -> float:
    """True word-5-gram Jaccard after the default MinHash normalisation (independent of the stages)."""
    x, y = normalize(pa.array([a, b]), FULL).to_pylist()
    grams = [{tuple(t.split()[i:i + 5]) for i in range(len(t.split()) - 4)} for t in (x, y)]
    return len(grams[0] & grams[1]) / len(grams[0] | grams[1])


def removed_ids(output) -> dict[str, str]:
    """id -> reason of every document removed by any dedup stage."""
    out = {}
    for name in ("exact_dedup", "remove_duplicates"):
        matches = list(output.glob(f"[0-9][0-9]-{name}"))
        for row in rows(matches[0], "rejected") if matches else []:
            out[row["id"]] = row["reason"]
    return out


def test_plagiarism_answers_with_default_config(client, tmp_path):
    path = shared_path("dedup_plagiarism_short_answers", "documents.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    run(client, tmp_path, [{"path": str(path), "format": "jsonl", "source": "plagiarism"}], recipe_stages())
    removed = removed_ids(tmp_path)
    doc_id = {r["file"]: f"plagiarism/documents.jsonl:{i}" for i, r in enumerate(records, start=1)}
    source = {r["task"]: r for r in records if r["category"] == "orig"}
    found: dict[str, list[bool]] = defaultdict(list)
    print("\ncategory  answer            Jaccard(word-5, with its source)  found")
    for r in sorted(records, key=lambda r: (r["category"], r["file"])):
        if r["category"] == "orig":
            continue
        j = word5_jaccard(r["text"], source[r["task"]]["text"])
        hit = doc_id[r["file"]] in removed or doc_id[source[r["task"]]["file"]] in removed
        found[r["category"]].append(hit)
        print(f"{r['category']:8s}  {r['file']:16s}  {j:6.3f}  {'yes' if hit else 'no'}")
        if r["category"] == "non":
            assert doc_id[r["file"]] not in removed, f"independent answer {r['file']} removed"
        if j >= 0.8:
            assert hit, f"{r['file']} (Jaccard {j:.3f} with its source) not found"
    for category in ("cut", "light", "heavy", "non"):
        hits = found[category]
        print(f"recall {category:5s}: {sum(hits)}/{len(hits)}  (most `cut` answers copy only part of the source: "
              "text reuse, not near-duplicates)" if category == "cut"
              else f"recall {category:5s}: {sum(hits)}/{len(hits)}")
    assert sum(found["non"]) == 0


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory):
    """Reuters stories and their re-issues spread over two sources (a wire and a web crawl)."""
    docs = reuters_near_duplicates(240)
    root = tmp_path_factory.mktemp("reuters")
    wire = write_jsonl(root / "wire.jsonl", docs[0::2]) | {"domain": "financial"}
    web = write_jsonl(root / "web.jsonl", docs[1::2]) | {"domain": "general"}
    return [wire, web], docs


def test_near_duplicates_across_and_within_sources(client, two_sources, tmp_path):
    inputs, docs = two_sources
    run(client, tmp_path, inputs, MINHASH, read={"max_docs_per_part": 40})
    final = stage_dir(tmp_path, "remove_duplicates")
    rejected = rows(final, "rejected")
    assert rejected and {r["reason"] for r in rejected} == {"remove_duplicates.near_duplicate"}
    kept = {r["id"]: r for r in rows(final)}
    for r in rejected:  # each removed document duplicates a kept one: the same story or a repeated wire
        rep = kept[r["metadata"]["duplicate_of"]]
        assert rep["metadata"]["story"] == r["metadata"]["story"] or word5_jaccard(rep["text"], r["text"]) > 0.5
    pairs = {(r["source"], kept[r["metadata"]["duplicate_of"]]["source"]) for r in rejected}
    assert ("web", "wire") in pairs or ("wire", "web") in pairs  # across sources
    assert ("web", "web") in pairs or ("wire", "wire") in pairs  # within a source
    by_story = defaultdict(list)
    for d in docs:
        by_story[d["story"]].append(d)
    expected = sum(len(v) - 1 for v in by_story.values())
    assert len(rejected) >= 0.9 * expected  # the edits keep Jaccard high: nearly all are found
    audit = manifest(final)["audit"]
    assert audit["documents_removed"] == len(rejected)
    assert sum(audit["removed_by_source"].values()) == len(rejected)
    assert set(audit["removed_by_domain"]) <= {"financial", "general"}
    assert [p["jaccard"] for p in audit["lsh"]["s_curve"]][::10] == [0.0, 0.5, 1.0]
    fp = audit["false_positives"]
    assert fp["sampled_pairs"] == min(500, fp["candidate_pairs"]) and 0 <= fp["false_positive_rate"] <= 1
    assert sum(fp["true_jaccard_histogram"].values()) == fp["sampled_pairs"]


def test_minhash_block_is_handed_down_the_stages(client, two_sources, tmp_path):
    inputs, _ = two_sources
    stages = [{"minhash_signatures": {"threshold": 0.8, "num_perm": 64}}, *MINHASH[1:]]
    run(client, tmp_path, inputs, stages)
    blocks = [manifest(stage_dir(tmp_path, name))["minhash"] for name in
              ("minhash_signatures", "lsh_buckets", "duplicate_clusters", "remove_duplicates")]
    assert all(b["params"] == blocks[0]["params"] for b in blocks)
    shape = (blocks[0]["bands"], blocks[0]["rows"])
    assert blocks[0]["params"]["threshold"] == 0.8 and shape == _optimal_param(0.8, 64, 0.5, 0.5)
    assert blocks[3]["clusters"].endswith("-duplicate_clusters/clusters")


def test_verification_drops_low_jaccard_candidates(client, two_sources, tmp_path):
    inputs, _ = two_sources
    loose = [{"minhash_signatures": {"num_perm": 16, "bands": 16, "rows": 1}}, {"lsh_buckets": {}},
             {"duplicate_clusters": {"verify_threshold": 0.6}}, {"remove_duplicates": {}}]
    run(client, tmp_path, inputs, loose)
    audit = manifest(stage_dir(tmp_path, "duplicate_clusters"))["audit"]
    assert audit["false_positives"]["false_positive_rate"] > 0.2  # one-row bands pass many dissimilar pairs
    assert audit["verification"]["pairs_dropped"] > 0
    final = stage_dir(tmp_path, "remove_duplicates")
    rejected = rows(final, "rejected")
    texts = {r["id"]: r["text"] for r in [*rows(final), *rejected]}
    clusters = defaultdict(set)
    for r in rejected:
        clusters[r["metadata"]["duplicate_of"]].update({r["id"], r["metadata"]["duplicate_of"]})
    assert clusters
    for members in clusters.values():  # every member kept a verified edge (Jaccard >= 0.6)
        ids = sorted(members)
        sets = dict(zip(ids, hash_sets(pa.array([texts[i] for i in ids]), MinHashParams())))
        for i in ids:
            assert max(jaccard(sets[i], sets[k]) for k in ids if k != i) >= 0.6


def test_dask_components_path_gives_the_same_bytes(client, two_sources, tmp_path):
    inputs, _ = two_sources
    local = [*MINHASH[:2], {"duplicate_clusters": {"max_local_edges": 10**9}}, MINHASH[3]]
    spread = [*MINHASH[:2], {"duplicate_clusters": {"max_local_edges": 0}}, MINHASH[3]]
    run(client, tmp_path / "local", inputs, local)
    run(client, tmp_path / "spread", inputs, spread)
    a = {k: v for k, v in digest_outputs(tmp_path / "local").items() if "_manifest" not in k}
    b = {k: v for k, v in digest_outputs(tmp_path / "spread").items() if "_manifest" not in k}
    assert a == b and any("clusters/part-" in k for k in a)


def test_nothing_to_remove(client, tmp_path):
    distinct = write_jsonl(tmp_path / "few.jsonl",
                           [{"text": "a b c d e f g h"}, {"text": "one two three"}, {"text": ""}])
    summary = run(client, tmp_path / "out", [distinct], MINHASH)
    assert summary["summary"]["documents_out"] == 3
    audit = manifest(stage_dir(tmp_path / "out", "remove_duplicates"))["audit"]
    assert audit["documents_removed"] == 0 and audit["false_positives"]["candidate_pairs"] == 0
    counters = manifest(stage_dir(tmp_path / "out", "minhash_signatures"))["stats"]["counters"]
    assert counters == {"documents_without_shingles": 1, "shingles": 5}


def test_stage_order_and_bad_params_are_reported(client, two_sources, tmp_path):
    inputs, _ = two_sources
    with pytest.raises(ValueError, match="minhash_signatures -> lsh_buckets"):
        run(client, tmp_path, inputs, [{"lsh_buckets": {}}])
    with pytest.raises(ConfigError, match=r"stages\[0\]\.minhash_signatures: .*bands and rows"):
        parse_config({"output": "x", "inputs": inputs, "stages": [{"minhash_signatures": {"bands": 4}}]})
    with pytest.raises(ConfigError, match=r"stages\[0\]\.duplicate_clusters\.representative"):
        parse_config({"output": "x", "inputs": inputs, "stages": [{"duplicate_clusters": {"representative": ["x"]}}]})
