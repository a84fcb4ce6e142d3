"""The statistics report covers the dedup stages besides exact and MinHash: url_dedup,
paragraph_dedup and line_dedup (units removed), decontaminate (its per-eval-set report), and the
documents an index run removed as copies of earlier runs' (tests/dedup/test_incremental.py)."""

from __future__ import annotations

import json

from pipeline.report import write_report
from tests.dedup.conftest import run, write_jsonl

STORY = "The committee met on Tuesday and agreed a plan for the new harbour wall, to be built by spring."
QUESTION = "Which river flows through the old town of Weissbach and into the northern lake below the castle"


def test_the_report_shows_units_eval_sets_and_url_dedup(client, tmp_path):
    records = [{"text": f"{STORY} Item {i}.\n\nSubscribe to our newsletter.\nShare this page",
                "url": f"https://news.example/{i % 5}"} for i in range(12)]
    records.append({"text": f"Quiz night. {QUESTION}? Answers below.", "url": "https://quiz.example/1"})
    (tmp_path / "eval.jsonl").write_text(json.dumps({"id": "q1", "text": QUESTION}) + "\n")
    stages = [{"url_dedup": {}}, {"paragraph_dedup": {"min_chars_after_dedup": 0}},
              {"line_dedup": {"min_chars_after_dedup": 0}},
              {"decontaminate": {"eval_sets": [{"name": "quiz", "path": str(tmp_path / "eval.jsonl")}]}}]
    run(client, tmp_path / "out", [write_jsonl(tmp_path / "web.jsonl", records)], stages)
    html = write_report(tmp_path / "out", client=client)
    stats = json.loads((tmp_path / "out" / "report" / "stats.json").read_text())
    dedup = {d["stage"]: d for d in stats["dedup"]}
    assert list(dedup) == ["url_dedup", "paragraph_dedup", "line_dedup", "decontaminate"]
    assert dedup["url_dedup"]["documents_removed"] == 7
    assert dedup["paragraph_dedup"]["audit"]["units_removed"] == 4
    assert dedup["decontaminate"]["audit"]["eval_sets"]["quiz"]["documents_dropped"] == 1
    page = html.read_text()
    section = page[page.index('<section id="dedup"'):]
    assert 'data-key="units_removed" data-value="4"' in section and "<td>quiz</td>" in section
