"""The near-duplicate benchmark: real Reuters stories re-issued with realistic, seeded edits.

Base stories: every Reuters-21578 story (../shared/data/financial_reuters21578) with a body of
at least 30 words, minus the stories that already near-duplicate another one (repeated and
corrected wires: word-5-gram Jaccard >= 0.5 after lower-casing, found exactly with an inverted
index), so the ground truth is clean. A seeded `dup_fraction` of the stories is re-issued 1-3
times; each re-issue gets at least one of these edits, each drawn with probability 1/2
(sentence edits 1/3):

- headline: the title on a first line, as it was or as "UPDATE 1-"/"CORRECTED-"/title-case;
- header: a dateline ("NEW YORK, March 3 (Reuters) - ") before the body;
- footer: a sign-off ("Reporting by ...; Editing by ...", a copyright line, keywords);
- sentence removed (stories of 3+ sentences) / sentence added (from another story);
- whitespace noise: the body re-wrapped at another width, doubled spaces, no indentation;
- punctuation noise: some commas and periods dropped, quotes curled, "-" doubled.

Documents are shuffled; each has `id`, `text`, `story` (ground truth: same story = duplicate)
and `edits`. Beyond the real stories (`--docs` larger than the real benchmark), synthetic base
stories are made by joining 6-12 prose sentences drawn from random real stories, with fresh
random numbers (seeded), then re-issued the same way; two synthetic stories rarely share a
sentence and then only a few shingles, so they are not near-duplicates of each other.

    docs = build(target_docs=None, seed=0)        # the real benchmark (~15k documents)
    write_jsonl(docs, Path(".bench/dedup/real"), files=8)
"""

from __future__ import annotations

import gzip
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REUTERS = REPO.parent / "shared" / "data" / "financial_reuters21578" / "reuters21578.jsonl.gz"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
WORD = re.compile(r"\w+")
CITIES = ["NEW YORK", "LONDON", "TOKYO", "WASHINGTON", "CHICAGO", "FRANKFURT", "SYDNEY", "PARIS"]
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec"]
NAMES = ["John Smith", "Maria Lopez", "Ken Tanaka", "Ann Brown", "Peter Muller", "Sara Cohen", "Li Wei"]
FOOTERS = [
    "Reporting by {a}; Editing by {b}",
    "(c) Copyright Reuters 1987. All rights reserved. Republication or redistribution is prohibited.",
    "Keywords: {topics}",
    "For related news, double click on the codes in brackets.",
    "Reporting by {a} in {city}; additional reporting by {b}",
]


def load_stories(path: Path = REUTERS, min_words: int = 30) -> list[dict]:
    stories = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r.get("body") and len(r["body"].split()) >= min_words:
                stories.append({"story": f"r{r['newid']}", "title": r.get("title") or "", "body": r["body"],
                                "dateline": r.get("dateline") or "", "topics": r.get("topics") or []})
    return stories


def shingle_set(text: str, n: int = 5) -> set[str]:
    words = WORD.findall(text.lower())
    return {" ".join(words[i:i + n]) for i in range(max(1, len(words) - n + 1))}


def near_duplicate_originals(stories: list[dict], threshold: float = 0.5, max_posting: int = 200) -> set[int]:
    """Indexes of stories with a Jaccard >= threshold partner (exact, via shared shingles;
    shingles in more than `max_posting` stories are boilerplate and skipped as keys only)."""
    sets = [shingle_set(s["body"]) for s in stories]
    postings: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(sets):
        for h in s:
            postings[h].append(i)
    shared: Counter = Counter()
    for docs in postings.values():
        if 1 < len(docs) <= max_posting:
            for a in range(len(docs)):
                for b in range(a + 1, len(docs)):
                    shared[(docs[a], docs[b])] += 1
    flagged = set()
    for (a, b), inter in shared.items():
        if inter / (len(sets[a]) + len(sets[b]) - inter) >= threshold:
            flagged.update((a, b))
    return flagged


def sentences(text: str) -> list[str]:
    return [s for s in SENTENCE_END.split(" ".join(text.split())) if s]


def rewrap(text: str, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join(lines + [line])


def punctuation_noise(text: str, rng: random.Random) -> str:
    out = []
    for ch in text:
        if ch in ",." and rng.random() < 0.3:
            continue
        out.append({'"': "\u201c", "'": "\u2019", "-": "--"}.get(ch, ch) if rng.random() < 0.5 else ch)
    return "".join(out)


def reissue(story: dict, other: dict, rng: random.Random) -> tuple[str, list[str]]:
    """One edited re-issue of `story` (`other` lends a sentence) and the names of its edits."""
    edits = [e for e, p in (("headline", .5), ("header", .5), ("footer", .5), ("remove_sentence", 1 / 3),
                            ("add_sentence", 1 / 3), ("whitespace", .5), ("punctuation", .5)) if rng.random() < p]
    edits = edits or [rng.choice(["headline", "footer", "whitespace"])]
    parts = sentences(story["body"])
    if "remove_sentence" in edits and len(parts) >= 3:
        del parts[rng.randrange(len(parts))]
    if "add_sentence" in edits and (extra := sentences(other["body"])):
        parts.insert(rng.randrange(len(parts) + 1), rng.choice(extra))
    body = " ".join(parts)
    if "punctuation" in edits:
        body = punctuation_noise(body, rng)
    body = rewrap(body, rng.choice([50, 60, 72, 90])) if "whitespace" in edits else rewrap(body, 65)
    if "whitespace" in edits:
        body = body.replace(" ", "  ", rng.randrange(1, 6))
    if "header" in edits:
        body = f"{rng.choice(CITIES)}, {rng.choice(MONTHS)} {rng.randint(1, 28)} (Reuters) - {body}"
    if "headline" in edits:
        title = story["title"] or " ".join(body.split()[:6]).upper()
        title = rng.choice([title, f"UPDATE 1-{title}", f"CORRECTED-{title}", title.title()])
        body = f"{title}\n{body}"
    if "footer" in edits:
        footer = rng.choice(FOOTERS).format(a=rng.choice(NAMES), b=rng.choice(NAMES), city=rng.choice(CITIES),
                                            topics=", ".join(story["topics"]) or "markets")
        body = f"{body}\n{footer}"
    return body, edits


NUMBER = re.compile(r"\d+")


def synthetic_stories(pool: list[dict], n: int, rng: random.Random) -> Iterator[dict]:
    """`n` new base stories, each 6-12 prose sentences (8-40 words; no tables) from random real
    stories, every number replaced by a fresh random one: stories that share a sentence share
    a few shingles only (Jaccard well below 0.5), as different news items do."""
    prose = [t for s in pool for t in sentences(s["body"]) if 8 <= len(t.split()) <= 40]
    for i in range(n):
        body = " ".join(rng.choice(prose) for _ in range(rng.randint(6, 12)))
        body = NUMBER.sub(lambda _: str(rng.randint(2, 999)), body)
        yield {"story": f"s{i}", "title": " ".join(body.split()[:7]).upper(), "body": rewrap(body, 65),
               "dateline": "", "topics": []}


def build(target_docs: int | None = None, seed: int = 0, dup_fraction: float = 0.3) -> list[dict]:
    """The benchmark documents, in a seeded random order."""
    rng = random.Random(seed)
    stories = load_stories()
    flagged = near_duplicate_originals(stories)
    stories = [s for i, s in enumerate(stories) if i not in flagged]
    per_base = 1 + dup_fraction * 2  # 1-3 re-issues, mean 2
    if target_docs is not None and target_docs > len(stories) * per_base:
        extra = int(target_docs * 1.02 / per_base) - len(stories)  # 2% spare: cut to target_docs below
        stories = stories + list(synthetic_stories(stories, extra, rng))
    docs = []
    for story in stories:
        docs.append({"text": story["body"], "story": story["story"], "edits": "original"})
        if rng.random() < dup_fraction:
            for _ in range(rng.randint(1, 3)):
                text, edits = reissue(story, rng.choice(stories), rng)
                docs.append({"text": text, "story": story["story"], "edits": "+".join(edits)})
    rng.shuffle(docs)
    if target_docs is not None:
        docs = docs[:target_docs]
    return [{"id": f"doc-{i:07d}", **d} for i, d in enumerate(docs)]


def write_jsonl(docs: list[dict], directory: Path, files: int) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"docs-{i:03d}.jsonl" for i in range(files)]
    handles = [p.open("w", encoding="utf-8") for p in paths]
    per_file = -(-len(docs) // files)
    for i, doc in enumerate(docs):
        handles[i // per_file].write(json.dumps(doc, ensure_ascii=False) + "\n")
    for h in handles:
        h.close()
    return paths
