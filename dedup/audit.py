"""The MinHash dedup audit: how good the answer is, on the user's own data.

- the S-curve of the chosen bands x rows: P(a pair becomes a candidate) against its Jaccard;
- a false-positive estimate: a deterministic sample of candidate pairs (hash of the pair ids)
  with their true Jaccard and MinHash estimate; a candidate below the Jaccard threshold is a
  false positive of LSH (verification, when enabled, drops such pairs);
- cluster sizes and removals per source and domain (from `dedup.decide`).

    audit = lsh_audit(bands=14, rows=8, threshold=None)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dedup.minhash import s_curve

HISTOGRAM_BINS = np.round(np.arange(0.0, 1.01, 0.1), 2)


def implied_threshold(bands: int, rows: int) -> float:
    """The Jaccard where the S-curve is steepest, ~(1/bands)^(1/rows) (Leskovec et al., MMDS 3.4.3)."""
    return round((1.0 / bands) ** (1.0 / rows), 4)


def lsh_audit(bands: int, rows: int, threshold: float | None) -> dict:
    return {
        "bands": bands,
        "rows": rows,
        "jaccard_threshold": threshold if threshold is not None else implied_threshold(bands, rows),
        "threshold_source": "configured" if threshold is not None else "(1/bands)^(1/rows)",
        "s_curve": s_curve(bands, rows),
    }


def jaccard_histogram(values: np.ndarray) -> dict[str, int]:
    counts, _ = np.histogram(values, bins=HISTOGRAM_BINS)
    return {f"{lo:.1f}-{hi:.1f}": int(n) for lo, hi, n in zip(HISTOGRAM_BINS[:-1], HISTOGRAM_BINS[1:], counts)}


def false_positive_audit(sample: pd.DataFrame, threshold: float, n_edges: int) -> dict:
    """Summary of a sample of candidate pairs with columns u, v, jaccard, estimate (+ ids)."""
    if not len(sample):
        return {"candidate_pairs": n_edges, "sampled_pairs": 0}
    true = sample["jaccard"].to_numpy()
    worst = sample.sort_values(["jaccard", "u", "v"]).head(5)
    return {
        "candidate_pairs": n_edges,
        "sampled_pairs": len(sample),
        "jaccard_threshold": threshold,
        "false_positive_rate": round(float(np.mean(true < threshold)), 4),
        "estimated_false_positives": round(float(np.mean(true < threshold)) * n_edges),
        "true_jaccard_mean": round(float(true.mean()), 4),
        "true_jaccard_histogram": jaccard_histogram(true),
        "mean_abs_estimate_error": round(float(np.mean(np.abs(sample["estimate"].to_numpy() - true))), 4),
        "lowest_pairs": [{"ids": [a, b], "jaccard": round(float(j), 4)}
                         for a, b, j in zip(worst["id_u"], worst["id_v"], worst["jaccard"])],
    }
