"""The blended loader: proportions, packing, and exact resumption across a change of world size."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from tokenization.indexed import IndexedDataset, IndexedWriter
from training.data import BlendedLoader, PackedDomain, Prefetcher, blend, validation_sets
from training.index import IndexCache
from training.shards import Manifest, load_manifest


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


def _two_domain_loader(tmp_path, index=None) -> BlendedLoader:
    docs = [[10 + i] * (3 + i % 11) + [2] for i in range(200)]
    parts = {"a0": docs[:70], "a1": docs[70:120], "b0": docs[120:]}
    opened = {name: IndexedDataset(tmp_path / name) if (tmp_path / f"{name}.idx").exists()
              else make_shard(tmp_path, name, part) for name, part in parts.items()}
    shards = {"a": [opened["a0"], opened["a1"]], "b": [opened["b0"]]}
    domains = [PackedDomain(name, shards[name], seq_len=8, seed=5, index=index) for name in ("a", "b")]
    return BlendedLoader(domains, [0.6, 0.4], seed=5)


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_prefetching_gives_the_loaders_own_steps_and_the_state_of_the_last_step_taken(tmp_path, depth):
    direct, ahead = _two_domain_loader(tmp_path), _two_domain_loader(tmp_path)
    with Prefetcher(ahead, 8, 2, rank=1, world_size=2, depth=depth) as steps:
        for _ in range(30):  # several epochs of both domains
            expected = direct.next_step(8, 2, rank=1, world_size=2)
            got = steps.next_step()
            assert [b.tolist() for b in got] == [b.tolist() for b in expected]
            assert steps.state_dict() == direct.state_dict()  # not the state of the steps read ahead
        resumed = _two_domain_loader(tmp_path)
        resumed.load_state_dict(steps.state_dict())
    assert [b.tolist() for b in resumed.next_step(8, 2, 1, 2)] == [b.tolist() for b in direct.next_step(8, 2, 1, 2)]


def test_a_loader_error_is_raised_in_the_step_loop(tmp_path):
    loader = _two_domain_loader(tmp_path)
    loader.next_step = lambda *args: (_ for _ in ()).throw(OSError("shard vanished"))
    with Prefetcher(loader, 8, 2, rank=0, world_size=1, depth=2) as steps, pytest.raises(OSError, match="vanished"):
        steps.next_step()


def test_the_document_index_is_built_once_and_memory_mapped(tmp_path, monkeypatch):
    builds = []
    original = PackedDomain._build_epoch
    monkeypatch.setattr(PackedDomain, "_build_epoch", lambda self, epoch: builds.append(epoch) or original(self, epoch))
    in_memory = _two_domain_loader(tmp_path)
    first, second = (_two_domain_loader(tmp_path, IndexCache(tmp_path / "index")) for _ in range(2))
    samples = [[d.sample(k).tolist() for k in range(0, 3 * d.samples_per_epoch, 7)] for d in in_memory.domains]
    for loader in (first, second):  # the second maps what the first built
        assert [[d.sample(k).tolist() for k in range(0, 3 * d.samples_per_epoch, 7)]
                for d in loader.domains] == samples
        assert all(isinstance(d.lengths, np.memmap) for d in loader.domains)
        assert all(isinstance(a, np.memmap) for d in loader.domains for a in d._epoch(0))
    # in memory: 2 domains x epochs 0..2; with the cache: the first loader builds them once more, the second never
    assert Counter(builds) == {0: 4, 1: 4, 2: 4}
    assert not list((tmp_path / "index").glob(".*"))  # no temporary file left
    (tmp_path / "b0.idx").touch()  # a rewritten shard: its domain's index is built anew
    _two_domain_loader(tmp_path, IndexCache(tmp_path / "index")).domains[1].sample(0)
    assert Counter(builds) == {0: 5, 1: 4, 2: 4}


def test_eval_sets_are_validated_beside_the_domains(tmp_path):
    """`eval.sets` adds token files of its own to the validation sets; ids beyond the shards'
    vocabulary (another tokenizer's) fail with one line naming the set."""
    with IndexedWriter(tmp_path / "held", np.uint16) as writer:
        writer.add_document(np.arange(60) % 7)
    manifest = Manifest(path="m", vocab_size=7, eos_id=2, mixture={}, domains={})
    sets = validation_sets(manifest, 8, {"held": str(tmp_path / "held")})
    assert list(sets) == ["held"] and sets["held"].samples_per_epoch == 59 // 8
    assert sets["held"].sample(0).tolist() == list(np.arange(9) % 7)
    with pytest.raises(ValueError, match=r"^eval.sets.held: .* beyond the shards' vocabulary \(6\)"):
        validation_sets(Manifest("m", 6, 2, {}, {}), 8, {"held": str(tmp_path / "held")})
