"""`thresher classifier` commands: train a classifier (fastText or logistic) from a config,
evaluate one on labelled data. Every path may be a URL (s3://...).

    thresher classifier train configs/classifier-domain.yaml --output models/domain
        -> models/domain/model.bin, config.yaml (resolved), report.json (test-split metrics)
    thresher classifier evaluate models/domain/model.bin DATA [--json] [--threshold T]
        DATA: a JSONL or Parquet file, or a folder of them, with `text` and `label` fields

Heavy imports (fastText) happen inside the handlers so `thresher --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path, PurePosixPath

DATA_SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}


def cmd_train(args: argparse.Namespace) -> int:
    from filters.classifier import load_classifier_config, train_classifier

    config = load_classifier_config(args.config)
    output = args.output or str(Path("models") / Path(args.config).stem)
    report = train_classifier(config, output)
    print(f"model:   {output}/model.bin")
    print(f"report:  {output}/report.json")
    print(f"threshold ({config.threshold_metric} on dev): {report['threshold']:.4f}")
    if "test" in report:
        print(format_report(report["test"], "test split"))
    return 0


def labelled_data(data: str) -> tuple[list[str], list[str]]:
    """(texts, labels) of a JSONL/Parquet file or of every such file in a folder (local or a URL)."""
    from pipeline import storage
    from pipeline.config import InputSpec, ReadOptions
    from pipeline.readers import InputFile, read_file
    from pipeline.record import Document

    if storage.isfile(data):
        files = [data]
    else:  # a folder, or nothing there
        files = [storage.join(data, name) for name in storage.walk_files(data) if _format(name)]
    if not files or not all(_format(f) for f in files):
        raise ValueError(f"DATA {data!r}: give a .jsonl[.gz] or .parquet file, or a folder holding them")
    texts, labels = [], []
    for file in files:
        spec = InputSpec(path=file, format=_format(file), source="evaluate")
        for item in read_file(InputFile(file, storage.basename(file), storage.size(file)), spec, ReadOptions()):
            if isinstance(item, Document):
                if "label" not in item.metadata:
                    raise ValueError(f"DATA {file}: record {item.id} has no `label` field")
                texts.append(item.text)
                labels.append(str(item.metadata["label"]))
    return texts, labels


def _format(name: str) -> str | None:
    suffixes = [s for s in PurePosixPath(name).suffixes if s not in (".gz", ".zst")]
    return DATA_SUFFIXES.get(suffixes[-1]) if suffixes else None


def cmd_evaluate(args: argparse.Namespace) -> int:
    from filters.classifier import evaluate_bundle, load_bundle

    bundle = load_bundle(args.model, threshold=args.threshold)
    texts, truth = labelled_data(args.data)
    unknown = sorted(set(truth) - set(bundle.labels))
    if unknown:
        raise ValueError(f"DATA labels {unknown} are not labels of the model; it knows {bundle.labels}")
    report = evaluate_bundle(bundle, texts, truth)
    print(json.dumps(report, sort_keys=True) if args.json else format_report(report, args.data))
    return 0


def format_report(report: dict, title: str) -> str:
    labels = list(report["confusion"])
    lines = [f"{title}: {report['examples']} examples, accuracy {report['accuracy']:.4f}"
             + (f", ROC-AUC {report['roc_auc']:.4f}" if report.get("roc_auc") is not None else "")]
    lines.append(f"  {'label':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for label in labels:
        r = report[label]
        lines.append(f"  {label:<16}{r['precision']:>10.4f}{r['recall']:>8.4f}{r['f1']:>8.4f}{r['support']:>9}")
    lines.append("  confusion (rows: true, columns: predicted): " + json.dumps(report["confusion"]))
    return "\n".join(lines)


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("classifier", help="train / evaluate fastText classifiers",
                              description="Train fastText quality or domain classifiers, evaluate them.")
    sub = p.add_subparsers(dest="classifier_command", required=True, metavar="COMMAND")
    t = sub.add_parser("train", help="train from a classifier config",
                       description="Train on the config's sources; write model.bin, config.yaml, report.json.")
    t.add_argument("config", metavar="CONFIG.yaml")
    t.add_argument("--output", metavar="DIR", help="output folder or URL (s3://...; default: models/<config name>)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="evaluate a model on labelled data",
                       description="Accuracy, per-label precision/recall/F1, confusion, ROC-AUC (two labels).")
    e.add_argument("model", metavar="MODEL", help="model.bin written by `thresher classifier train` (a path or URL)")
    e.add_argument("data", metavar="DATA",
                   help="JSONL/Parquet file or folder (a path or URL) with `text` and `label` fields")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.add_argument("--threshold", type=float, metavar="T",
                   help="positive-label threshold (default: the one calibrated at training, from report.json)")
    e.set_defaults(func=cmd_evaluate)
