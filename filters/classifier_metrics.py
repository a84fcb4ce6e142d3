"""Metrics for thresher's classifiers, in plain numpy: ROC-AUC (Mann-Whitney, ties count
half), a decision threshold calibrated on labelled scores, a calibration table, and the
classification report (accuracy, per-label precision/recall/F1, confusion).

    report = classification_report(truth, predicted, labels, positive_scores, "financial")
"""

from __future__ import annotations

from typing import Any

import numpy as np


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U, ties count half); None without both classes."""
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2  # 1-based, ties share their mean rank
    rank_sum = average_rank[inverse][y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def calibrate_threshold(y: np.ndarray, p: np.ndarray, metric: str, groups: np.ndarray | None = None) -> float:
    """The threshold on `p` (predict positive when p >= t) that maximises `metric` on (y, p);
    among equally good thresholds the one closest to 0.5. Candidates are midpoints between
    consecutive distinct scores, so the choice does not sit on one example's score.
    `source_accuracy` is the mean of the accuracies within each of `groups` (the sources), so
    a numerous kind of document (short news items) does not alone decide the threshold."""
    if metric == "none" or len(p) == 0:
        return 0.5
    y = np.asarray(y, dtype=bool)
    groups = np.zeros(len(y), dtype=int) if groups is None or metric != "source_accuracy" else np.asarray(groups)
    weight = 1.0 / np.unique(groups, return_counts=True)[1][np.unique(groups, return_inverse=True)[1]]
    values = np.unique(p)[::-1]
    cuts = np.r_[(values[:-1] + values[1:]) / 2, values[-1]]
    tp = np.array([(weight * (y & (p >= t))).sum() for t in cuts])
    fp = np.array([(weight * (~y & (p >= t))).sum() for t in cuts])
    n_pos, total = (weight * y).sum(), weight.sum()
    if metric in ("accuracy", "source_accuracy"):
        score = (tp + (total - n_pos - fp)) / total
    else:
        score = 2 * tp / np.maximum(2 * tp + fp + (n_pos - tp), 1e-12)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    return float(cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]])


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per probability bin: examples, mean predicted probability, observed positive rate."""
    y = np.asarray(y, dtype=float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append({"bin": [b / bins, (b + 1) / bins], "count": int(mask.sum()),
                         "mean_predicted": round(float(p[mask].mean()), 4),
                         "fraction_positive": round(float(y[mask].mean()), 4)})
    return rows


def classification_report(truth: list[str], predicted: list[str], labels: list[str],
                          positive_scores: np.ndarray | None = None, positive_label: str | None = None) -> dict:
    """Accuracy, per-label precision/recall/F1/support, the confusion matrix
    (`confusion[true][predicted]`) and, for a positive label, ROC-AUC and calibration."""
    truth_a, pred_a = np.array(truth, dtype=object), np.array(predicted, dtype=object)
    report: dict[str, Any] = {"examples": len(truth),
                              "accuracy": round(float((truth_a == pred_a).mean()), 4) if truth else None}
    for label in labels:
        tp = int(((truth_a == label) & (pred_a == label)).sum())
        precision = tp / max(int((pred_a == label).sum()), 1)
        recall = tp / max(int((truth_a == label).sum()), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[label] = {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
                         "support": int((truth_a == label).sum())}
    report["confusion"] = {t: {p: int(((truth_a == t) & (pred_a == p)).sum()) for p in labels} for t in labels}
    if positive_label is not None and positive_scores is not None:
        y = truth_a == positive_label
        auc = roc_auc(y, positive_scores)
        report["roc_auc"] = None if auc is None else round(auc, 4)
        report["calibration"] = calibration_table(y, positive_scores)
    return report
