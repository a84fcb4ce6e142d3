"""Malformed inputs end to end: one `thresher run` (read, then extract) over a corpus of broken
files of every format (tests/pipeline/malformed_corpus.py, generated here, big ones included)
finishes, puts each kind in the quarantine or `rejected/` with its exact reason (or keeps it,
for odd but valid inputs), loses no good record beside a bad one, and never holds a gzip bomb
or a 200 MB line whole: its peak RSS is measured and bounded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from tests.pipeline.malformed_corpus import Kind, write_corpus

pytestmark = pytest.mark.slow  # one real run: ~260 MB written, 2 GiB inflated
THRESHER = [sys.executable, "-m", "pipeline.cli"]
MAX_RSS_BYTES = 2 << 30


class PeakRss:
    """Peak RSS of a process tree, summed over its live processes (`peak`) and of its largest
    process (`single`), sampled every 0.2 s. (`getrusage(RUSAGE_CHILDREN)` would also count
    every child an earlier test in the session waited for, such as a training rank.)"""

    def __init__(self, pid: int):
        self.root, self.peak, self.single, self.done = psutil.Process(pid), 0, 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.2):
            sizes = []
            try:
                for proc in [self.root, *self.root.children(recursive=True)]:
                    sizes.append(proc.memory_info().rss)
            except psutil.Error:  # a process ended while sampled
                continue
            self.peak, self.single = max(self.peak, sum(sizes)), max(self.single, *sizes)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def run_config(tmp_path: Path, inputs: Path) -> Path:
    globs = {"warc": "*.warc*", "html": "*.htm*", "jsonl": "*.jsonl*", "parquet": "*.parquet"}
    run = {
        "output": str(tmp_path / "out"),
        "inputs": [{"path": f"{inputs}/{fmt}/{glob}", "format": fmt, "source": fmt} for fmt, glob in globs.items()]
        + [{"path": f"{inputs}/tiny/*.html", "format": "html", "source": "tiny"}],
        "stages": [{"extract": {"skip": {"source": ["tiny"]}}}],  # 10,000 tiny pages: read, not extracted
        "read": {"files_per_task": 2500},
        # A corpus of broken files: let the run finish and report them instead of failing.
        "guards": {"max_loss_fraction": None, "max_quarantined_files": None, "allow_empty_inputs": True},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run))
    return path


def rows(folder: Path, columns: list[str]) -> list[dict]:
    out = []
    for part in sorted(folder.glob("part-*.parquet")):
        out += pq.read_table(part, columns=columns).to_pylist()
    return out


@pytest.fixture(scope="module")
def malformed_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("malformed")
    kinds = write_corpus(tmp_path / "in")
    proc = subprocess.Popen(THRESHER + ["run", str(run_config(tmp_path, tmp_path / "in")), "--workers", "2",
                                        "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakRss(proc.pid)
    out, err = proc.communicate(timeout=600)
    tree_peak = sampler.stop()
    process_peak = sampler.single
    print(f"malformed corpus run: peak RSS of one process {process_peak / 2**20:.0f} MiB, "
          f"of the whole process tree {tree_peak / 2**20:.0f} MiB")
    assert proc.returncode == 0, err[-3000:]
    yield tmp_path / "out", kinds, process_peak, out
    shutil.rmtree(tmp_path)  # hundreds of MB: not kept among pytest's last three temp folders


def outcomes(out: Path) -> dict[str, dict]:
    """What the run made of every record and file: quarantine entries by file, rejected rows
    and kept rows by id and by URL, skipped-record counts."""
    read = json.loads((out / "00-read" / "_manifest.json").read_text())
    found: dict[str, dict] = {"quarantined": {}, "rejected": {}, "kept": {}, "read": {}}
    for entry in read["stats"]["quarantine"]:
        found["quarantined"][entry["file"]] = entry
    for stage in ("00-read", "01-extract"):
        for row in rows(out / stage / "rejected", ["id", "url", "reason"]):
            found["rejected"][row["id"]] = found["rejected"][row["url"]] = row
    for row in rows(out / "00-read", ["id", "url"]):
        found["read"][row["id"]] = found["read"][row["url"]] = row
    for row in rows(out / "01-extract", ["id", "url", "metadata"]):
        found["kept"][row["id"]] = found["kept"][row["url"]] = row
    found["skipped"] = {k.removeprefix("skipped."): n for k, n in read["stats"]["counters"].items()
                        if k.startswith("skipped.")}
    return found


def test_the_corpus_has_30_kinds_or_more(malformed_run):
    _, kinds, _, _ = malformed_run
    assert len({k.name for k in kinds}) == len(kinds) >= 30


def test_every_kind_has_its_outcome_and_reason(malformed_run):
    out, kinds, _, _ = malformed_run
    found = outcomes(out)
    wrong = []
    for kind in kinds:
        got = _outcome(kind, found)
        if got != (kind.outcome, kind.reason):
            wrong.append(f"{kind.name}: expected {kind.outcome} {kind.reason}, got {got}")
    assert not wrong, "\n".join(wrong)


def _outcome(kind: Kind, found: dict) -> tuple[str, str] | None:
    if kind.outcome == "quarantined":
        entry = found["quarantined"].get(kind.key)
        return entry and ("quarantined", entry["reason"])
    if kind.outcome == "skipped":
        return ("skipped", kind.key) if found["skipped"].get(kind.key) else None
    if kind.key in found["rejected"]:
        return "rejected", found["rejected"][kind.key]["reason"]
    where = found["kept"] if kind.stage == "extract" else found["read"]
    return ("kept", "") if kind.key in where else None


def test_no_good_record_beside_a_bad_one_is_lost(malformed_run):
    out, kinds, _, _ = malformed_run
    found = outcomes(out)
    lost = [f"{kind.name}: {good}" for kind in kinds for good in kind.good if good not in found["read"]]
    assert not lost, lost


def test_quarantine_details_are_one_printable_line(malformed_run):
    out, _, _, _ = malformed_run
    for entry in outcomes(out)["quarantined"].values():
        assert entry["detail"].isprintable() and len(entry["detail"]) < 400, entry


def test_a_warc_target_uri_is_never_used_as_a_path(malformed_run, tmp_path_factory):
    out, _, _, _ = malformed_run
    assert not [p for p in out.parent.rglob("*") if p.name == "passwd"]
    found = outcomes(out)
    assert set(found["skipped"]) >= {"invalid_uri", "file"}
    assert not [k for k in found["skipped"] if "/" in k or "." in k]


def test_decoded_pages_say_how(malformed_run):
    out, _, _, _ = malformed_run
    kept = outcomes(out)["kept"]
    charset = {key: json.loads(row["metadata"]).get("charset") for key, row in kept.items()}
    assert charset["html/utf16-bom.html"] == "utf-16"
    assert charset["html/utf16-no-bom.html"] == "utf-16-le"
    assert charset["https://malformed.example/invalid_utf8/bad"] == "utf-8 (invalid bytes replaced)"
    assert charset["https://malformed.example/charset/bad"].endswith("(detected)")


def test_huge_inputs_are_streamed_not_held(malformed_run):
    """The 2 GiB gzip bomb line and the 200 MB line are rejected while streaming: no process
    of the run comes near their size (the rejected rows keep the first 64 MB)."""
    out, _, process_peak, _ = malformed_run
    assert process_peak < MAX_RSS_BYTES, f"peak RSS {process_peak / 2**20:.0f} MiB"
    rejected = outcomes(out)["rejected"]
    assert rejected["jsonl/bomb.jsonl.gz:2"]["reason"] == "read.record_too_large"
