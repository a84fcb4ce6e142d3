"""Deduplication stages: exact (normalised-text hash) and MinHash LSH near-duplicates."""

STAGE_MODULES = ("dedup.exact", "dedup.stages")
