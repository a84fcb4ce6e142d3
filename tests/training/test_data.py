"""The blended loader: proportions, packing, and exact resumption across a change of world size."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from tokenization.indexed import IndexedDataset, IndexedWriter
from training.data import BlendedLoader, PackedDomain, blend, validation_sets
from training.shards import load_manifest


def make_shard(tmp_path, name, docs):
    with IndexedWriter(tmp_path / name) as w:
        for doc in docs:
            w.add_document(doc)
    return IndexedDataset(tmp_path / name)


def test_blend_tracks_weights_to_within_one_sample():
    weights = np.array([0.51, 0.49])
    drawn = np.zeros(2, dtype=np.int64)
    picks = blend(weights, 0, drawn, 10_000)
    assert drawn.tolist() == [5100, 4900]
    # the running share never strays by more than a sample (Megatron's max-error rule)
    counts = np.cumsum(np.eye(2, dtype=np.int64)[picks], axis=0)
    error = np.abs(counts - np.outer(np.arange(1, 10_001), weights))
    assert error.max() <= 1.0


def test_blend_continues_identically_from_a_counter():
    weights = np.array([0.5, 0.3, 0.2])
    whole = blend(weights, 0, np.zeros(3, dtype=np.int64), 1000)
    drawn = np.zeros(3, dtype=np.int64)
    first = blend(weights, 0, drawn, 377)
    assert first + blend(weights, 377, drawn, 623) == whole


def test_packing_lays_documents_end_to_end_with_one_token_overlap(tmp_path):
    docs = [list(range(100 * i, 100 * i + n)) + [2] for i, n in enumerate([5, 17, 3, 40, 9])]
    domain = PackedDomain("d", [make_shard(tmp_path, "a", docs[:3]), make_shard(tmp_path, "b", docs[3:])],
                          seq_len=8, seed=0, shuffle=False)
    stream = np.concatenate(docs)
    assert domain.samples_per_epoch == (len(stream) - 1) // 8
    for k in range(domain.samples_per_epoch):
        assert domain.sample(k).tolist() == stream[8 * k: 8 * k + 9].tolist()


def test_an_epoch_uses_every_token_once_and_the_next_epoch_is_reshuffled(tmp_path):
    docs = [[10 + i] * (3 + i % 7) + [2] for i in range(60)]
    domain = PackedDomain("d", [make_shard(tmp_path, "a", docs)], seq_len=6, seed=3)
    epoch0 = [domain.sample(k) for k in range(domain.samples_per_epoch)]
    used = Counter(np.concatenate([s[:-1] for s in epoch0]).tolist())
    available = Counter(np.concatenate(docs).tolist())
    assert all(used[t] <= available[t] for t in used)  # no token is a target twice within the epoch
    assert available.total() - used.total() < 6 + 1  # only the tail shorter than a sample is left
    epoch1 = [domain.sample(domain.samples_per_epoch + k) for k in range(domain.samples_per_epoch)]
    assert [s.tolist() for s in epoch0] != [s.tolist() for s in epoch1]


def test_a_domain_shorter_than_one_sample_is_refused_with_its_name(tmp_path):
    with pytest.raises(ValueError, match=re.escape("domain 'tiny' has 4 tokens, fewer than data.seq_len")):
        PackedDomain("tiny", [make_shard(tmp_path, "a", [[1, 2, 3, 2]])], seq_len=8, seed=0)


def test_loader_draws_domains_in_configured_proportions(manifest_path):
    manifest = load_manifest(manifest_path)
    loader = BlendedLoader.from_manifest(manifest, seq_len=64, seed=0, weights={"financial": 0.51, "general": 0.49})
    ids = loader.next_samples(5000)
    share = Counter(loader.domains[d].name for d, _ in ids)["financial"] / len(ids)
    assert abs(share - 0.51) < 0.01
    # without configured weights the manifest's mixture is the target
    loader = BlendedLoader.from_manifest(manifest, seq_len=64, seed=0)
    ids = loader.next_samples(5000)
    share = Counter(loader.domains[d].name for d, _ in ids)["financial"] / len(ids)
    assert abs(share - manifest.mixture["financial"]) < 0.01


def test_unknown_domain_in_weights_names_the_setting(manifest_path):
    with pytest.raises(ValueError, match=r"data.weights: domain\(s\) \['legal'\] not in the manifest"):
        BlendedLoader.from_manifest(load_manifest(manifest_path), 64, 0, weights={"legal": 1.0})


def global_step(loaders, step_args):
    """The samples of one step over all ranks (each rank has its own loader, as in training)."""
    per_rank = [loader.next_step(*step_args, rank=r, world_size=len(loaders)) for r, loader in enumerate(loaders)]
    return sorted(tuple(row.tolist()) for batches in per_rank for batch in batches for row in batch)


def test_resume_on_another_world_size_neither_repeats_nor_skips(manifest_path):
    manifest = load_manifest(manifest_path)

    def new_loader():
        return BlendedLoader.from_manifest(manifest, seq_len=64, seed=7, weights={"financial": 0.6, "general": 0.4})

    reference = new_loader()
    expected = [global_step([reference], (16, 4)) for _ in range(30)]

    two_ranks = [new_loader(), new_loader()]
    seen = [global_step(two_ranks, (16, 4)) for _ in range(12)]
    state = two_ranks[0].state_dict()
    assert state == two_ranks[1].state_dict()  # the state is global: one counter, not per rank
    resumed = new_loader()
    resumed.load_state_dict(state)
    seen += [global_step([resumed], (16, 4)) for _ in range(18)]

    assert seen == expected
    flat = [row for step in seen for row in step]
    assert len(set(flat)) == len(flat)  # 480 sequences, fewer than one epoch: none repeated


def test_loader_state_from_another_mixture_is_refused(manifest_path):
    manifest = load_manifest(manifest_path)
    old = BlendedLoader.from_manifest(manifest, 64, 0, weights={"financial": 0.2, "general": 0.8})
    new = BlendedLoader.from_manifest(manifest, 64, 0, weights={"financial": 0.51, "general": 0.49})
    with pytest.raises(ValueError, match=r"other data\.weights .* use checkpoint\.init_from"):
        new.load_state_dict(old.state_dict())


def test_validation_sets_are_the_held_out_shards_in_order(manifest_path):
    manifest = load_manifest(manifest_path)
    sets = validation_sets(manifest, seq_len=64)
    assert sorted(sets) == ["financial", "general"]
    valid = manifest.domains["financial"].valid
    assert sets["financial"].sample(0).tolist() == valid.token_range(0, 65).tolist()
