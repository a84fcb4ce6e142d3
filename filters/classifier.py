"""Text classifiers (fastText, or TF-IDF + logistic regression): training config, shared text
normalisation, deterministic splits, training, scoring and the evaluation report (per-label
precision/recall/F1, ROC-AUC, a calibration table, a decision threshold calibrated on the dev
split).

A training config lists labelled sources read with thresher's own readers (jsonl, parquet,
text, html, warc); see `configs/classifier-domain.yaml`. Training is deterministic: examples
are split and ordered by seeded hashes of their normalised text, and fastText runs with one
thread and a fixed seed, so the same config trains a model with the same predictions. What the
model sees of the normalised text (every token, or content words only) is the config's
`features` (filters/classifier_features.py), saved with the model and applied when it scores.
A source may also name a `topic`, a finer label to train on (AG News `world`, `sports` for
`general`): fastText then learns the topics, and a label's probability is the sum of its
topics' (the topic -> label map is read back from the saved config.yaml). `model: logistic`
trains a TF-IDF + logistic-regression model instead (filters/classifier_linear.py); it is saved
as `model.bin` too (a Parquet table), and scoring tells the two apart by the file's first bytes.

    config = load_classifier_config("configs/classifier-domain.yaml")
    report = train_classifier(config, "models/domain")   # model.bin, config.yaml, report.json
    bundle = load_bundle("models/domain/model.bin"); bundle.positive_proba(["some text"])

The `thresher classifier train|evaluate` commands (filters/cli.py) wrap these functions.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import Field, field_validator, model_validator

from filters.classifier_features import Features, feature_view, with_length_token  # noqa: F401 (re-exported)
from filters.classifier_linear import (
    LinearModel,
    LogisticParams,
    is_linear_file,
    load_linear,
    save_linear,
    train_linear,
)
from filters.classifier_metrics import calibrate_threshold, classification_report
from pipeline import storage
from pipeline.config import Frozen, InputSpec, ReadOptions, load_yaml, validate_config
from pipeline.io import read_json, upload_file, write_bytes, write_json
from pipeline.readers import list_files, read_file
from pipeline.readers.jsonl import get_dotted
from pipeline.record import Document

# -- normalisation (shared by training and scoring) ---------------------------------------

_TOKEN = re.compile(r"[^\W\d_]+|\d+|[^\w\s]")


def normalize(text: str) -> str:
    """Lower-cased word and punctuation tokens on one line; every digit run becomes `0`,
    so the model learns "a number here" rather than particular numbers."""
    return " ".join("0" if t[0].isdigit() else t for t in _TOKEN.findall(text.lower()))


def bounded_prefix(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes (on a character boundary)."""
    if len(text) <= max_bytes // 4:  # cannot exceed max_bytes: skip the encode
        return text
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


# -- training config -----------------------------------------------------------------------


class SourceConfig(Frozen):
    path: str = Field(description="fsspec path or glob, relative to the working directory")
    format: Literal["warc", "html", "jsonl", "parquet", "text"]
    label: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    topic: str | None = Field(
        None, pattern=r"^[A-Za-z0-9_.\-]+$",
        description="train on this finer label; a label's probability is the sum of its topics' (default: the label)")
    text_field: str = "text"
    separator: str | None = Field(None, description="text: regex of the line that starts a new document")
    where: dict[str, Any] = Field(
        default_factory=dict,
        description="record field -> value (or list of values); a list field matches when any of its items does")
    html_text: Literal["main", "boilerplate", "all"] | None = Field(
        None, description="html/warc: the extracted main text, the page lines extraction drops, or all lines")
    replace: list[tuple[str, str]] = Field(default_factory=list, description="regex substitutions on the text")
    max_docs: int | None = Field(None, gt=0, description="a seeded sample of this many documents")
    min_words: int = Field(1, ge=1, description="skip documents (and lines) with fewer normalised tokens")
    chunk_words: int | None = Field(None, gt=0, description="split documents into examples of this many tokens")
    unit: Literal["document", "line", "both"] = Field(
        "document", description="examples are whole documents, their lines, or both")

    @model_validator(mode="after")
    def _html_mode(self):
        if (self.format in ("html", "warc")) != (self.html_text is not None):
            raise ValueError("html_text is required for html/warc sources and only valid for them")
        for pattern, _ in self.replace:
            re.compile(pattern)
        return self


class SplitConfig(Frozen):
    dev: float = Field(0.1, ge=0, lt=1, description="fraction of documents for threshold calibration")
    test: float = Field(0.1, ge=0, lt=1, description="fraction held out for the report")

    @model_validator(mode="after")
    def _room_to_train(self):
        if self.dev + self.test >= 1:
            raise ValueError("dev + test must leave documents to train on (sum < 1)")
        return self


class FastTextParams(Frozen):
    """fastText `train_supervised` hyper-parameters (names as fastText spells them)."""

    dim: int = Field(64, gt=0)
    epoch: int = Field(10, gt=0)
    lr: float = Field(0.5, gt=0)
    wordNgrams: int = Field(2, ge=1)
    minCount: int = Field(1, ge=1)
    minn: int = Field(0, ge=0)
    maxn: int = Field(0, ge=0)
    bucket: int = Field(2_000_000, ge=0)
    loss: Literal["softmax", "ova", "hs"] = "softmax"

    @model_validator(mode="after")
    def _keeps_hash_buckets(self):
        # fastText's Python wrapper sets bucket=0 when wordNgrams <= 1 and maxn == 0, and with
        # thread=1 (needed for determinism) fastText's uniform() then initialises only the
        # first tenth of the word vectors; the rest is uninitialised memory, which shows as
        # "Encountered NaN" and as a different model on every run.
        if self.wordNgrams <= 1 and self.maxn == 0:
            raise ValueError("fasttext.wordNgrams: use 2 or more (or maxn > 0): with wordNgrams 1 and maxn 0 "
                             "fastText drops its hash buckets and single-thread training is then non-deterministic")
        return self


class ClassifierConfig(Frozen):
    seed: int = 0
    positive_label: str | None = Field(None, description="scores are this label's probability")
    sources: list[SourceConfig] = Field(min_length=1)
    split: SplitConfig = SplitConfig()
    model: Literal["fasttext", "logistic"] = Field(
        "fasttext", description="fastText, or TF-IDF + logistic regression (filters/classifier_linear.py)")
    fasttext: FastTextParams = FastTextParams()
    logistic: LogisticParams = LogisticParams()
    features: Features = Field(
        "all_tokens", description="the model's view of the text: every token, or content words only "
                                  "(filters/classifier_features.py)")
    length_token: bool = Field(False, description="add a token for the text's length bucket (line-level scoring)")
    threshold_metric: Literal["accuracy", "source_accuracy", "f1", "none"] = Field(
        "accuracy", description="pick the positive-label threshold maximising this on dev ('none': 0.5)")

    @field_validator("sources")
    @classmethod
    def _two_labels(cls, sources: list[SourceConfig]) -> list[SourceConfig]:
        if len({s.label for s in sources}) < 2:
            raise ValueError("sources must name at least two different labels")
        return sources

    @model_validator(mode="after")
    def _positive_known(self):
        labels = sorted({s.label for s in self.sources})
        if self.positive_label is None and len(labels) == 2:
            raise ValueError(f"positive_label is required for two labels; one of {labels}")
        if self.positive_label is not None and self.positive_label not in labels:
            raise ValueError(f"positive_label {self.positive_label!r} is not a source label; one of {labels}")
        return self

    @model_validator(mode="after")
    def _topics_have_one_label(self):
        owner: dict[str, str] = {}
        for i, source in enumerate(self.sources):
            topic = source.topic or source.label
            if owner.setdefault(topic, source.label) != source.label:
                raise ValueError(f"sources[{i}].topic {topic!r} is already a topic of label {owner[topic]!r}; "
                                 "a topic belongs to one label")
        return self

    @property
    def labels(self) -> list[str]:
        return sorted({s.label for s in self.sources})

    @property
    def topics(self) -> dict[str, str] | None:
        """topic -> label when any source has a topic (the model is trained on topics), else None."""
        if all(s.topic is None for s in self.sources):
            return None
        return dict(sorted({s.topic or s.label: s.label for s in self.sources}.items()))


def load_classifier_config(path: str | Path) -> ClassifierConfig:
    data = load_yaml(path)
    return validate_config(ClassifierConfig, data)


# -- examples --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Example:
    text: str  # normalised
    label: str
    split: str  # train | dev | test
    source: int = 0  # index in the config's sources
    topic: str | None = None  # the label fastText trains on, when finer than `label`

    @property
    def train_label(self) -> str:
        return self.topic or self.label


def unit_hash(*parts: Any) -> float:
    """A uniform number in [0, 1) from `parts` (seeded, platform-independent)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(text: str, split: SplitConfig, seed: int) -> str:
    """By the hash of the normalised text, so duplicate documents share a split."""
    u = unit_hash("split", seed, text)
    return "test" if u < split.test else "dev" if u < split.test + split.dev else "train"


def source_documents(source: SourceConfig) -> list[str]:
    """Raw texts of `source` that pass its `where` filter, in file order."""
    spec = InputSpec(path=source.path, format=source.format, source="classifier", text_field=source.text_field,
                     separator=source.separator)
    files = list_files(spec)
    if not files:
        raise ValueError(f"source path {source.path!r}: no files match")
    docs = [item for file in files for item in read_file(file, spec, ReadOptions())
            if isinstance(item, Document) and _matches(item, source.where)]
    if source.html_text:
        parse_pages([doc.extras["raw"] for doc in docs])
    return [_substitute((page_text(d, source.html_text) if source.html_text else d.text) or "", source.replace)
            for d in docs]


def _matches(doc: Document, where: dict[str, Any]) -> bool:
    """Every `where` field holds one of its wanted values; a list-valued field (Reuters'
    `topics`) matches when any of its items is wanted."""
    for field, wanted in where.items():
        value = get_dotted(doc.metadata, field)
        wanted = wanted if isinstance(wanted, list) else [wanted]
        if not (any(v in wanted for v in value) if isinstance(value, list) else value in wanted):
            return False
    return True


def _substitute(text: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        text = re.sub(pattern, replacement, text, flags=re.MULTILINE)
    return text


def page_text(doc: Document, mode: str) -> str:
    """HTML page bytes -> its main text (trafilatura), every visible line (html-text, with
    layout), or the boilerplate: the visible lines that main-text extraction throws away."""
    main, lines = parse_pages([doc.extras["raw"]])[0]
    if mode == "main":
        return main
    if mode == "all":
        return "\n".join(lines)
    kept = f" {normalize(main)} "
    return "\n".join(line for line in lines if f" {normalize(line)} " not in kept)


_PAGES: dict[bytes, tuple[str, tuple[str, ...]]] = {}  # a recipe often reads a page twice (main, boilerplate)


def parse_pages(raws: list[bytes]) -> list[tuple[str, tuple[str, ...]]]:
    """(main text, visible lines) of each page, parsed in parallel processes, memoised."""
    keys = [hashlib.sha1(raw).digest() for raw in raws]
    todo = {k: raw for k, raw in zip(keys, raws) if k not in _PAGES}
    if len(todo) > 8:
        with concurrent.futures.ProcessPoolExecutor(min(os.cpu_count() or 1, 8)) as pool:
            _PAGES.update(zip(todo, pool.map(_parse_page, todo.values(), chunksize=4)))
    _PAGES.update((k, _parse_page(raw)) for k, raw in todo.items() if k not in _PAGES)
    return [_PAGES[k] for k in keys]


def _parse_page(raw: bytes) -> tuple[str, tuple[str, ...]]:
    import html_text
    import trafilatura

    from pipeline.decode import DecodeFailure, decode_html

    try:
        html, _ = decode_html(raw)
    except DecodeFailure:
        return "", ()
    main = trafilatura.extract(html, include_comments=False) or ""
    text = html_text.extract_text(html, guess_layout=True)
    return main, tuple(line.strip() for line in text.splitlines() if line.strip())


def source_examples(source: SourceConfig, split: SplitConfig, seed: int, index: int = 0) -> list[Example]:
    """The examples of one source: normalised, filtered by length, sampled, split (by
    document: the lines and chunks of a document share its split), chunked or cut in lines."""
    raw_by_text: dict[str, str] = {}
    for raw in source_documents(source):
        text = normalize(raw)
        if len(text.split()) >= source.min_words:
            raw_by_text.setdefault(text, raw)
    docs = sorted(raw_by_text, key=lambda t: unit_hash("sample", seed, t))[: source.max_docs]
    out = []
    for text in docs:
        part = assign_split(text, split, seed)
        units = _chunks(text, source.chunk_words) if source.unit != "line" else []
        if source.unit != "document":
            lines = map(normalize, raw_by_text[text].splitlines())
            units += [line for line in lines if len(line.split()) >= source.min_words]
        out += [Example(unit, source.label, part, index, source.topic) for unit in units]
    return out


def _chunks(text: str, size: int | None) -> list[str]:
    words = text.split()
    if size is None or len(words) <= size:
        return [text]
    return [" ".join(words[i : i + size]) for i in range(0, len(words), size)]


def load_examples(config: ClassifierConfig) -> list[Example]:
    return [ex for i, source in enumerate(config.sources)
            for ex in source_examples(source, config.split, config.seed, i)]


# -- fastText ------------------------------------------------------------------------------


def seeded_order(examples: list[Example], seed: int) -> list[Example]:
    """The training order of both backends: by a seeded hash of (label, text)."""
    return sorted(examples, key=lambda ex: unit_hash("order", seed, ex.train_label, ex.text))


def train_fasttext(examples: list[Example], params: FastTextParams, seed: int, length_token: bool = False,
                   features: str = "all_tokens"):
    """A fastText supervised model on `examples`, in a seeded order, one thread (fastText's
    Hogwild updates make multi-threaded training non-deterministic)."""
    import fasttext

    ordered = seeded_order(examples, seed)
    feature = feature_view(features, length_token)
    _check_bucket(ordered, params, feature)
    with tempfile.TemporaryDirectory(prefix="thresher-fasttext-") as tmp:
        path = Path(tmp) / "train.txt"
        path.write_text("".join(f"__label__{ex.train_label} {feature(ex.text)}\n" for ex in ordered), encoding="utf-8")
        return fasttext.train_supervised(input=str(path), thread=1, seed=seed, verbose=0, **params.model_dump())


def train_model(examples: list[Example], config: ClassifierConfig):
    """The config's model (`fasttext` or `logistic`) trained on `examples`, in a seeded order."""
    if config.model == "fasttext":
        return train_fasttext(examples, config.fasttext, config.seed, config.length_token, config.features)
    ordered = seeded_order(examples, config.seed)
    feature = feature_view(config.features, config.length_token)
    return train_linear([feature(ex.text) for ex in ordered], [ex.train_label for ex in ordered], config.logistic)


def save_model(model, path: Path) -> None:
    if isinstance(model, LinearModel):
        save_linear(model, path)
    else:
        model.save_model(str(path))


def _check_bucket(examples: list[Example], params: FastTextParams, feature) -> None:
    """Single-thread fastText initialises only the first tenth of the rows of its input matrix
    (words + hash buckets); the words must fit in that tenth, or their vectors start out as
    uninitialised memory (see FastTextParams)."""
    counts: dict[str, int] = {}
    for ex in examples:
        for token in feature(ex.text).split():
            counts[token] = counts.get(token, 0) + 1
    n_words = 1 + sum(1 for c in counts.values() if c >= params.minCount)  # + the end-of-line token
    if params.bucket < 9 * n_words:
        raise ValueError(f"fasttext.bucket: {params.bucket} is too small for {n_words} words; use at least "
                         f"{9 * n_words} (single-thread fastText initialises only a tenth of words + buckets)")


def _quiet_fasttext() -> None:
    import fasttext

    fasttext.FastText.eprint = lambda *args, **kwargs: None  # load_model's deprecation warning


def predict_proba(model, texts: list[str], length_token: bool = False,
                  features: str = "all_tokens") -> tuple[list[str], np.ndarray]:
    """(labels, probabilities[len(texts), len(labels)]) for normalised `texts`."""
    if isinstance(model, LinearModel):
        feature = feature_view(features, length_token)
        return model.get_labels(), model.predict_proba([feature(t) for t in texts])
    labels = [label.removeprefix("__label__") for label in model.get_labels()]
    out = np.zeros((len(texts), len(labels)))
    if texts:
        feature = feature_view(features, length_token)
        texts = [feature(t) for t in texts]
        predicted, probs = model.predict(texts, k=-1, threshold=0.0)
        column = {f"__label__{label}": j for j, label in enumerate(labels)}
        for i, (names, values) in enumerate(zip(predicted, probs)):
            out[i, [column[n] for n in names]] = np.clip(values, 0.0, 1.0)
    return labels, out


@dataclasses.dataclass
class ModelBundle:
    """A trained model with what scoring needs from its training run: which label is
    positive, the threshold calibrated on the dev split, and, for a model trained on topics,
    which label each topic belongs to (`labels` are then the labels, not the topics)."""

    model: Any
    labels: list[str]
    positive_label: str | None
    threshold: float
    length_token: bool = False
    features: str = "all_tokens"
    topics: dict[str, str] | None = None

    def proba(self, texts: list[str]) -> np.ndarray:
        return self.proba_normalized([normalize(t) for t in texts])

    def proba_normalized(self, texts: list[str]) -> np.ndarray:
        """probabilities[len(texts), len(labels)]; a label's is the sum of its topics'."""
        topics, probs = predict_proba(self.model, texts, self.length_token, self.features)
        if self.topics is None:
            return probs
        out = np.zeros((len(texts), len(self.labels)))
        for j, topic in enumerate(topics):
            out[:, self.labels.index(self.topics[topic])] += probs[:, j]
        return out

    def positive_proba(self, texts: list[str]) -> np.ndarray:
        assert self.positive_label is not None
        return self.proba(texts)[:, self.labels.index(self.positive_label)]

    def predict(self, probs: np.ndarray) -> list[str]:
        """Labels for rows of `proba`: the positive label at or above the threshold for
        two labels, else the most probable label."""
        if self.positive_label is not None and len(self.labels) == 2:
            other = next(label for label in self.labels if label != self.positive_label)
            positive = probs[:, self.labels.index(self.positive_label)] >= self.threshold
            return [self.positive_label if p else other for p in positive]
        return [self.labels[j] for j in probs.argmax(axis=1)]


def load_bundle(model_path: str | Path, positive_label: str | None = None,
                threshold: float | None = None) -> ModelBundle:
    """Load `model.bin` (fastText's, or a logistic model's Parquet table); `config.yaml` /
    `report.json` beside it supply the positive label and the calibrated threshold unless
    given here."""
    local = Path(local_model(str(model_path)))  # a missing URL stays a URL, which is no local file
    if not local.is_file():
        raise ValueError(f"model {str(model_path)!r} does not exist; train one with `thresher classifier train`")
    model_path = local
    if is_linear_file(model_path):
        model = load_linear(model_path)
    else:
        import fasttext

        _quiet_fasttext()
        model = fasttext.load_model(str(model_path))
    labels = [label.removeprefix("__label__") for label in model.get_labels()]
    config_path, report_path = model_path.with_name("config.yaml"), model_path.with_name("report.json")
    trained = (yaml.safe_load(config_path.read_text()) or {}) if config_path.is_file() else {}
    topics = _trained_topics(trained, labels, config_path)
    if topics is not None:
        labels = sorted(set(topics.values()))
    if positive_label is None:
        positive_label = trained.get("positive_label")
    if threshold is None and report_path.is_file():
        threshold = read_json(report_path).get("threshold")
    if positive_label is not None and positive_label not in labels:
        raise ValueError(f"positive_label {positive_label!r} is not a label of {model_path}; one of {labels}")
    threshold = 0.5 if threshold is None else float(threshold)
    return ModelBundle(model, labels, positive_label, threshold, bool(trained.get("length_token", False)),
                       str(trained.get("features", "all_tokens")), topics)


def local_model(path: str) -> str:
    """`path` itself when local; for a URL, a cached local copy of the model with its
    config.yaml and report.json beside it (fastText loads only local files)."""
    if storage.is_local(path) or not storage.isfile(path):
        return path
    local = storage.local_file(path)
    for sibling in ("config.yaml", "report.json"):
        url, copy = storage.join(storage.parent(path), sibling), os.path.join(os.path.dirname(local), sibling)
        if not os.path.exists(copy) and storage.isfile(url):
            write_bytes(storage.read_bytes(url), copy)
    return local


def _trained_topics(trained: dict, model_labels: list[str], config_path: Path) -> dict[str, str] | None:
    """topic -> label from the resolved training config, when the model was trained on topics."""
    sources = trained.get("sources") or []
    if not any(s.get("topic") for s in sources):
        return None
    topics = {s.get("topic") or s["label"]: s["label"] for s in sources}
    unknown = sorted(set(model_labels) - set(topics))
    if unknown:
        raise ValueError(f"{config_path}: the model's topics {unknown} are not in its sources; "
                         "retrain, or put back the config.yaml it was trained with")
    return topics


def evaluate_bundle(bundle: ModelBundle, texts: list[str], truth: list[str]) -> dict:
    probs = bundle.proba(texts)
    positive = None if bundle.positive_label is None else probs[:, bundle.labels.index(bundle.positive_label)]
    report = classification_report(truth, bundle.predict(probs), bundle.labels, positive, bundle.positive_label)
    return {**report, "threshold": bundle.threshold}


# -- the training run ----------------------------------------------------------------------


def train_classifier(config: ClassifierConfig, output: str | Path) -> dict:
    """Train on the train split, calibrate the threshold on dev, report on test; writes
    `model.bin`, `config.yaml` (resolved) and `report.json` under `output`, a folder or a URL
    (s3://...: written locally, then uploaded, `model.bin` last)."""
    if not storage.is_local(output):
        with tempfile.TemporaryDirectory(prefix="thresher-classifier-") as tmp:
            report = train_classifier(config, tmp)
            for name in ("config.yaml", "report.json", "model.bin"):
                upload_file(Path(tmp) / name, storage.join(str(output), name))
        return report
    output = Path(output)
    examples = load_examples(config)
    by_split = {s: [ex for ex in examples if ex.split == s] for s in ("train", "dev", "test")}
    if not by_split["train"]:
        raise ValueError("no training examples: check the sources' paths and `where` filters")
    model = train_model(by_split["train"], config)
    output.mkdir(parents=True, exist_ok=True)
    save_model(model, output / "model.bin")
    labels = config.labels if config.topics else predict_proba(model, [])[0]
    bundle = ModelBundle(model, labels, config.positive_label, 0.5, config.length_token, config.features,
                         config.topics)
    if config.positive_label is not None and len(labels) == 2 and by_split["dev"]:
        dev_probs = bundle.proba_normalized([ex.text for ex in by_split["dev"]])
        y = np.array([ex.label == config.positive_label for ex in by_split["dev"]])
        groups = np.array([ex.source for ex in by_split["dev"]])
        bundle.threshold = calibrate_threshold(y, dev_probs[:, labels.index(config.positive_label)],
                                               config.threshold_metric, groups)
    threshold = bundle.threshold
    report = {"threshold": threshold, "threshold_metric": config.threshold_metric,
              "examples": {s: _label_counts(v) for s, v in by_split.items()}}
    for split in ("dev", "test"):
        if by_split[split]:
            texts, truth = [ex.text for ex in by_split[split]], [ex.label for ex in by_split[split]]
            report[split] = evaluate_bundle(bundle, texts, truth)  # texts already normalised: idempotent
    write_bytes(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False).encode(), output / "config.yaml")
    write_json(report, output / "report.json")
    return report


def _label_counts(examples: list[Example]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ex in examples:
        counts[ex.label] = counts.get(ex.label, 0) + 1
    return dict(sorted(counts.items()))
