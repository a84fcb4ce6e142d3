"""Blended, packed, resumable training data over the tokenize stage's shards.

Packing (Megatron's GPTDataset): per domain and epoch, a seeded shuffle of the documents is laid
end to end (each already ends in EOS) and cut into samples of `seq_len + 1` tokens that overlap
by one, so every token is a target exactly once; the samples are then shuffled again.
Blending (Megatron's `build_blending_indices`): global sample i comes from the domain with the
largest gap `weight * max(i, 1) - drawn`, which tracks the weights to within one sample with no
randomness. The order is therefore a pure function of (seed, weights, shards), and the loader's
whole state is a global consumed-samples counter plus the per-domain draw counts: it does not
depend on the number of ranks, so a checkpoint written by 2 ranks resumes on 1 (a per-rank
iterator state cannot; torchtitan #816, litData #213).

    loader = BlendedLoader.from_manifest(manifest, seq_len=128, seed=0)
    micro_batches = loader.next_step(global_batch=16, micro_batch=4, rank=0, world_size=2)
    state = loader.state_dict(); loader.load_state_dict(state)
    with Prefetcher(loader, 16, 4, rank=0, world_size=2) as steps:   # reads ahead on a thread
        micro_batches = steps.next_step(); state = steps.state_dict()

The per-document index (lengths, per-epoch orders) is memory-mapped from a cache folder shared
by the ranks when `from_manifest` gets an `IndexCache` (training/index.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence

import numpy as np
import torch

from tokenization.indexed import IndexedDataset
from training.index import IndexCache, shards_key
from training.shards import Manifest


class PackedDomain:
    """One domain's documents packed into fixed-length samples, reshuffled every epoch.

    The per-document arrays (lengths; per epoch the document order, its cumulative token ends
    and the sample order) come from `index` (training/index.py): memory-mapped from a cache
    folder shared by the ranks, or built in memory without one."""

    def __init__(self, name: str, shards: Sequence[IndexedDataset], seq_len: int, seed: int, shuffle: bool = True,
                 index: IndexCache | None = None):
        self.name, self.shards, self.seq_len, self.shuffle = name, list(shards), seq_len, shuffle
        self.seed = [seed, *name.encode()]  # a seed per domain, independent of the domain list
        self.index = index or IndexCache(None)
        self._key = {"domain": name, "shards": shards_key(self.shards) if index else None, "seed": self.seed}
        self.lengths = self.index.arrays("lengths", self._key, self._lengths)["lengths"]
        # Shard of global document g: the last start <= g (a few numbers, not one per document).
        self.shard_starts = np.cumsum([0] + [len(s) for s in self.shards], dtype=np.int64)
        self.tokens = int(self.lengths.sum(dtype=np.int64))
        self.samples_per_epoch = max(self.tokens - 1, 0) // seq_len
        if self.samples_per_epoch == 0:
            raise ValueError(f"domain {name!r} has {self.tokens} tokens, fewer than data.seq_len + 1 = {seq_len + 1}")
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def _lengths(self) -> dict[str, np.ndarray]:
        return {"lengths": np.concatenate([s.lengths for s in self.shards] or [[]]).astype(np.int32)}

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if epoch not in self._epochs:
            if len(self._epochs) >= 2:  # the current epoch and the next are all a run needs
                self._epochs.pop(min(self._epochs))
            key = {**self._key, "epoch": epoch, "seq_len": self.seq_len, "shuffle": self.shuffle}
            arrays = self.index.arrays("epoch", key, lambda: self._build_epoch(epoch))
            self._epochs[epoch] = (arrays["docs"], arrays["ends"], arrays["samples"])
        return self._epochs[epoch]

    def _build_epoch(self, epoch: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([*self.seed, epoch])
        n_docs = len(self.lengths)
        docs = rng.permutation(n_docs) if self.shuffle else np.arange(n_docs)
        samples = rng.permutation(self.samples_per_epoch) if self.shuffle else np.arange(self.samples_per_epoch)
        ends = np.cumsum(self.lengths[docs], dtype=np.int64)
        return {"docs": _narrow(docs), "ends": ends, "samples": _narrow(samples)}  # orders: int32 when they fit

    def sample(self, n: int) -> np.ndarray:
        """The n-th sample drawn from this domain (n counts on through later epochs)."""
        epoch, k = divmod(n, self.samples_per_epoch)
        docs, ends, samples = self._epoch(epoch)
        return self._read(docs, ends, int(samples[k]) * self.seq_len, self.seq_len + 1)

    def _read(self, docs: np.ndarray, ends: np.ndarray, position: int, count: int) -> np.ndarray:
        pieces, j = [], int(np.searchsorted(ends, position, side="right"))
        while count > 0:
            doc = docs[j]
            offset = position - (int(ends[j]) - int(self.lengths[doc]))
            take = min(count, int(self.lengths[doc]) - offset)
            shard = int(np.searchsorted(self.shard_starts, doc, side="right")) - 1
            pieces.append(self.shards[shard].get(int(doc - self.shard_starts[shard]), offset, take))
            position, count, j = position + take, count - take, j + 1
        return np.concatenate(pieces).astype(np.int64)


def _narrow(positions: np.ndarray) -> np.ndarray:
    return positions.astype(np.int32) if len(positions) < 2**31 else positions


def blend(weights: np.ndarray, start: int, drawn: np.ndarray, count: int) -> list[int]:
    """Sources of global samples start..start+count-1, advancing `drawn` in place.

    Megatron-LM `build_blending_indices`: "determine where the max error in sampling is
    happening" — error = weight * max(i, 1) - samples drawn so far; the first maximum wins."""
    picks = []
    for i in range(start, start + count):
        source = int(np.argmax(weights * max(i, 1) - drawn))
        drawn[source] += 1
        picks.append(source)
    return picks


class BlendedLoader:
    """Global batches of packed samples drawn from domains in fixed proportions."""

    def __init__(self, domains: list[PackedDomain], weights: Sequence[float], seed: int):
        assert len(domains) == len(weights) and domains, "one weight per domain"
        self.domains, self.seed = domains, seed
        self.weights = np.asarray(weights, dtype=np.float64) / sum(weights)
        self.consumed = 0
        self.drawn = np.zeros(len(domains), dtype=np.int64)

    @classmethod
    def from_manifest(cls, manifest: Manifest, seq_len: int, seed: int, weights: dict[str, float] | None = None,
                      index: IndexCache | None = None) -> BlendedLoader:
        weights = dict(weights or manifest.mixture)
        unknown = sorted(set(weights) - set(manifest.domains))
        if unknown:
            raise ValueError(f"data.weights: domain(s) {unknown} not in the manifest; "
                             f"it has {sorted(manifest.domains)}")
        names = [name for name in sorted(weights) if weights[name] > 0]
        domains = [PackedDomain(n, manifest.domains[n].train, seq_len, seed, index=index) for n in names]
        return cls(domains, [weights[n] for n in names], seed)

    def next_samples(self, count: int) -> list[tuple[int, int]]:
        """(domain index, n-th draw from it) for the next `count` global samples."""
        seen = self.drawn.copy()
        picks = blend(self.weights, self.consumed, self.drawn, count)
        self.consumed += count
        ids = []
        for source in picks:
            ids.append((source, int(seen[source])))
            seen[source] += 1
        return ids

    def next_step(self, global_batch: int, micro_batch: int, rank: int, world_size: int) -> list[torch.Tensor]:
        """This rank's micro-batches (each micro_batch x (seq_len+1) tokens) of the next step.

        Every rank advances the same global counter; micro-step m of rank r takes global samples
        [(m * world_size + r) * micro_batch, ... + micro_batch) of the step."""
        ids = self.next_samples(global_batch)
        per_micro = micro_batch * world_size
        assert global_batch % per_micro == 0, "global batch must split into micro-batches on every rank"
        batches = []
        for m in range(global_batch // per_micro):
            mine = ids[m * per_micro + rank * micro_batch: m * per_micro + (rank + 1) * micro_batch]
            batches.append(torch.from_numpy(np.stack([self.domains[d].sample(n) for d, n in mine])))
        return batches

    def state_dict(self) -> dict:
        return {"consumed_samples": self.consumed, "seed": self.seed,
                "seq_len": self.domains[0].seq_len,
                "domains": {d.name: {"drawn": int(n), "epoch": int(n // d.samples_per_epoch),
                                     "weight": float(w), "tokens": d.tokens}
                            for d, n, w in zip(self.domains, self.drawn, self.weights)}}

    def load_state_dict(self, state: dict) -> None:
        expected = self.state_dict()
        for key in ("seed", "seq_len"):
            if state[key] != expected[key]:
                raise ValueError(f"checkpoint's data loader has {key}={state[key]}, config has {expected[key]}; "
                                 f"use checkpoint.init_from to start a new run from its weights")
        mine = {n: (round(d["weight"], 9), d["tokens"]) for n, d in expected["domains"].items()}
        theirs = {n: (round(d["weight"], 9), d["tokens"]) for n, d in state["domains"].items()}
        if mine != theirs:
            raise ValueError("checkpoint's data loader was made with other data.weights or shards "
                             f"({theirs} vs {mine}); use checkpoint.init_from to start a new run from its weights")
        self.consumed = int(state["consumed_samples"])
        self.drawn = np.array([state["domains"][d.name]["drawn"] for d in self.domains], dtype=np.int64)


class Prefetcher:
    """The loader's steps read ahead on a background thread into a bounded queue, so the step
    loop does not wait on shard reads. Batches and their order are exactly the loader's; each
    step comes with the loader state after it, so `state_dict()` is the state after the last
    step *taken*, whatever the thread has read ahead. `depth` 0 reads in the caller's thread."""

    def __init__(self, loader: BlendedLoader, global_batch: int, micro_batch: int, rank: int, world_size: int,
                 depth: int = 2):
        self.loader, self.depth = loader, depth
        self._args = (global_batch, micro_batch, rank, world_size)
        self._state = loader.state_dict()
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._thread = threading.Thread(target=self._produce, name="thresher-prefetch", daemon=True)
        if depth:
            self._thread.start()

    def _produce(self) -> None:
        while not self._stop.is_set():
            try:
                item: tuple | BaseException = (self.loader.next_step(*self._args), self.loader.state_dict())
            except BaseException as error:  # handed to the step loop, which raises it
                item = error
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def next_step(self) -> list[torch.Tensor]:
        """This rank's micro-batches of the next step."""
        if not self.depth:
            batches = self.loader.next_step(*self._args)
            self._state = self.loader.state_dict()
            return batches
        item = self._queue.get()
        if isinstance(item, BaseException):
            raise item
        batches, self._state = item
        return batches

    def state_dict(self) -> dict:
        return self._state

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def validation_sets(manifest: Manifest, seq_len: int, extra: dict[str, str] | None = None) -> dict[str, PackedDomain]:
    """Each domain's held-out shard packed in order (no shuffle); domains whose valid shard is
    missing or shorter than one sample are left out. `extra` (`eval.sets`: name -> token file
    prefix) adds evaluation sets of its own, e.g. text no variant of an ablation trained on."""
    sets = {}
    for name, domain in manifest.domains.items():
        if domain.valid is not None and domain.valid.num_tokens > seq_len:
            sets[name] = PackedDomain(name, [domain.valid], seq_len, seed=0, shuffle=False)
    for name, prefix in (extra or {}).items():
        if name in sets:
            raise ValueError(f"eval.sets.{name}: the manifest has a domain of that name; rename the set")
        tokens = IndexedDataset(prefix)
        if len(tokens.tokens) and int(tokens.tokens.max()) >= manifest.vocab_size:
            raise ValueError(f"eval.sets.{name}: {prefix} holds token ids beyond the shards' vocabulary "
                             f"({manifest.vocab_size}); tokenize it with the shards' tokenizer")
        sets[name] = PackedDomain(name, [tokens], seq_len, seed=0, shuffle=False)
    return sets
